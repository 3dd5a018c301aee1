// The review page's DOM outside the canvas and the toolbar: the header, the side panels,
// the decision row, the status lines and the boxes that come and go
// (submitted, conflict, lost, nothing left, keys). It shows what the page controller
// (review.js) gives it and holds no state of the review.

import { h, truncate } from "./dom.js";
import * as P from "./review_panels.js";

/** The label the editor draws on an element's box. */
export function elementLabel(element, role) {
  return truncate(element.phrase || role, 28);
}

export class ReviewView {
  constructor(root) {
    this.root = root;
    this.$ = (sel) => root.querySelector(sel);
    this.imagePageUrl = root.dataset.imagePage; // ".../images/0/" with 0 as placeholder
    this.handlers = null; // the element handlers renderPanels was last given
    this.$("#panels").addEventListener("click", (ev) => this.handlers && P.phraseDoubleClick(ev, this.handlers));
  }

  imageUrl(imageId) {
    return this.imagePageUrl.replace("/0/", `/${imageId}/`);
  }

  /** Show the workspace for a new item (and hide what belonged to the last one). */
  showWorkspace() {
    this.$("#review-empty").hidden = true;
    this.$("#review-workspace").hidden = false;
  }

  /** A fresh canvas in place of the old one, for a new editor. */
  freshCanvas() {
    const old = this.$(".stage canvas");
    const canvas = document.createElement("canvas");
    canvas.setAttribute("aria-label", "Image with boxes and masks; keys V B X P S choose the tool");
    old.replaceWith(canvas);
    return canvas;
  }

  renderHeader(image, version, lease) {
    this.$("#image-name").textContent = image.original_name;
    this.$("#image-meta").textContent = `${image.width}×${image.height} · ${image.source} · v${version}`;
    const link = this.$("#image-link");
    link.href = this.imageUrl(image.id);
    link.hidden = false;
    this.renderLease(lease);
  }

  renderLease(lease) {
    const at = new Date(lease.expires_at);
    this.$("#lease-until").textContent = `leased until ${at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  }

  renderPanels({ work, payload, selected, editing, onLabel, onConfidence, handlers, onCriticLabel, showEarlier, onToggleEarlier }) {
    const critic = payload.critic || null;
    this.handlers = handlers;
    const parts = [
      P.labelPanel({
        label: work.label, modelLabel: work.model_label, ces: payload.base?.ces, critic, disagreement: payload.disagreement,
        onPick: onLabel, confidence: work.confidence ?? null, onConfidence, onCriticLabel,
      }),
      P.elementsPanel({ work, selected, critic, editing, handlers }),
      P.annotatorsPanel({
        annotators: payload.annotators, disagreement: payload.disagreement,
        earlier: payload.earlier_annotators, showEarlier, onToggleEarlier,
      }),
      P.rationalePanel({ rationale: work.rationale, critic }),
    ];
    const scroller = this.$("#panels");
    const top = scroller.scrollTop;
    scroller.replaceChildren(...parts.filter(Boolean));
    scroller.scrollTop = top;
  }

  /** Scroll the selected element's row into view. */
  revealElement(id) {
    const row = id && this.$(`.element[data-id="${CSS.escape(id)}"]`);
    row?.scrollIntoView({ block: "nearest" });
  }

  /** The phrase input of an element being edited (renderPanels drew it), or null. */
  phraseInput(id) {
    return this.$(`.phrase-input[data-id="${CSS.escape(id)}"]`);
  }

  /** The decision row for `mode` (the decision Enter submits); the reason field shows the work's reason. */
  renderSubmit(mode, work) {
    this.root.dataset.mode = mode;
    const reasonRow = this.$("#reason-row");
    reasonRow.hidden = mode === "approved";
    this.$("#reason-label").textContent = mode === "rejected" ? "Why reject this item?" : "Why flag this item?";
    this.$("#reason-submit").textContent = mode === "rejected" ? "Reject and submit" : "Flag and submit";
    if (work && this.reason !== (work.reason || "") && document.activeElement !== this.$("#reason")) {
      this.$("#reason").value = work.reason || "";
    }
  }

  /** Beside Approve: how many elements would go with the item unchecked (`required`: the dataset refuses that). */
  renderUnchecked(n, required) {
    const count = this.$("#unchecked-count");
    count.textContent = n ? ` (${n} unchecked)` : "";
    count.dataset.count = String(n);
    const approve = this.$("#approve");
    approve.classList.toggle("blocked", required && n > 0);
    const error = this.$("#submit-error");
    if (!n && error.dataset.field === "element_decisions") this.setError(""); // the refusal no longer holds
    const what = `${n} element${n === 1 ? "" : "s"}`;
    approve.title = !n ? "Approve and submit (Enter)"
      : required ? `${what} not checked yet: this dataset approves only when each is decided (A each, Shift+A all remaining)`
        : `Approve and submit (Enter); ${what} go with the item as not checked (A each, Shift+A all remaining)`;
  }

  get reason() {
    return this.$("#reason").value;
  }

  focusReason() {
    this.$("#reason").focus();
  }

  focusCanvas() {
    this.$(".stage canvas")?.focus({ preventScroll: true });
  }

  setBusy(busy) {
    this.root.classList.toggle("busy", busy);
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

  /** The reviewer's own count first (it moves with every submit), then the dataset's. */
  renderProgress({ done, in_review: inReview, left, total, adjudication, you }) {
    const text = this.$("#progress-text");
    const items = `${done} of ${total} items done`;
    text.textContent = you ? `you: ${you.reviewed} reviewed · ${you.left} left · ${items}` : `${done} done · ${inReview} open · ${left} left`;
    text.title = `Dataset: ${done} done, ${inReview} being reviewed now, ${adjudication} in adjudication, ${left} waiting for a reviewer`
      + " (an item that needs several reviews stays waiting until all are in).";
    const bar = this.$("#progress-bar");
    bar.style.width = `${total ? Math.round((100 * done) / total) : 0}%`;
  }

  /** The toast after a submit; it goes away by itself. */
  showDone(data, decision, imageId) {
    const box = this.$("#review-done");
    box.replaceChildren(
      h("span", {}, `Submitted (${decision}): version ${data.version}, ${data.disagreements} disagreement${data.disagreements === 1 ? "" : "s"} with the models logged. `),
      h("a", { href: this.imageUrl(imageId) }, "See the image"),
    );
    box.hidden = false;
    clearTimeout(this.doneTimer);
    this.doneTimer = setTimeout(() => (box.hidden = true), 8000);
  }

  /** The 409 box: the item changed meanwhile (onKeep, onDiscard reload it) or was already submitted (onNext). */
  showConflict(options) {
    const box = this.$("#review-conflict");
    box.replaceChildren(P.conflictBox(options));
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  /** The item is no longer the reviewer's (lease lost, 403): {detail, draft, onNext, onKeep}. */
  showLost(options) {
    const box = this.$("#review-conflict");
    box.replaceChildren(P.lostBox(options));
    box.hidden = false;
  }

  clearConflict() {
    const box = this.$("#review-conflict");
    box.replaceChildren();
    box.hidden = true;
  }

  /** Nothing left to review: the workspace goes, the reason shows. */
  showEmpty(detail) {
    this.$("#review-workspace").hidden = true;
    for (const id of ["#image-name", "#image-meta", "#lease-until"]) this.$(id).textContent = "";
    this.$("#image-link").hidden = true;
    this.setSaveState("");
    this.setStatus("");
    const box = this.$("#review-empty");
    box.hidden = false;
    this.$("#empty-detail").textContent = detail;
  }

  /** Show or hide the keys overlay (onClose: its close button, a click outside). */
  renderKeys(open, onClose) {
    this.$("#keys-host").replaceChildren(open ? P.keysOverlay(onClose) : "");
  }
}
