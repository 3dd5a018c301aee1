// The editor's pointer input: pointer down/move/up on the canvas go to the active
// tool (or pan with the middle button or Space held), the wheel zooms about the
// pointer, the cursor follows what a click would do. A tool that follows a drag
// hands the editor {move(p, ev), up(ev)} through editor.startDrag.

import { wheelFactor } from "./viewport.js";

/** Listen to the canvas and to Space on the window; returns the function that stops the window listeners. */
export function bindPointer(ed) {
  const c = ed.canvas;
  c.addEventListener("pointerdown", (ev) => down(ed, ev));
  c.addEventListener("pointermove", (ev) => move(ed, ev));
  c.addEventListener("pointerup", (ev) => up(ed, ev));
  c.addEventListener("pointercancel", (ev) => up(ed, ev));
  c.addEventListener("pointerleave", () => {
    ed.pointer = null;
    ed.hovered = null;
    ed.draw();
  });
  c.addEventListener("dblclick", (ev) => ed.tools[ed.tool].dblclick?.(ev));
  c.addEventListener("contextmenu", (ev) => ev.preventDefault());
  c.addEventListener("wheel", (ev) => wheel(ed, ev), { passive: false });
  const onKeyDown = (ev) => {
    if (ev.key === " " && document.activeElement === c) {
      ed.spaceDown = true;
      ev.preventDefault();
    }
  };
  const onKeyUp = (ev) => {
    if (ev.key === " ") ed.spaceDown = false;
  };
  window.addEventListener("keydown", onKeyDown);
  window.addEventListener("keyup", onKeyUp);
  return () => {
    window.removeEventListener("keydown", onKeyDown);
    window.removeEventListener("keyup", onKeyUp);
  };
}

function toImage(ed, ev) {
  const r = ed.canvas.getBoundingClientRect();
  return ed.view.toImage(ev.clientX - r.left, ev.clientY - r.top);
}

function down(ed, ev) {
  ed.canvas.focus({ preventScroll: true });
  const p = toImage(ed, ev);
  ed.pointer = p;
  if (ev.button === 1 || (ev.button === 0 && ed.spaceDown)) {
    const { ox, oy } = ed.view, sx = ev.clientX, sy = ev.clientY;
    ed.startDrag(ev, { move: (_, mv) => ed.view.panTo(ox + mv.clientX - sx, oy + mv.clientY - sy), up: () => {} });
    return;
  }
  const e = ed.selected !== null ? ed.elements.get(ed.selected) : null;
  if (ed.readOnly) {
    const hit = ev.button === 0 ? ed.elementAt(p) : null;
    if (hit !== null) {
      ed.select(hit);
      ed.onSelect(hit);
    }
    return;
  }
  ed.tools[ed.tool].down(ev, p, e);
}

function move(ed, ev) {
  const p = toImage(ed, ev);
  ed.pointer = p;
  if (ed.drag) ed.drag.move(p, ev);
  else {
    ed.hovered = ed.elementAt(p);
    updateCursor(ed, p);
  }
  ed.draw();
}

function up(ed, ev) {
  const d = ed.drag;
  ed.drag = null;
  if (!d) return;
  if (ed.canvas.hasPointerCapture?.(ev.pointerId)) ed.canvas.releasePointerCapture(ev.pointerId);
  d.up(ev);
  ed.draw();
}

function wheel(ed, ev) {
  ev.preventDefault();
  const r = ed.canvas.getBoundingClientRect();
  ed.view.zoomAt(ev.clientX - r.left, ev.clientY - r.top, wheelFactor(ev.deltaY));
  ed.draw();
}

function updateCursor(ed, p) {
  let cursor = "crosshair";
  if (ed.spaceDown) cursor = "grab";
  else if (ed.tool === "brush" || ed.tool === "eraser") cursor = ed.tools[ed.tool].cursor();
  else if (ed.readOnly) cursor = ed.elementAt(p) !== null ? "pointer" : "default";
  else if (ed.tool === "box") cursor = ed.tools.box.cursor(p);
  ed.canvas.style.cursor = cursor;
}
