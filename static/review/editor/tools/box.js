// The box tool (V): drag a corner or an edge of the selected element's box to resize
// it, drag inside to move it, Shift-drag (or drag on an element without a box) to draw
// a new one; a click on another element selects it. Also the resize cursors.

import { draggedBox, handleAt } from "../geometry.js";

const HANDLE_PX = 7; // half-size of a box handle, screen pixels

export class BoxTool {
  constructor(editor) {
    this.editor = editor;
    this.name = "box";
  }

  reset() {}

  _handleAt(box, p) {
    return handleAt(box, p, HANDLE_PX / this.editor.view.scale);
  }

  /** Pointer down at image point p with `e` (or null) selected: start a drag, or select another element. */
  down(ev, p, e) {
    const ed = this.editor;
    if (ev.button !== 0) return;
    const handle = e && !e.locked && e.box && !ev.shiftKey ? this._handleAt(e.box, p) : null;
    let drag;
    if (handle) {
      drag = { kind: "box", id: e.id, handle, start: p, orig: [...e.box] };
    } else {
      const other = ev.shiftKey ? null : ed.elementAt(p);
      if (other !== null && other !== ed.selected) {
        ed.select(other);
        ed.onSelect(other);
        return;
      }
      if (!e || !ed.needSelection(e)) return;
      if (e.box && !ev.shiftKey) return;
      drag = { kind: "newbox", id: e.id, start: p, orig: e.box ? [...e.box] : null };
    }
    ed.startDrag(ev, {
      move: (q) => {
        ed.elements.get(drag.id).box = draggedBox(drag, q, ed.width, ed.height);
        drag.moved = true;
      },
      up: () => this._drop(drag),
    });
  }

  /** The drag ended: keep a real box (rounded to 0.1 px) as one undoable edit, or put the old one back. */
  _drop(drag) {
    const ed = this.editor;
    const e = ed.elements.get(drag.id);
    const box = e.box;
    const valid = box && box[2] - box[0] >= 1 && box[3] - box[1] >= 1;
    if (!drag.moved || !valid) {
      e.box = drag.orig;
      return;
    }
    e.box = box.map((v) => Math.round(v * 10) / 10);
    ed.recordBox(e.id, drag.orig, [...e.box]);
  }

  /** The cursor over image point p: a resize arrow on a handle, move inside, pointer over another element. */
  cursor(p) {
    const ed = this.editor;
    const e = ed.selected !== null ? ed.elements.get(ed.selected) : null;
    const h = e && e.box ? this._handleAt(e.box, p) : null;
    return h === "move" ? "move" : h ? `${h}-resize` : ed.elementAt(p) !== null ? "pointer" : "crosshair";
  }
}
