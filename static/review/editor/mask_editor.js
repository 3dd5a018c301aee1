// The box and mask editor: one canvas, no build step. This class holds the elements,
// the selection and the settings, hands keys to the active tool, and records edits;
// beside it live the tools (tools/*.js), the pointer input (pointer.js), the view
// (viewport.js), the drawing (render.js, painting.js) and hit testing (geometry.js).
//
// Draws an image with every grounded element's box and mask over it (colour per
// role, masks as ImageData overlays), and edits the selected element:
//   V box tool   drag a corner or an edge to resize, drag inside to move,
//                Shift-drag (or drag on an element without a box) draws a new box;
//                a click on another element selects it
//   B brush      paint the mask (Alt-drag erases)
//   X eraser     erase the mask
//   [ and ]      brush / eraser size
//   P polygon    click points, Enter or double-click fills, Backspace drops the
//                last point, Esc cancels (Alt+Enter cuts the polygon out instead)
//   S refine     click-to-refine with SAM: click = foreground point,
//                Shift-click or right-click = background point
//   O            overlays on/off;  0  fit the image;  wheel zooms;  middle-drag or
//                Space-drag pans
// Every edit is one undoable command in a History (shared with the page).
//
// Coordinates: boxes are absolute image pixels [x0, y0, x1, y1]; masks are
// row-major Uint8Array(height * width) of 0/1 (see rle.js for COCO RLE).

import { decodeRle } from "../rle.js";
import { elementAt } from "./geometry.js";
import { History } from "./history.js";
import { bindPointer } from "./pointer.js";
import { paintFrame } from "./render.js";
import { BoxTool } from "./tools/box.js";
import { BrushTool } from "./tools/brush.js";
import { EraserTool } from "./tools/eraser.js";
import { PolygonTool } from "./tools/polygon.js";
import { REFINE_OFF, RefineTool } from "./tools/refine.js";
import { Viewport, clamp } from "./viewport.js";

export const TOOLS = { v: "box", b: "brush", x: "eraser", p: "polygon", s: "refine" };

const MIN_BRUSH = 2;
const FIT_PAD_PX = 12; // free canvas around the fitted image: a box handle (7 px half-size) on its edge stays grabbable
const MAX_BRUSH = 200;

export class MaskEditor {
  /**
   * @param {HTMLCanvasElement} canvas  sized by its parent element (CSS), redrawn on resize
   * @param {object} options
   *   width, height   image size in pixels (masks and boxes use it)
   *   imageUrl        the image to draw
   *   history         a History to record edits in (one is made when absent)
   *   onChange(id, kind)   after a box or mask changed ("box" | "mask"), undo/redo included
   *   onSelect(id)    when a click selects an element
   *   onMessage(text, level)  status messages ("info" | "error")
   *   refine({box, points, labels}) -> Promise<{mask: Uint8Array|null, score}>; throws RefineUnavailable
   */
  constructor(canvas, options) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.width = options.width;
    this.height = options.height;
    this.history = options.history || new History();
    this.onChange = options.onChange || (() => {});
    this.onSelect = options.onSelect || (() => {});
    this.onMessage = options.onMessage || (() => {});
    this.refine = options.refine || null;
    this.readOnly = !!options.readOnly; // view and select only (the image page)
    this.elements = new Map(); // id -> {id, role, label, box, mask, rejected, overlay, overlayData}
    this.order = [];
    this.selected = null;
    this.tool = "box";
    this.tools = {
      box: new BoxTool(this), brush: new BrushTool(this), eraser: new EraserTool(this),
      polygon: new PolygonTool(this), refine: new RefineTool(this),
    };
    this.brushSize = 24; // screen pixels (diameter)
    this.opacity = 0.45;
    this.overlaysVisible = true;
    this.onlySelected = false; // draw the selected element only (Shift+O on the pages)
    this.hovered = null; // the element under the pointer: highlighted, the others dimmed
    this.view = new Viewport();
    this.pointer = null; // last pointer position in image coordinates
    this.drag = null; // {move(p, ev), up(ev)} while a button is held
    this.spaceDown = false;
    this.image = new Image();
    this.ready = new Promise((resolve, reject) => {
      this.image.onload = () => {
        this.fit();
        resolve();
      };
      this.image.onerror = () => reject(new Error(`could not load the image ${options.imageUrl}`));
    });
    this.image.src = options.imageUrl;
    this._bind();
  }

  // ---- elements -------------------------------------------------------------

  /** Replace all elements: [{id, role, label, box|null, mask: Uint8Array|null, rejected, colour?, locked?}]
   * (`colour`: the element's own overlay colour; `locked`: shown and selectable, not editable). */
  setElements(list) {
    this.elements.clear();
    this.order = [];
    for (const e of list) {
      this.elements.set(e.id, { ...e, box: e.box ? [...e.box] : null, mask: e.mask || null, overlay: null, overlayData: null });
      this.order.push(e.id);
    }
    if (!this.elements.has(this.selected)) this.selected = null;
    this.draw();
  }

  /** Visual state of an element: {label, rejected}. */
  updateElement(id, fields) {
    const e = this.elements.get(id);
    if (!e) return;
    Object.assign(e, fields);
    this.draw();
  }

  select(id) {
    if (this.selected === id) return;
    this.selected = this.elements.has(id) ? id : null;
    this._resetTools();
    this.draw();
  }

  getBox(id) {
    const e = this.elements.get(id);
    return e && e.box ? [...e.box] : null;
  }

  getMask(id) {
    const e = this.elements.get(id);
    return e ? e.mask : null;
  }

  /** Set a box without recording it (the caller records, e.g. undo of a draft restore). */
  setBox(id, box) {
    const e = this.elements.get(id);
    e.box = box ? [...box] : null;
    this.draw();
    this.onChange(id, "box");
  }

  setMask(id, mask) {
    const e = this.elements.get(id);
    e.mask = mask;
    e.overlay = null;
    e.overlayData = null;
    this.draw();
    this.onChange(id, "mask");
  }

  /** Record a mask edit (RLEs before and after; already applied) as one undoable command. */
  recordMask(id, before, after, label) {
    const apply = (rle) => this.setMask(id, rle ? decodeRle(rle).data : null);
    this.history.push({ label: `${label} mask`, elementId: id, kind: "mask", undo: () => apply(before), redo: () => apply(after) });
    this.onChange(id, "mask");
  }

  /** Record a box edit (already applied) as one undoable command. */
  recordBox(id, before, after) {
    this.history.push({
      label: before ? "edit box" : "draw box", elementId: id, kind: "box",
      undo: () => this.setBox(id, before), redo: () => this.setBox(id, after),
    });
    this.onChange(id, "box");
  }

  /** The element under an image point: mask pixels first, then the smallest box. */
  elementAt(p) {
    return elementAt(this.elements, this.order, p, this.width, this.height);
  }

  /** True when an element is selected; otherwise says how to select one. */
  needSelection(e) {
    if (e && e.locked) {
      this.onMessage(e.lockedMessage || "This element is shown for reference and cannot be edited.", "error");
      return false;
    }
    if (e) return true;
    this.onMessage("Select an element first (Tab, or click it with the box tool V).", "error");
    return false;
  }

  // ---- settings -------------------------------------------------------------

  setTool(tool) {
    if (!Object.values(TOOLS).includes(tool)) throw new Error(`unknown tool ${tool}`);
    if (tool === "refine" && !this.refine) {
      this.onMessage(REFINE_OFF, "info"); // no segmenter on the server: the tool stays off
      return;
    }
    this.tool = tool;
    this._resetTools();
    this.canvas.dataset.tool = tool;
    this.canvas.dispatchEvent(new CustomEvent("toolchange", { detail: tool }));
    this.draw();
  }

  setBrushSize(px) {
    this.brushSize = clamp(Math.round(px), MIN_BRUSH, MAX_BRUSH);
    this.canvas.dispatchEvent(new CustomEvent("brushchange", { detail: this.brushSize }));
    this.draw();
  }

  setOpacity(value) {
    this.opacity = clamp(value, 0, 1);
    this.draw();
  }

  setOverlaysVisible(visible) {
    this.overlaysVisible = visible;
    this.canvas.dispatchEvent(new CustomEvent("overlayschange", { detail: visible }));
    this.draw();
  }

  /** Draw only the selected element's overlay (true) or every element's (false). */
  setOnlySelected(only) {
    this.onlySelected = only;
    this.canvas.dispatchEvent(new CustomEvent("onlyselectedchange", { detail: only }));
    this.draw();
  }

  /** Scale the image to fit the canvas, centred, with room for a box handle on its edge. */
  fit() {
    const { w, h } = this._cssSize();
    this.view.fit(w, h, this.width, this.height, FIT_PAD_PX);
    this.draw();
  }

  _resetTools() {
    for (const tool of Object.values(this.tools)) tool.reset();
  }

  // ---- keyboard (the page forwards keys; returns true when it used the key) ----

  handleKey(ev) {
    const key = ev.key;
    if (ev.ctrlKey || ev.metaKey) return false;
    if (this.readOnly && !["o", "O", "0"].includes(key)) return false;
    if (this.tools[this.tool].key?.(ev)) return true; // polygon: Enter, Esc, Backspace; refine: Esc
    if (key === "[" || key === "]") {
      this.setBrushSize(this.brushSize * (key === "]" ? 1.25 : 0.8));
      return true;
    }
    const lower = key.length === 1 ? key.toLowerCase() : "";
    if (!ev.shiftKey && !ev.altKey && TOOLS[lower]) {
      this.setTool(TOOLS[lower]);
      return true;
    }
    if (lower === "o" && !ev.shiftKey) {
      this.setOverlaysVisible(!this.overlaysVisible);
      return true;
    }
    if (key === "0") {
      this.fit();
      return true;
    }
    return false;
  }

  // ---- input and drawing --------------------------------------------------------

  _cssSize() {
    const r = this.canvas.getBoundingClientRect();
    return { w: r.width || this.canvas.clientWidth || 1, h: r.height || this.canvas.clientHeight || 1 };
  }

  _bind() {
    const c = this.canvas;
    c.tabIndex = c.tabIndex >= 0 ? c.tabIndex : 0;
    this._unbindPointer = bindPointer(this);
    this._resizeObserver = new ResizeObserver(() => {
      if (this.view.fitted) this.fit();
      else this.draw();
    });
    this._resizeObserver.observe(c);
  }

  /** Stop listening to the window and to resizes (the canvas itself is the caller's). */
  destroy() {
    this._unbindPointer();
    this._resizeObserver.disconnect();
    if (this._frame) cancelAnimationFrame(this._frame);
    this._frame = null;
    this.destroyed = true;
  }

  /** Follow the pointer until its button is released: `drag` = {move(p, ev), up(ev)}. */
  startDrag(ev, drag) {
    this.drag = drag;
    this.canvas.setPointerCapture(ev.pointerId);
  }

  draw() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = null;
      if (!this.destroyed) paintFrame(this, this._cssSize());
    });
  }
}
