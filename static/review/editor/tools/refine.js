// The refine tool (S): click-to-refine with SAM. A click adds a foreground point,
// Shift-click or right-click a background point; every click asks the page's refine
// callback for a new mask from all points so far (and the box), which replaces the
// selected element's mask as one undoable edit. Esc drops the points.

import { encodeRle } from "../../rle.js";
import { clamp } from "../viewport.js";

/** What the editor says when S is pressed and the page has no refine callback. */
export const REFINE_OFF = "Click-to-refine is not set up on this server.";

/** Thrown by a refine callback when click-to-refine cannot run (HTTP 503/502/504). */
export class RefineUnavailable extends Error {}

export class RefineTool {
  constructor(editor) {
    this.editor = editor;
    this.name = "refine";
    this.points = []; // {x, y, label: 1 foreground | 0 background}
  }

  reset() {
    this.points = [];
  }

  down(ev, p, e) {
    if (!this.editor.needSelection(e)) return;
    const positive = ev.button === 0 && !ev.shiftKey;
    this._click(e, p, positive);
  }

  key(ev) {
    if (ev.key === "Escape" && this.points.length) {
      this.points = [];
      this.editor.draw();
      return true;
    }
    return false;
  }

  async _click(e, p, positive) {
    const ed = this.editor;
    if (!ed.refine) {
      ed.onMessage(REFINE_OFF, "error");
      return;
    }
    this.points.push({ x: clamp(p.x, 0, ed.width), y: clamp(p.y, 0, ed.height), label: positive ? 1 : 0 });
    ed.draw();
    const request = {
      box: e.box ? [...e.box] : null,
      points: this.points.map((q) => [q.x, q.y]),
      labels: this.points.map((q) => q.label),
    };
    ed.onMessage("Refining the mask with SAM…", "info");
    let result;
    try {
      result = await ed.refine(request);
    } catch (err) {
      this.points.pop();
      ed.draw();
      ed.onMessage(err instanceof RefineUnavailable ? err.message : `Click-to-refine failed: ${err.message}`, "error");
      return;
    }
    if (ed.selected !== e.id) return; // the reviewer moved on meanwhile
    if (!result.mask) {
      ed.onMessage("SAM found no mask for these points; try another point.", "error");
      return;
    }
    const before = e.mask ? encodeRle(e.mask, ed.height, ed.width) : null;
    const after = encodeRle(result.mask, ed.height, ed.width);
    ed.setMask(e.id, result.mask);
    ed.recordMask(e.id, before, after, "refine");
    const score = typeof result.score === "number" ? ` (score ${result.score.toFixed(2)})` : "";
    ed.onMessage(`Mask refined${score}. Click again to add points, Esc to start over.`, "info");
  }

  /** The points so far: green foreground, red background. */
  paint(ctx) {
    for (const q of this.points) {
      const [x, y] = this.editor.view.toScreen([q.x, q.y]);
      ctx.fillStyle = q.label ? "#1f8a4c" : "#c0392b";
      ctx.beginPath();
      ctx.arc(x, y, 6, 0, Math.PI * 2);
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  }
}
