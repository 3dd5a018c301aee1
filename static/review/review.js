// The review page's controller: asks the review API for the next item, shows it,
// keeps the reviewer's work as a draft after every change, and submits it. It holds
// the page's state (the item, the decision, busy) and its keys, and wires together
// the workspace (review_workspace.js: the work, the editor and the commands), the
// API (api_client.js), the draft (review_drafts.js), the DOM (review_view.js,
// review_toolbar.js) and the keys (review_keys.js).
// The API is documented in docs/review-api.md; this page uses only that API.

import { ReviewApi } from "./api_client.js";
import { History } from "./editor/history.js";
import { DraftKeeper } from "./review_drafts.js";
import { isTyping, keyAction } from "./review_keys.js";
import * as M from "./review_model.js";
import { draftLine } from "./review_panels.js";
import { Toolbar } from "./review_toolbar.js";
import { ReviewView } from "./review_view.js";
import { Workspace } from "./review_workspace.js";

class ReviewPage {
  constructor(root) {
    M.readTaxonomy(document); // the dataset's labels and keys, before anything is drawn
    this.root = root;
    this.dataset = root.dataset.dataset;
    this.api = new ReviewApi({ csrf: root.dataset.csrf });
    this.view = new ReviewView(root);
    this.history = new History({ onChange: () => this.toolbar.renderHistory() });
    this.toolbar = new Toolbar(root, { editor: () => this.editor, history: this.history });
    this.clock = { paused: false };
    this.drafts = new DraftKeeper({
      api: this.api,
      lease: () => this.payload?.lease ?? null,
      payload: () => this.draftPayload(),
      busy: () => this.busy,
      onState: (text, state) => this.view.setSaveState(text, state),
      onRenewed: (leaseId, expiresAt) => {
        if (this.payload?.lease.id !== leaseId) return;
        this.payload.lease.expires_at = expiresAt;
        this.view.renderLease(this.payload.lease);
      },
    });
    this.ws = new Workspace({
      view: this.view, toolbar: this.toolbar, history: this.history, api: this.api, clock: this.clock,
      onChange: () => this.drafts.schedule(),
    });
    this.mode = "approved"; // the decision Enter submits
    this.busy = false;
    this.keysOpen = false;
    this._wireStatic();
  }

  // The item shown (null when none), its work, its editor and the selected element;
  // the browser tests read these and the draft's state.
  get payload() {
    return this.ws.payload;
  }

  get work() {
    return this.ws.work;
  }

  get editor() {
    return this.ws.editor;
  }

  get selected() {
    return this.ws.selected;
  }

  get dirty() {
    return this.drafts.dirty;
  }

  get savePromise() {
    return this.drafts.savePromise;
  }

  // ---- loading an item ---------------------------------------------------------

  async next(mode = "restore") {
    this.view.setStatus("Loading the next item…");
    const { status, data } = await this.api.next(this.dataset);
    if (status === 404) return this.showEmpty(data?.detail || "No item left to review.");
    if (status !== 200) return this.view.setStatus(`Could not get an item: ${data?.detail || `HTTP ${status}`}`, "error");
    await this.load(data, mode);
    this.refreshProgress();
  }

  /** Show an item: the draft restored ("restore"), the reviewer's edits kept ("keep") or dropped ("discard"). */
  async load(payload, mode) {
    const previous = this.work;
    this.view.showWorkspace();
    this.view.clearConflict();
    this.view.setError("");
    const draft = payload.draft?.payload;
    let restored = false;
    let work;
    if (mode === "keep" && previous && previous.image_id === payload.image.id) {
      work = previous;
      work.expected_version = payload.version;
    } else if (mode !== "discard" && M.draftMatches(draft, payload.image.id)) {
      work = draft;
      restored = true;
    } else {
      work = M.workFromBase({ imageId: payload.image.id, version: payload.version, base: payload.base });
    }
    this.ws.open(payload, work);
    this.mode = work.decision && work.decision !== "approved" ? work.decision : "approved";
    this.history.clear();
    this.view.setSaveState(restored ? "draft restored" : ""); // not the previous item's state
    this.view.renderHeader(payload.image, work.expected_version, payload.lease);
    this.ws.buildEditor();
    this.ws.renderPanels();
    this.view.renderSubmit(this.mode, work);
    const first = M.elementList(work)[0];
    if (first) this.ws.select(first.id);
    if (payload.draft_notice) this.view.setStatus(payload.draft_notice, "error");
    else this.view.setStatus(...loadedStatus(payload, work, mode, restored));
    this.root.dataset.imageId = String(payload.image.id);
    this.root.dataset.leaseId = String(payload.lease.id);
    this.root.dataset.version = String(work.expected_version);
    if (mode === "keep" || mode === "discard") await this.drafts.save();
    this.view.focusCanvas();
  }

  /** The work as the draft saves it (time, decision and reason brought up to date). */
  draftPayload() {
    this.ws.tick();
    this.work.decision = this.mode;
    this.work.reason = this.view.reason;
    return this.work;
  }

  // ---- submitting ------------------------------------------------------------------

  async submit(decision) {
    if (this.busy || !this.payload) return;
    const reason = this.view.reason;
    if (decision !== "approved" && !reason.trim()) {
      this.setMode(decision);
      this.view.setError(`Give a reason to ${decision === "rejected" ? "reject" : "flag"} the item.`);
      return;
    }
    const problems = M.checkWork(this.work, decision, { requireAllChecked: Boolean(this.payload.require_all_checked) });
    if (problems.length) {
      this.view.setError(problems.map((p) => p.message).join(" "), problems[0].field);
      if (problems[0].elementId) this.focusElement(problems[0].elementId);
      return;
    }
    this.busy = true;
    this.view.setBusy(true);
    this.view.setError("");
    try {
      const draft = (await this.drafts.save()) ?? { saved: false, detail: "" }; // the box after a refusal says which
      const body = M.buildSubmission(this.work, { decision, reason, elapsedMs: 0 });
      const { status, data } = await this.api.submit(this.payload.lease.id, body);
      if (status === 201) {
        this.view.showDone(data, decision, this.payload.image.id);
        await this.next();
      } else if (status === 409 && data?.changes?.lease_lost) this.showLost(data.detail, data.changes, draft);
      else if (status === 409) this.showConflict(data, draft);
      else if (status === 400) this.showInvalid(data);
      else if (status === 403) this.showLost(data?.detail || "This item is no longer yours.", {}, draft);
      else this.view.setError(`Submitting failed: ${data?.detail || `HTTP ${status}`}. ${draftLine(draft)}`);
    } catch (err) {
      this.view.setError(`Submitting failed: ${err.message}. Your work is kept as a draft.`);
    } finally {
      this.busy = false;
      this.view.setBusy(false);
    }
  }

  /** 400: what the server refused; an unchecked element (require_all_checked) is selected. */
  showInvalid(data) {
    const detail = data?.detail || "invalid value";
    this.view.setError(data?.field && !detail.startsWith(`${data.field}:`) ? `${data.field}: ${detail}` : detail, data?.field);
    const first = data?.field === "element_decisions" ? M.uncheckedElements(this.work)[0] : null;
    if (first) this.focusElement(first.id);
  }

  /** Select an element and give the keys back to the page, so A, R or E act on it at once. */
  focusElement(id) {
    this.ws.select(id);
    this.view.focusCanvas();
  }

  /** 409: the item changed meanwhile (reload it keeping or discarding the edits) or was already submitted (go on). */
  showConflict(data, draft) {
    const submitted = Boolean(data?.changes?.already_submitted);
    this.view.showConflict({
      detail: data?.detail, changes: data?.changes, draft,
      onKeep: () => this.next("keep"), onDiscard: () => this.next("discard"), onNext: () => this.next(),
    });
    this.view.setStatus(submitted ? "You already submitted this item: see the box on the right." : "The item changed meanwhile: see the box on the right.", "error");
  }

  /** The lease is gone; keeping the edits is offered only while the item is still the reviewer's to review. */
  showLost(detail, changes, draft) {
    const reviewable = Boolean(changes?.newer_lease);
    this.view.showLost({ detail, draft, onNext: () => this.next(), onKeep: reviewable ? () => this.next("keep") : null });
  }

  setMode(mode) {
    this.mode = mode;
    this.view.renderSubmit(mode, this.work);
    if (mode !== "approved") this.view.focusReason();
    this.drafts.schedule();
  }

  async skip() {
    if (!this.payload) return;
    await this.api.skip(this.payload.lease.id);
    await this.next();
  }

  async release() {
    if (!this.payload) return;
    await this.drafts.save();
    await this.api.release(this.payload.lease.id);
    window.location.href = this.root.dataset.indexUrl;
  }

  async refreshProgress() {
    const { ok, data } = await this.api.progress(this.dataset);
    if (ok) this.view.renderProgress(data);
  }

  showEmpty(detail) {
    this.ws.close();
    this.view.showEmpty(detail);
    this.refreshProgress();
  }

  toggleKeys(force) {
    const open = force ?? !this.keysOpen;
    this.keysOpen = open;
    this.view.renderKeys(open, () => this.toggleKeys(false));
  }

  // ---- keyboard and controls -------------------------------------------------------------

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
    const ws = this.ws;
    const run = {
      move: (step) => ws.move(step),
      undo: () => this.history.undo(),
      redo: () => this.history.redo(),
      label: (emotion) => ws.setLabel(emotion),
      confidence: (level) => ws.setConfidence(level),
      keys: () => this.toggleKeys(true),
      accept: () => ws.accept(ws.selected),
      acceptAll: () => ws.acceptAll(),
      criticLabel: () => ws.takeCriticLabel(),
      reject: () => ws.reject(ws.selected),
      edit: () => ws.editPhrase(ws.selected),
      addTriplet: () => ws.addTriplet(),
      onlySelected: () => this.editor?.setOnlySelected(!this.editor.onlySelected),
      mode: (mode) => this.setMode(mode),
      submit: () => this.submit("approved"),
    };
    run[action.name](action.arg);
  }

  _wireStatic() {
    const on = (sel, type, fn) => this.view.$(sel).addEventListener(type, fn);
    document.addEventListener("keydown", (ev) => this.onKey(ev));
    for (const b of this.root.querySelectorAll("button")) b.addEventListener("mousedown", (ev) => ev.preventDefault());
    on("#keys", "click", () => this.toggleKeys(true));
    on("#approve", "click", () => this.submit("approved"));
    on("#reject-item", "click", () => this.setMode("rejected"));
    on("#flag-item", "click", () => this.setMode("flagged"));
    on("#reason-submit", "click", () => this.submit(this.mode));
    on("#reason-cancel", "click", () => this.setMode("approved"));
    on("#skip", "click", () => this.skip());
    on("#release", "click", () => this.release());
    on("#reason", "input", () => this.drafts.schedule());
    on("#reason", "keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        this.submit(this.mode);
      } else if (ev.key === "Escape") {
        ev.preventDefault();
        ev.target.blur();
        this.setMode("approved");
      }
    });
    this.drafts.watch();
    document.addEventListener("visibilitychange", () => {
      if (this.work) this.ws.tick();
      this.clock.paused = document.visibilityState === "hidden";
      if (this.clock.paused) this.drafts.flush();
    });
    this.toolbar.renderHistory();
  }
}

/** The status line after an item is shown: [text, level]. */
function loadedStatus(payload, work, mode, restored) {
  if (restored) {
    const when = payload.draft.saved_at ? new Date(payload.draft.saved_at).toLocaleTimeString() : "";
    const stale = work.expected_version < payload.version
      ? ` The item changed since (version ${work.expected_version} → ${payload.version}); submitting will show what changed.`
      : "";
    return [`Your draft${when ? ` from ${when}` : ""} is restored.${stale}`, stale ? "error" : "info"];
  }
  if (mode === "keep") return [`Reloaded version ${payload.version} of the item with your edits kept. Check them, then submit.`, "info"];
  if (mode === "discard") return [`Your edits were discarded; this is version ${payload.version} of the item.`, "info"];
  return ["Ready. Press ? for the keys.", "info"];
}

const root = document.querySelector("[data-review]");
if (root) {
  const page = new ReviewPage(root);
  window.reviewPage = page; // for the browser tests and the console
  page.next();
}
