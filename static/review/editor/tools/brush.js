// The brush (B): paint the selected element's mask (Alt-drag erases); one stroke is one
// undoable edit. The brush size is in screen pixels (diameter); its circle follows the pointer.

import { encodeRle } from "../../rle.js";
import { ROLE_COLOURS, refreshOverlay, stampSegment } from "../painting.js";

export class BrushTool {
  constructor(editor, { name = "brush", erase = false } = {}) {
    this.editor = editor;
    this.name = name;
    this.erase = erase;
  }

  reset() {}

  /** The brush radius in image pixels. */
  radius() {
    return Math.max(0.5, this.editor.brushSize / 2 / this.editor.view.scale);
  }

  down(ev, p, e) {
    const ed = this.editor;
    if (ev.button !== 0 || !ed.needSelection(e)) return;
    const erase = this.erase || ev.altKey;
    if (!e.mask) e.mask = new Uint8Array(ed.width * ed.height);
    const id = e.id;
    const before = encodeRle(e.mask, ed.height, ed.width);
    let last = p;
    ed.startDrag(ev, {
      move: (q) => {
        this._stamp(ed.elements.get(id), last, q, erase);
        last = q;
      },
      up: () => {
        const mask = ed.elements.get(id).mask;
        const after = encodeRle(mask, ed.height, ed.width);
        if (after.counts !== before.counts) ed.recordMask(id, before, after, erase ? "erase" : "brush");
      },
    });
    this._stamp(e, p, p, erase);
  }

  /** Paint (or erase) discs along the segment a→b into e.mask, then refresh the overlay there. */
  _stamp(e, a, b, erase) {
    const ed = this.editor;
    const rect = stampSegment(e.mask, ed.width, ed.height, a, b, this.radius(), erase ? 0 : 1);
    if (rect) refreshOverlay(e, rect);
  }

  cursor() {
    return "none";
  }

  /** The brush circle at the pointer (dashed white for the eraser). */
  paint(ctx) {
    const ed = this.editor;
    if (ed.tool !== this.name || !ed.pointer) return;
    const [x, y] = ed.view.toScreen([ed.pointer.x, ed.pointer.y]);
    ctx.strokeStyle = this.erase ? "#fff" : ROLE_COLOURS[ed.elements.get(ed.selected)?.role] || "#fff";
    ctx.lineWidth = 1.5;
    ctx.setLineDash(this.erase ? [3, 3] : []);
    ctx.beginPath();
    ctx.arc(x, y, this.radius() * ed.view.scale, 0, Math.PI * 2);
    ctx.stroke();
    ctx.setLineDash([]);
  }
}
