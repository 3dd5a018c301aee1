// The review page: asks the review API for the next item, shows it, keeps the
// reviewer's work as a draft after every change, and submits it.
// The API is documented in docs/review-api.md; this page uses only that API.

import { History } from "./editor/history.js";
import { MaskEditor } from "./editor/mask_editor.js";
import { RefineUnavailable } from "./editor/tools/refine.js";
import { decodeRle, encodeRle } from "./rle.js";
import { isTyping, keyAction } from "./review_keys.js";
import * as M from "./review_model.js";
import * as P from "./review_panels.js";

const DRAFT_DELAY_MS = 700;
// Saving a draft renews the lease (docs/review-api.md): while the reviewer is active
// but changes nothing (reading, zooming), a heartbeat save keeps the lease alive.
const HEARTBEAT_MS = 4 * 60 * 1000;
const API = "/api/review/";

function truncate(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

class ReviewPage {
  constructor(root) {
    this.root = root;
    this.dataset = root.dataset.dataset;
    this.csrf = root.dataset.csrf;
    this.imagePageUrl = root.dataset.imagePage; // ".../images/0/" with 0 as placeholder
    this.$ = (sel) => root.querySelector(sel);
    this.history = new History({ onChange: () => this.afterHistory() });
    this.editor = null;
    this.payload = null;
    this.work = null;
    this.selected = null;
    this.editing = null;
    this.mode = "approved"; // the decision Enter submits
    this.saveTimer = null;
    this.savePromise = null;
    this.dirty = false;
    this.busy = false;
    this.keysOpen = false;
    this._wireStatic();
  }

  // ---- HTTP ------------------------------------------------------------------

  async api(method, path, body, { keepalive = false } = {}) {
    const res = await fetch(API + path, {
      method,
      credentials: "same-origin",
      keepalive,
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": this.csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    return { status: res.status, ok: res.ok, data };
  }

  // ---- loading an item ---------------------------------------------------------

  async next(mode = "restore") {
    this.setStatus("Loading the next item…");
    const { status, data } = await this.api("POST", "next/", { dataset: this.dataset });
    if (status === 404) return this.showEmpty(data?.detail || "No item left to review.");
    if (status !== 200) return this.setStatus(`Could not get an item: ${data?.detail || `HTTP ${status}`}`, "error");
    await this.load(data, mode);
    this.refreshProgress();
  }

  async load(payload, mode) {
    const previous = this.work;
    this.payload = payload;
    this.$("#review-empty").hidden = true;
    this.$("#review-workspace").hidden = false;
    this.clearConflict();
    this.setError("");
    const draft = payload.draft?.payload;
    let restored = false;
    if (mode === "keep" && previous && previous.image_id === payload.image.id) {
      this.work = previous;
      this.work.expected_version = payload.version;
    } else if (mode !== "discard" && M.draftMatches(draft, payload.image.id)) {
      this.work = draft;
      restored = true;
    } else {
      this.work = M.workFromBase({ imageId: payload.image.id, version: payload.version, base: payload.base });
    }
    this.openedAt = performance.now();
    this.mode = this.work.decision && this.work.decision !== "approved" ? this.work.decision : "approved";
    this.history.clear();
    this.selected = null;
    this.editing = null;
    this.setSaveState(restored ? "draft restored" : ""); // not the previous item's state
    this.renderHeader();
    this.buildEditor();
    this.renderPanels();
    this.renderSubmit();
    const first = M.elementList(this.work)[0];
    if (first) this.select(first.id);
    if (restored) {
      const when = payload.draft.saved_at ? new Date(payload.draft.saved_at).toLocaleTimeString() : "";
      const stale = this.work.expected_version < payload.version
        ? ` The item changed since (version ${this.work.expected_version} → ${payload.version}); submitting will show what changed.`
        : "";
      this.setStatus(`Your draft${when ? ` from ${when}` : ""} is restored.${stale}`, stale ? "error" : "info");
    } else if (mode === "keep") {
      this.setStatus(`Reloaded version ${payload.version} of the item with your edits kept. Check them, then submit.`);
    } else if (mode === "discard") {
      this.setStatus(`Your edits were discarded; this is version ${payload.version} of the item.`);
    } else {
      this.setStatus("Ready. Press ? for the keys.");
    }
    this.root.dataset.imageId = String(payload.image.id);
    this.root.dataset.leaseId = String(payload.lease.id);
    this.root.dataset.version = String(this.work.expected_version);
    if (mode === "keep" || mode === "discard") await this.saveDraft();
    this.$(".stage canvas")?.focus({ preventScroll: true });
  }

  buildEditor() {
    if (this.editor) this.editor.destroy();
    const old = this.$(".stage canvas");
    const canvas = document.createElement("canvas");
    canvas.setAttribute("aria-label", "Image with boxes and masks; keys V B X P S choose the tool");
    old.replaceWith(canvas);
    const { image } = this.payload;
    this.editor = new MaskEditor(canvas, {
      width: image.width,
      height: image.height,
      imageUrl: image.url,
      history: this.history,
      onChange: (id, kind) => this.onEditorChange(id, kind),
      onSelect: (id) => this.select(id),
      onMessage: (text, level) => this.setStatus(text, level),
      refine: (req) => this.refine(req),
    });
    canvas.addEventListener("toolchange", (ev) => this.renderToolbar(ev.detail));
    canvas.addEventListener("brushchange", (ev) => (this.$("#brush-size").textContent = `${ev.detail}px`));
    canvas.addEventListener("overlayschange", (ev) => (this.$("#overlays").checked = ev.detail));
    this.editor.setOpacity(Number(this.$("#opacity").value) / 100);
    this.editor.setOverlaysVisible(this.$("#overlays").checked);
    this.editor.ready.catch((err) => this.setStatus(err.message, "error"));
    this.syncEditorElements();
    this.renderToolbar(this.editor.tool);
  }

  /** Give the editor the current elements (after a structural change: add or remove). */
  syncEditorElements() {
    this.editor.setElements(M.elementList(this.work).map(({ id, role, element }) => ({
      id, role,
      label: truncate(element.phrase || role, 28),
      box: element.box,
      mask: element.mask ? decodeRle(element.mask).data : null,
      rejected: element.status === "rejected",
    })));
    if (this.selected) this.editor.select(this.selected);
  }

  async refine({ box, points, labels }) {
    const { status, data } = await this.api("POST", "refine/", { image_id: this.payload.image.id, box, points, labels });
    if (status === 200) return { mask: data.mask ? decodeRle(data.mask).data : null, score: data.score };
    if ([502, 503, 504].includes(status)) throw new RefineUnavailable(data?.detail || `Click-to-refine is not available (HTTP ${status}).`);
    throw new Error(data?.detail || `HTTP ${status}`);
  }

  // ---- changes (each one undoable) ---------------------------------------------

  change(label, apply, revert, { structural = false } = {}) {
    apply();
    this.history.push({ label, undo: () => { revert(); this.afterChange(structural); }, redo: () => { apply(); this.afterChange(structural); } });
    this.afterChange(structural);
  }

  afterChange(structural = false) {
    if (structural) this.syncEditorElements();
    else for (const { id, role, element } of M.elementList(this.work)) {
      this.editor.updateElement(id, { rejected: element.status === "rejected", label: truncate(element.phrase || role, 28) });
    }
    if (this.selected && !M.findElement(this.work, this.selected)) this.selected = null;
    this.renderPanels();
    this.scheduleSave();
  }

  afterHistory() {
    this.$("#undo").disabled = !this.history.done.length;
    this.$("#redo").disabled = !this.history.undone.length;
  }

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
    this.scheduleSave();
  }

  accept(id) {
    const e = M.findElement(this.work, id);
    if (!e) return;
    if (e.status !== "added") {
      const before = e.status;
      this.change("accept", () => (e.status = "accepted"), () => (e.status = before));
    }
    this.move(1);
  }

  reject(id) {
    const { key, role } = M.parseElementId(id);
    const t = this.work.triplets.find((x) => x.key === key);
    const e = t?.elements[role];
    if (!e) return;
    if (e.status === "added") {
      // a person's own addition: rejecting it removes it
      const index = this.work.triplets.indexOf(t);
      const onlyOne = Object.keys(t.elements).length === 1 && t.added;
      this.move(1);
      this.change("remove added element",
        () => { delete t.elements[role]; if (onlyOne) this.work.triplets.splice(index, 1); },
        () => { t.elements[role] = e; if (onlyOne) this.work.triplets.splice(index, 0, t); },
        { structural: true });
      return;
    }
    const before = e.status;
    const after = before === "rejected" ? "pending" : "rejected";
    this.change(after === "rejected" ? "reject" : "un-reject", () => (e.status = after), () => (e.status = before));
    if (after === "rejected") this.move(1);
  }

  setConfidence(level) {
    const before = this.work.confidence ?? null;
    const after = before === level ? null : level;
    this.change(`confidence ${after ?? "none"}`, () => (this.work.confidence = after), () => (this.work.confidence = before));
    this.setStatus(after == null ? "How sure: not given" : `How sure: ${Math.round(after * 5)} of 5`);
  }

  setLabel(emotion) {
    const before = this.work.label;
    if (before === emotion) return;
    this.change(`label ${emotion}`, () => (this.work.label = emotion), () => (this.work.label = before));
    this.setStatus(`Emotion: ${emotion}`);
  }

  editPhrase(id) {
    if (!M.findElement(this.work, id)) return;
    this.select(id);
    this.editing = id;
    this.renderPanels();
    const input = this.$(`.phrase-input[data-id="${CSS.escape(id)}"]`);
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
      if (commit && e && value && value !== e.phrase) {
        const before = e.phrase;
        this.change("edit phrase", () => (e.phrase = value), () => (e.phrase = before));
      } else if (e && !e.phrase && e.status === "added" && !value) {
        this.history.undo(); // an element added and left without a phrase is dropped
      } else this.renderPanels();
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        ev.stopPropagation();
        finish(true);
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        ev.stopPropagation();
        finish(false);
      } else if (ev.key === "Tab") {
        ev.preventDefault();
        ev.stopPropagation();
        finish(true);
        this.move(ev.shiftKey ? -1 : 1);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  addElement(key, role) {
    const t = this.work.triplets.find((x) => x.key === key);
    if (!t || t.elements[role]) return;
    const e = { phrase: "", box: null, mask: null, box_score: null, mask_score: null, status: "added", origin: null };
    this.change(`add ${role}`, () => (t.elements[role] = e), () => delete t.elements[role], { structural: true });
    this.editPhrase(M.elementId(key, role));
  }

  addTriplet() {
    const t = { key: M.uuid4(), added: true, elements: {
      subject: { phrase: "", box: null, mask: null, box_score: null, mask_score: null, status: "added", origin: null },
    } };
    this.change("add triplet", () => this.work.triplets.push(t), () => this.work.triplets.splice(this.work.triplets.indexOf(t), 1), { structural: true });
    this.editPhrase(M.elementId(t.key, "subject"));
  }

  // ---- selection and time per element --------------------------------------------

  // Time counts while the page is visible: a tab left in the background adds nothing.
  tick() {
    const now = performance.now();
    if (!this.clockPaused) {
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
    const row = this.selected && this.$(`.element[data-id="${CSS.escape(this.selected)}"]`);
    row?.scrollIntoView({ block: "nearest" });
  }

  move(step) {
    const list = M.elementList(this.work);
    if (!list.length) return;
    const i = list.findIndex((x) => x.id === this.selected);
    const next = i < 0 ? (step > 0 ? 0 : list.length - 1) : (i + step + list.length) % list.length;
    this.select(list[next].id);
  }

  // ---- drafts --------------------------------------------------------------------

  scheduleSave() {
    this.dirty = true;
    this.setSaveState("unsaved changes");
    clearTimeout(this.saveTimer);
    this.saveTimer = setTimeout(() => this.saveDraft(), DRAFT_DELAY_MS);
  }

  draftPayload() {
    this.tick();
    this.work.decision = this.mode;
    this.work.reason = this.$("#reason").value;
    return this.work;
  }

  async saveDraft({ keepalive = false } = {}) {
    clearTimeout(this.saveTimer);
    if (!this.payload) return;
    if (this.savePromise) await this.savePromise;
    const leaseId = this.payload.lease.id;
    this.dirty = false;
    this.setSaveState("saving…");
    this.savePromise = this.api("PUT", `leases/${leaseId}/draft/`, { payload: this.draftPayload() }, { keepalive })
      .then(({ ok, status, data }) => {
        this.lastSavedAt = Date.now();
        if (ok && data.lease_expires_at && this.payload?.lease.id === leaseId) {
          this.payload.lease.expires_at = data.lease_expires_at;
          this.renderLease();
        }
        if (ok) this.setSaveState(`draft saved ${new Date(data.saved_at).toLocaleTimeString()}`, "saved");
        else {
          this.dirty = true;
          this.setSaveState(`draft NOT saved: ${data?.detail || `HTTP ${status}`}`, "error");
        }
      })
      .catch((err) => {
        this.dirty = true;
        this.setSaveState(`draft NOT saved: ${err.message}`, "error");
      })
      .finally(() => (this.savePromise = null));
    return this.savePromise;
  }

  // ---- submitting ------------------------------------------------------------------

  async submit(decision) {
    if (this.busy || !this.payload) return;
    const reason = this.$("#reason").value;
    if (decision !== "approved" && !reason.trim()) {
      this.setMode(decision);
      this.setError(`Give a reason to ${decision === "rejected" ? "reject" : "flag"} the item.`);
      return;
    }
    const problems = M.checkWork(this.work, decision);
    if (problems.length) {
      this.setError(problems.map((p) => p.message).join(" "));
      if (problems[0].elementId) this.select(problems[0].elementId);
      return;
    }
    this.busy = true;
    this.root.classList.add("busy");
    this.setError("");
    try {
      await this.saveDraft(); // the work is on the server whatever the answer
      const body = M.buildSubmission(this.work, { decision, reason, elapsedMs: 0 });
      const { status, data } = await this.api("POST", `leases/${this.payload.lease.id}/submit/`, body);
      if (status === 201) {
        this.showDone(data, decision);
        await this.next();
      } else if (status === 409 && data?.changes?.lease_lost) this.showLost(data.detail);
      else if (status === 409) this.showConflict(data);
      else if (status === 400) this.setError(`${data?.field ? `${data.field}: ` : ""}${data?.detail || "invalid value"}`, data?.field);
      else if (status === 403) this.showLost(data?.detail || "This item is no longer yours.");
      else this.setError(`Submitting failed: ${data?.detail || `HTTP ${status}`}. Your work is kept as a draft.`);
    } catch (err) {
      this.setError(`Submitting failed: ${err.message}. Your work is kept as a draft.`);
    } finally {
      this.busy = false;
      this.root.classList.remove("busy");
    }
  }

  showDone(data, decision) {
    const box = this.$("#review-done");
    box.replaceChildren(
      P.h("span", {}, `Submitted (${decision}): version ${data.version}, ${data.disagreements} disagreement${data.disagreements === 1 ? "" : "s"} with the models logged. `),
      P.h("a", { href: this.imagePageUrl.replace("/0/", `/${this.payload.image.id}/`) }, "See the image"),
    );
    box.hidden = false;
    clearTimeout(this.doneTimer);
    this.doneTimer = setTimeout(() => (box.hidden = true), 8000);
  }

  showConflict(data) {
    const box = this.$("#review-conflict");
    box.replaceChildren(P.conflictBox({
      detail: data?.detail, changes: data?.changes,
      onKeep: () => this.next("keep"),
      onDiscard: () => this.next("discard"),
    }));
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
    this.setStatus("The item changed meanwhile: see the box on the right. Your edits are kept.", "error");
  }

  showLost(detail) {
    const box = this.$("#review-conflict");
    box.replaceChildren(P.h("div", { class: "conflict", role: "alert" },
      P.h("strong", {}, "You cannot submit this item."), P.h("p", {}, detail),
      P.h("p", { class: "muted" }, "Your draft of it is kept."),
      P.button("Get the next item", () => this.next(), { class: "primary" })));
    box.hidden = false;
  }

  clearConflict() {
    const box = this.$("#review-conflict");
    box.replaceChildren();
    box.hidden = true;
  }

  setMode(mode) {
    this.mode = mode;
    this.renderSubmit();
    if (mode !== "approved") this.$("#reason").focus();
    this.scheduleSave();
  }

  async skip() {
    if (!this.payload) return;
    await this.api("POST", `leases/${this.payload.lease.id}/skip/`);
    await this.next();
  }

  async release() {
    if (!this.payload) return;
    await this.saveDraft();
    await this.api("POST", `leases/${this.payload.lease.id}/release/`);
    window.location.href = this.root.dataset.indexUrl;
  }

  async refreshProgress() {
    const { ok, data } = await this.api("GET", `progress/?dataset=${encodeURIComponent(this.dataset)}`);
    if (!ok) return;
    this.$("#progress-text").textContent = `${data.done} done · ${data.in_review} open · ${data.left} left`;
    const bar = this.$("#progress-bar");
    bar.style.width = `${data.total ? Math.round((100 * data.done) / data.total) : 0}%`;
  }

  // ---- rendering ------------------------------------------------------------------------

  renderHeader() {
    const { image } = this.payload;
    this.$("#image-name").textContent = image.original_name;
    this.$("#image-meta").textContent = `${image.width}×${image.height} · ${image.source} · v${this.work.expected_version}`;
    const link = this.$("#image-link");
    link.href = this.imagePageUrl.replace("/0/", `/${image.id}/`);
    link.hidden = false;
    this.renderLease();
  }

  renderLease() {
    const at = new Date(this.payload.lease.expires_at);
    this.$("#lease-until").textContent = `leased until ${at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  }

  renderPanels() {
    if (!this.work) return;
    const p = this.payload;
    const critic = p.critic || null;
    const parts = [
      P.labelPanel({
        label: this.work.label, modelLabel: this.work.model_label, ces: p.base?.ces, critic, disagreement: p.disagreement,
        onPick: (e) => this.setLabel(e), confidence: this.work.confidence ?? null, onConfidence: (c) => this.setConfidence(c),
      }),
      P.elementsPanel({
        work: this.work, selected: this.selected, critic, editing: this.editing,
        handlers: {
          select: (id) => this.select(id),
          accept: (id) => this.accept(id),
          reject: (id) => this.reject(id),
          editPhrase: (id) => this.editPhrase(id),
          editBox: (id) => { this.select(id); this.editor.setTool("box"); },
          editMask: (id) => { this.select(id); this.editor.setTool("brush"); },
          addElement: (key, role) => this.addElement(key, role),
          addTriplet: () => this.addTriplet(),
        },
      }),
      P.annotatorsPanel({ annotators: p.annotators, disagreement: p.disagreement }),
      P.rationalePanel({ rationale: this.work.rationale, critic }),
    ];
    const scroller = this.$("#panels");
    const top = scroller.scrollTop;
    scroller.replaceChildren(...parts.filter(Boolean));
    scroller.scrollTop = top;
  }

  renderToolbar(tool) {
    for (const b of this.root.querySelectorAll("[data-tool]")) b.setAttribute("aria-pressed", b.dataset.tool === tool ? "true" : "false");
    this.$("#brush-size").textContent = `${this.editor.brushSize}px`;
  }

  renderSubmit() {
    const mode = this.mode;
    this.root.dataset.mode = mode;
    const reasonRow = this.$("#reason-row");
    reasonRow.hidden = mode === "approved";
    this.$("#reason-label").textContent = mode === "rejected" ? "Why reject this item?" : "Why flag this item?";
    this.$("#reason-submit").textContent = mode === "rejected" ? "Reject and submit" : "Flag and submit";
    if (this.work && this.$("#reason").value !== (this.work.reason || "") && document.activeElement !== this.$("#reason")) {
      this.$("#reason").value = this.work.reason || "";
    }
  }

  setStatus(text, level = "info") {
    const el = this.$("#review-status");
    el.textContent = text;
    el.dataset.level = level;
  }

  setError(text, field) {
    const el = this.$("#submit-error");
    el.textContent = text;
    el.hidden = !text;
    if (field) el.dataset.field = field;
    else delete el.dataset.field;
  }

  setSaveState(text, state = "") {
    const el = this.$("#save-state");
    el.textContent = text;
    el.dataset.state = state;
  }

  showEmpty(detail) {
    this.payload = null;
    this.work = null;
    if (this.editor) this.editor.destroy();
    this.editor = null;
    this.$("#review-workspace").hidden = true;
    for (const id of ["#image-name", "#image-meta", "#lease-until"]) this.$(id).textContent = "";
    this.$("#image-link").hidden = true;
    this.setSaveState("");
    this.setStatus("");
    const box = this.$("#review-empty");
    box.hidden = false;
    this.$("#empty-detail").textContent = detail;
    this.refreshProgress();
  }

  toggleKeys(force) {
    const open = force ?? !this.keysOpen;
    this.keysOpen = open;
    const host = this.$("#keys-host");
    host.replaceChildren(open ? P.keysOverlay(() => this.toggleKeys(false)) : "");
  }

  // ---- keyboard ----------------------------------------------------------------------------

  onKey(ev) {
    if (this.keysOpen) {
      if (ev.key === "Escape" || ev.key === "?") {
        ev.preventDefault();
        this.toggleKeys(false);
      }
      return;
    }
    if (isTyping(ev.target) || !this.work || this.busy) return;
    const action = keyAction(ev, { selected: Boolean(this.selected), mode: this.mode });
    if (action?.name !== "move" && this.editor && this.editor.handleKey(ev)) {
      ev.preventDefault();
      return;
    }
    if (!action) return;
    ev.preventDefault();
    const run = {
      move: (step) => this.move(step),
      undo: () => this.history.undo(),
      redo: () => this.history.redo(),
      label: (emotion) => this.setLabel(emotion),
      confidence: (level) => this.setConfidence(level),
      keys: () => this.toggleKeys(true),
      accept: () => this.accept(this.selected),
      reject: () => this.reject(this.selected),
      edit: () => this.editPhrase(this.selected),
      addTriplet: () => this.addTriplet(),
      mode: (mode) => this.setMode(mode),
      submit: () => this.submit("approved"),
    };
    run[action.name](action.arg);
  }

  // ---- static controls -------------------------------------------------------------------

  _wireStatic() {
    document.addEventListener("keydown", (ev) => this.onKey(ev));
    for (const b of this.root.querySelectorAll("button")) b.addEventListener("mousedown", (ev) => ev.preventDefault());
    for (const b of this.root.querySelectorAll("[data-tool]")) b.addEventListener("click", () => this.editor?.setTool(b.dataset.tool));
    this.$("#brush-smaller").addEventListener("click", () => this.editor?.setBrushSize(this.editor.brushSize * 0.8));
    this.$("#brush-bigger").addEventListener("click", () => this.editor?.setBrushSize(this.editor.brushSize * 1.25));
    this.$("#overlays").addEventListener("change", (ev) => this.editor?.setOverlaysVisible(ev.target.checked));
    this.$("#opacity").addEventListener("input", (ev) => this.editor?.setOpacity(Number(ev.target.value) / 100));
    this.$("#undo").addEventListener("click", () => this.history.undo());
    this.$("#redo").addEventListener("click", () => this.history.redo());
    this.$("#fit").addEventListener("click", () => this.editor?.fit());
    this.$("#keys").addEventListener("click", () => this.toggleKeys(true));
    this.$("#approve").addEventListener("click", () => this.submit("approved"));
    this.$("#reject-item").addEventListener("click", () => this.setMode("rejected"));
    this.$("#flag-item").addEventListener("click", () => this.setMode("flagged"));
    this.$("#reason-submit").addEventListener("click", () => this.submit(this.mode));
    this.$("#reason-cancel").addEventListener("click", () => this.setMode("approved"));
    this.$("#skip").addEventListener("click", () => this.skip());
    this.$("#release").addEventListener("click", () => this.release());
    const reason = this.$("#reason");
    reason.addEventListener("input", () => this.scheduleSave());
    reason.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        this.submit(this.mode);
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        reason.blur();
        this.setMode("approved");
      }
    });
    const flush = () => {
      if (this.dirty && this.payload) this.saveDraft({ keepalive: true });
    };
    window.addEventListener("pagehide", flush);
    this.lastActivity = 0;
    this.lastSavedAt = Date.now();
    for (const type of ["keydown", "pointerdown", "wheel"]) document.addEventListener(type, () => (this.lastActivity = Date.now()), { passive: true });
    setInterval(() => {
      const active = this.lastActivity > this.lastSavedAt;
      if (this.payload && active && Date.now() - this.lastSavedAt >= HEARTBEAT_MS && !this.busy) this.saveDraft();
    }, 30 * 1000);
    document.addEventListener("visibilitychange", () => {
      if (this.work) this.tick();
      this.clockPaused = document.visibilityState === "hidden";
      if (this.clockPaused) flush();
    });
    this.afterHistory();
  }
}

const root = document.querySelector("[data-review]");
if (root) {
  const page = new ReviewPage(root);
  window.reviewPage = page; // for the browser tests and the console
  page.next();
}
