// The review page's draft: saved a moment after every change, one save at a time,
// again with keepalive when the page is hidden or left, and as a heartbeat while the
// reviewer is active but changes nothing (reading, zooming): saving a draft renews
// the lease (docs/review-api.md).

const DRAFT_DELAY_MS = 700;
const HEARTBEAT_MS = 4 * 60 * 1000;
const HEARTBEAT_CHECK_MS = 30 * 1000;

export class DraftKeeper {
  /**
   * @param {object} options
   *   api        a ReviewApi
   *   lease()    the current item's lease {id, expires_at}, or null when no item is shown
   *   payload()  the draft to save (the work, brought up to date)
   *   busy()     true while the page submits (no heartbeat then)
   *   onState(text, state)   the save state to show ("" | "saved" | "error")
   *   onRenewed(leaseId, expiresAt)   a save renewed the lease
   */
  constructor({ api, lease, payload, busy, onState, onRenewed }) {
    Object.assign(this, { api, lease, payload, busy, onState, onRenewed });
    this.timer = null;
    this.savePromise = null;
    this.dirty = false;
    this.lastActivity = 0;
    this.lastSavedAt = Date.now();
  }

  /** A change was made: save it after a short pause. */
  schedule() {
    this.dirty = true;
    this.onState("unsaved changes");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(), DRAFT_DELAY_MS);
  }

  /** Save now (after the save under way, if any); resolves to {saved, detail} when the answer is in. */
  async save({ keepalive = false } = {}) {
    clearTimeout(this.timer);
    if (!this.lease()) return;
    if (this.savePromise) await this.savePromise;
    const leaseId = this.lease().id;
    this.dirty = false;
    this.onState("saving…");
    this.savePromise = this.api.saveDraft(leaseId, this.payload(), { keepalive })
      .then(({ ok, status, data }) => {
        this.lastSavedAt = Date.now();
        if (ok && data.lease_expires_at) this.onRenewed(leaseId, data.lease_expires_at);
        if (ok) {
          this.onState(`draft saved ${new Date(data.saved_at).toLocaleTimeString()}`, "saved");
          return { saved: true, detail: "" };
        }
        this.dirty = true;
        const detail = data?.detail || `HTTP ${status}`;
        this.onState(`draft NOT saved: ${detail}`, "error");
        return { saved: false, detail };
      })
      .catch((err) => {
        this.dirty = true;
        this.onState(`draft NOT saved: ${err.message}`, "error");
        return { saved: false, detail: err.message };
      })
      .finally(() => (this.savePromise = null));
    return this.savePromise;
  }

  /** Save unsaved changes with keepalive (the page is going away or hidden). */
  flush() {
    if (this.dirty && this.lease()) this.save({ keepalive: true });
  }

  /** Flush when the page is left; save as a heartbeat while the reviewer is active. */
  watch() {
    window.addEventListener("pagehide", () => this.flush());
    for (const type of ["keydown", "pointerdown", "wheel"]) document.addEventListener(type, () => (this.lastActivity = Date.now()), { passive: true });
    setInterval(() => {
      const active = this.lastActivity > this.lastSavedAt;
      if (this.lease() && active && Date.now() - this.lastSavedAt >= HEARTBEAT_MS && !this.busy()) this.save();
    }, HEARTBEAT_CHECK_MS);
  }
}
