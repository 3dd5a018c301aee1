// The polygon tool (P): click points; Enter or a double-click fills the polygon into the
// selected element's mask (Alt+Enter cuts it out instead), Backspace drops the last
// point, Esc cancels. One filled polygon is one undoable edit.

import { encodeRle } from "../../rle.js";
import { clamp } from "../viewport.js";

/** Which pixels of a width x height image the polygon [[x, y]…] covers: RGBA data, alpha >= 128 inside. */
function rasterise(points, width, height) {
  const off = document.createElement("canvas");
  off.width = width;
  off.height = height;
  const octx = off.getContext("2d");
  octx.fillStyle = "#fff";
  octx.beginPath();
  octx.moveTo(points[0][0], points[0][1]);
  for (const [x, y] of points.slice(1)) octx.lineTo(x, y);
  octx.closePath();
  octx.fill();
  return octx.getImageData(0, 0, width, height).data;
}

export class PolygonTool {
  constructor(editor) {
    this.editor = editor;
    this.name = "polygon";
    this.points = []; // [x, y] in image pixels
  }

  reset() {
    this.points = [];
  }

  down(ev, p, e) {
    const ed = this.editor;
    if (ev.button !== 0 || ev.detail > 1) return; // the double-click's second press closes instead
    if (!ed.needSelection(e)) return;
    this.points.push([clamp(p.x, 0, ed.width), clamp(p.y, 0, ed.height)]);
    ed.draw();
  }

  dblclick(ev) {
    if (this.points.length >= 3) {
      ev.preventDefault();
      this.close(ev.altKey);
    }
  }

  /** Enter fills (Alt+Enter cuts out), Esc cancels, Backspace drops the last point; true when used. */
  key(ev) {
    if (!this.points.length) return false;
    const key = ev.key;
    if (key === "Enter") {
      this.close(ev.altKey);
      return true;
    }
    if (key === "Escape") {
      this.points = [];
      this.editor.draw();
      return true;
    }
    if (key === "Backspace") {
      this.points.pop();
      this.editor.draw();
      return true;
    }
    return false;
  }

  /** Fill the polygon into the selected element's mask (or cut it out when `subtract`). */
  close(subtract) {
    const ed = this.editor;
    const e = ed.selected !== null ? ed.elements.get(ed.selected) : null;
    const points = this.points;
    this.points = [];
    if (!e || points.length < 3) {
      ed.onMessage("A polygon needs at least 3 points.", "error");
      ed.draw();
      return;
    }
    const W = ed.width, H = ed.height;
    const alpha = rasterise(points, W, H);
    const mask = e.mask ? new Uint8Array(e.mask) : new Uint8Array(W * H);
    const before = encodeRle(e.mask || mask, H, W);
    for (let i = 0; i < W * H; i++) if (alpha[i * 4 + 3] >= 128) mask[i] = subtract ? 0 : 1;
    const after = encodeRle(mask, H, W);
    if (after.counts === before.counts) {
      ed.draw();
      return;
    }
    ed.setMask(e.id, mask);
    ed.recordMask(e.id, before, after, subtract ? "polygon cut" : "polygon");
  }

  /** The open polygon, its last edge following the pointer. */
  paint(ctx) {
    if (!this.points.length) return;
    const ed = this.editor;
    const toScreen = (q) => ed.view.toScreen(q);
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 2;
    ctx.beginPath();
    this.points.map(toScreen).forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (ed.pointer) ctx.lineTo(...toScreen([ed.pointer.x, ed.pointer.y]));
    ctx.stroke();
    ctx.fillStyle = "#fff";
    for (const [x, y] of this.points.map(toScreen)) ctx.fillRect(x - 3, y - 3, 6, 6);
  }
}
