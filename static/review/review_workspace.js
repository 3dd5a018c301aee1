// The item under review on the review page: the reviewer's work on it
// (review_model.js), the selected element and the time spent on each, the editor over
// its image, and the commands that change the work, each one undoable step in the
// page's history (review_edits.js). The page (review.js) opens each item it loads here.

import { MaskEditor } from "./editor/mask_editor.js";
import { decodeRle, encodeRle } from "./rle.js";
import * as E from "./review_edits.js";
import * as M from "./review_model.js";
import { elementLabel } from "./review_view.js";
import { elementColour } from "./overlay_colours.js";

export class Workspace {
  /**
   * @param {object} options
   *   view, toolbar, history, api   the page's (ReviewView, Toolbar, History, ReviewApi)
   *   clock      {paused}: while the page is hidden, time does not count
   *   onChange() the work changed (the page saves the draft)
   */
  constructor({ view, toolbar, history, api, clock, onChange }) {
    Object.assign(this, { view, toolbar, history, api, clock, onChange });
    this.payload = null; // the item as POST /api/review/next/ answers it
    this.work = null;
    this.selected = null;
    this.selectedSince = null;
    this.editing = null; // the element whose phrase is being typed
    this.showEarlier = false; // the annotators of earlier pipeline runs are shown
    this.editor = null;
    this.handlers = {
      select: (id) => this.select(id),
      accept: (id) => this.accept(id),
      reject: (id) => this.reject(id),
      editPhrase: (id) => this.editPhrase(id),
      editBox: (id) => { this.select(id); this.editor.setTool("box"); },
      editMask: (id) => { this.select(id); this.editor.setTool("brush"); },
      addElement: (key, role) => this.addElement(key, role),
      addTriplet: () => this.addTriplet(),
    };
  }

  /** Start on an item with this work (nothing selected; the editor comes with buildEditor). */
  open(payload, work) {
    this.payload = payload;
    this.work = work;
    this.openedAt = performance.now();
    this.selected = null;
    this.editing = null;
    this.showEarlier = false;
  }

  /** No item any more. */
  close() {
    this.payload = null;
    this.work = null;
    if (this.editor) this.editor.destroy();
    this.editor = null;
  }

  buildEditor() {
    if (this.editor) this.editor.destroy();
    const canvas = this.view.freshCanvas();
    const { image } = this.payload;
    this.editor = new MaskEditor(canvas, {
      width: image.width,
      height: image.height,
      imageUrl: image.url,
      history: this.history,
      onChange: (id, kind) => this.onEditorChange(id, kind),
      onSelect: (id) => this.select(id),
      onMessage: (text, level) => this.view.setStatus(text, level),
      refine: this.payload.refine_available === false ? null : (req) => this.api.refine(this.payload.image.id, req),
    });
    this.toolbar.attach(this.editor);
    this.editor.ready.catch((err) => this.view.setStatus(err.message, "error"));
    this.syncEditorElements();
    this.toolbar.renderTool(this.editor.tool, this.editor.brushSize);
  }

  /** Give the editor the current elements (after a structural change: add or remove). */
  syncEditorElements() {
    this.editor.setElements(M.elementList(this.work).map(({ id, role, element }, n) => ({
      id, role, colour: elementColour(n),
      label: elementLabel(element, role),
      box: element.box,
      mask: element.mask ? decodeRle(element.mask).data : null,
      rejected: element.status === "rejected",
    })));
    if (this.selected) this.editor.select(this.selected);
  }

  /** The side panels and the count of unchecked elements beside Approve. */
  renderPanels() {
    if (!this.work) return;
    this.view.renderPanels({
      work: this.work, payload: this.payload, selected: this.selected, editing: this.editing,
      onLabel: (e) => this.setLabel(e), onConfidence: (c) => this.setConfidence(c), handlers: this.handlers,
      onCriticLabel: () => this.takeCriticLabel(),
      showEarlier: this.showEarlier, onToggleEarlier: () => { this.showEarlier = !this.showEarlier; this.renderPanels(); },
    });
    this.view.renderUnchecked(M.uncheckedElements(this.work).length, Boolean(this.payload.require_all_checked));
  }

  // ---- changes (each one undoable) ---------------------------------------------

  /** Apply an edit {label, apply, revert, structural} and record it. */
  change({ label, apply, revert, structural = false }) {
    apply();
    this.history.push({ label, undo: () => { revert(); this.afterChange(structural); }, redo: () => { apply(); this.afterChange(structural); } });
    this.afterChange(structural);
  }

  afterChange(structural = false) {
    if (structural) this.syncEditorElements();
    else for (const { id, role, element } of M.elementList(this.work)) {
      this.editor.updateElement(id, { rejected: element.status === "rejected", label: elementLabel(element, role) });
    }
    if (this.selected && !M.findElement(this.work, this.selected)) this.selected = null;
    this.renderPanels();
    this.onChange();
  }

  /** The editor changed a box or a mask (undo and redo included). */
  onEditorChange(id, kind) {
    const e = M.findElement(this.work, id);
    if (!e) return;
    const { height, width } = this.payload.image;
    if (kind === "box") e.box = this.editor.getBox(id);
    if (kind === "mask") {
      const mask = this.editor.getMask(id);
      e.mask = mask ? encodeRle(mask, height, width) : null;
    }
    if (e.status === "rejected") e.status = "pending"; // drawing on a rejected element brings it back
    this.renderPanels();
    this.onChange();
  }

  accept(id) {
    const e = M.findElement(this.work, id);
    if (!e) return;
    if (e.status !== "added") this.change(E.acceptEdit(e));
    this.move(1);
  }

  /** Shift+A: every element not decided yet is accepted, as one undoable, explicit act. */
  acceptAll() {
    const edit = E.acceptAllEdit(this.work);
    if (!edit) {
      this.view.setStatus("Every element is decided already.");
      return;
    }
    this.change(edit);
    this.view.setStatus(`Accepted the ${edit.count} element${edit.count === 1 ? "" : "s"} not decided yet (Z undoes).`);
  }

  /** C: the emotion the critic suggests. */
  takeCriticLabel() {
    const label = M.criticSuggestion(this.payload.critic);
    if (!label) this.view.setStatus("The critic suggests no emotion for this item.");
    else if (label === this.work.label) this.view.setStatus(`Emotion: ${label} (the critic's suggestion) already`);
    else this.setLabel(label);
  }

  reject(id) {
    const edit = E.rejectEdit(this.work, id);
    if (!edit) return;
    if (edit.removes) this.move(1); // off the element before it goes
    this.change(edit);
    if (edit.rejects) this.move(1);
  }

  setConfidence(level) {
    const edit = E.confidenceEdit(this.work, level);
    this.change(edit);
    this.view.setStatus(edit.value == null ? "How sure: not given" : `How sure: ${Math.round(edit.value * 5)} of 5`);
  }

  setLabel(emotion) {
    const edit = E.labelEdit(this.work, emotion);
    if (!edit) return;
    this.change(edit);
    this.view.setStatus(`Emotion: ${emotion}`);
  }

  /** Type the element's phrase in its row: Enter or Tab keeps it, Esc cancels. */
  editPhrase(id) {
    if (!M.findElement(this.work, id)) return;
    this.select(id);
    this.editing = id;
    this.renderPanels();
    const input = this.view.phraseInput(id);
    if (!input) return;
    input.focus();
    input.select();
    let done = false;
    const finish = (commit) => {
      if (done) return;
      done = true;
      this.editing = null;
      const e = M.findElement(this.work, id);
      const value = M.normPhrase(input.value);
      if (commit && e && value && value !== e.phrase) this.change(E.phraseEdit(e, value));
      else if (e && !e.phrase && e.status === "added" && !value) this.history.undo(); // an element added and left without a phrase is dropped
      else this.renderPanels();
    };
    input.addEventListener("keydown", (ev) => {
      if (!["Enter", "Escape", "Tab"].includes(ev.key)) return;
      ev.preventDefault();
      ev.stopPropagation();
      finish(ev.key !== "Escape");
      if (ev.key === "Tab") this.move(ev.shiftKey ? -1 : 1);
    });
    input.addEventListener("blur", () => finish(true));
  }

  addElement(key, role) {
    const edit = E.addElementEdit(this.work, key, role);
    if (!edit) return;
    this.change(edit);
    this.editPhrase(edit.id);
  }

  addTriplet() {
    const edit = E.addTripletEdit(this.work);
    this.change(edit);
    this.editPhrase(edit.id);
  }

  // ---- selection and time per element --------------------------------------------

  // Time counts while the page is visible: a tab left in the background adds nothing.
  tick() {
    const now = performance.now();
    if (!this.clock.paused) {
      this.work.elapsed_ms = (this.work.elapsed_ms || 0) + (now - this.openedAt);
      if (this.selected && this.selectedSince != null) {
        this.work.time_ms[this.selected] = (this.work.time_ms[this.selected] || 0) + (now - this.selectedSince);
      }
    }
    this.openedAt = now;
    if (this.selectedSince != null) this.selectedSince = now;
  }

  select(id) {
    this.tick();
    this.selected = id && M.findElement(this.work, id) ? id : null;
    this.selectedSince = this.selected ? performance.now() : null;
    this.editor?.select(this.selected);
    this.renderPanels();
    this.view.revealElement(this.selected);
  }

  move(step) {
    const list = M.elementList(this.work);
    if (!list.length) return;
    const i = list.findIndex((x) => x.id === this.selected);
    const next = i < 0 ? (step > 0 ? 0 : list.length - 1) : (i + step + list.length) % list.length;
    this.select(list[next].id);
  }
}
