// The box and mask editor: one canvas, no build step.
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

import { decodeRle, encodeRle } from "./rle.js";

export const ROLE_COLOURS = { background: "#2b8cbe", attribute: "#e6a118", subject: "#d7301f" };
export const TOOLS = { v: "box", b: "brush", x: "eraser", p: "polygon", s: "refine" };

const HANDLE_PX = 7; // half-size of a box handle, screen pixels
const MIN_BRUSH = 2;
const MAX_BRUSH = 200;

/** Undo/redo of commands {label, undo(), redo()}; the command has already been applied when pushed. */
export class History {
  constructor({ limit = 200, onChange = null } = {}) {
    this.limit = limit;
    this.done = [];
    this.undone = [];
    this.onChange = onChange;
  }

  push(command) {
    this.done.push(command);
    if (this.done.length > this.limit) this.done.shift();
    this.undone = [];
    this.onChange?.("push", command);
  }

  undo() {
    const command = this.done.pop();
    if (!command) return null;
    command.undo();
    this.undone.push(command);
    this.onChange?.("undo", command);
    return command;
  }

  redo() {
    const command = this.undone.pop();
    if (!command) return null;
    command.redo();
    this.done.push(command);
    this.onChange?.("redo", command);
    return command;
  }

  clear() {
    this.done = [];
    this.undone = [];
  }
}

/** Thrown by a refine callback when click-to-refine cannot run (HTTP 503/502/504). */
export class RefineUnavailable extends Error {}

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

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
    this.brushSize = 24; // screen pixels (diameter)
    this.opacity = 0.45;
    this.overlaysVisible = true;
    this.view = { scale: 1, ox: 0, oy: 0, fitted: true };
    this.pointer = null; // last pointer position in image coordinates
    this.drag = null;
    this.polygon = [];
    this.refinePoints = [];
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

  /** Replace all elements: [{id, role, label, box|null, mask: Uint8Array|null, rejected}]. */
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
    this.polygon = [];
    this.refinePoints = [];
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

  // ---- settings -------------------------------------------------------------

  setTool(tool) {
    if (!Object.values(TOOLS).includes(tool)) throw new Error(`unknown tool ${tool}`);
    this.tool = tool;
    this.polygon = [];
    this.refinePoints = [];
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

  /** Scale the image to fit the canvas, centred. */
  fit() {
    const { w, h } = this._cssSize();
    const scale = Math.min(w / this.width, h / this.height) || 1;
    this.view = { scale, ox: (w - this.width * scale) / 2, oy: (h - this.height * scale) / 2, fitted: true };
    this.draw();
  }

  // ---- keyboard (the page forwards keys; returns true when it used the key) ----

  handleKey(ev) {
    const key = ev.key;
    if (ev.ctrlKey || ev.metaKey) return false;
    if (this.readOnly && !["o", "O", "0"].includes(key)) return false;
    if (this.tool === "polygon" && this.polygon.length) {
      if (key === "Enter") {
        this._closePolygon(ev.altKey);
        return true;
      }
      if (key === "Escape") {
        this.polygon = [];
        this.draw();
        return true;
      }
      if (key === "Backspace") {
        this.polygon.pop();
        this.draw();
        return true;
      }
    }
    if (key === "Escape" && this.refinePoints.length) {
      this.refinePoints = [];
      this.draw();
      return true;
    }
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

  // ---- geometry ---------------------------------------------------------------

  _cssSize() {
    const r = this.canvas.getBoundingClientRect();
    return { w: r.width || this.canvas.clientWidth || 1, h: r.height || this.canvas.clientHeight || 1 };
  }

  _toImage(ev) {
    const r = this.canvas.getBoundingClientRect();
    return { x: (ev.clientX - r.left - this.view.ox) / this.view.scale, y: (ev.clientY - r.top - this.view.oy) / this.view.scale };
  }

  _brushRadius() {
    return Math.max(0.5, this.brushSize / 2 / this.view.scale);
  }

  _handleAt(box, p) {
    const tol = HANDLE_PX / this.view.scale;
    const [x0, y0, x1, y1] = box;
    const nearX0 = Math.abs(p.x - x0) <= tol, nearX1 = Math.abs(p.x - x1) <= tol;
    const nearY0 = Math.abs(p.y - y0) <= tol, nearY1 = Math.abs(p.y - y1) <= tol;
    const inX = p.x >= x0 - tol && p.x <= x1 + tol, inY = p.y >= y0 - tol && p.y <= y1 + tol;
    let h = "";
    if (nearY0 && inX) h += "n";
    else if (nearY1 && inX) h += "s";
    if (nearX0 && inY) h += "w";
    else if (nearX1 && inY) h += "e";
    if (h) return h;
    if (p.x > x0 && p.x < x1 && p.y > y0 && p.y < y1) return "move";
    return null;
  }

  /** The element under an image point: mask pixels first, then the smallest box. */
  _elementAt(p) {
    const x = Math.floor(p.x), y = Math.floor(p.y);
    let best = null, bestArea = Infinity;
    for (const id of this.order) {
      const e = this.elements.get(id);
      if (e.rejected) continue;
      if (e.mask && x >= 0 && y >= 0 && x < this.width && y < this.height && e.mask[y * this.width + x]) {
        const area = e.box ? (e.box[2] - e.box[0]) * (e.box[3] - e.box[1]) : 0;
        if (area < bestArea) [best, bestArea] = [id, area];
      }
    }
    if (best !== null) return best;
    for (const id of this.order) {
      const e = this.elements.get(id);
      if (e.rejected || !e.box) continue;
      const [x0, y0, x1, y1] = e.box;
      const area = (x1 - x0) * (y1 - y0);
      if (p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1 && area < bestArea) [best, bestArea] = [id, area];
    }
    return best;
  }

  // ---- pointer ----------------------------------------------------------------

  _bind() {
    const c = this.canvas;
    c.tabIndex = c.tabIndex >= 0 ? c.tabIndex : 0;
    c.addEventListener("pointerdown", (ev) => this._down(ev));
    c.addEventListener("pointermove", (ev) => this._move(ev));
    c.addEventListener("pointerup", (ev) => this._up(ev));
    c.addEventListener("pointercancel", (ev) => this._up(ev));
    c.addEventListener("pointerleave", () => {
      this.pointer = null;
      this.draw();
    });
    c.addEventListener("dblclick", (ev) => {
      if (this.tool === "polygon" && this.polygon.length >= 3) {
        ev.preventDefault();
        this._closePolygon(ev.altKey);
      }
    });
    c.addEventListener("contextmenu", (ev) => ev.preventDefault());
    c.addEventListener("wheel", (ev) => this._wheel(ev), { passive: false });
    this._onKeyDown = (ev) => {
      if (ev.key === " " && document.activeElement === c) {
        this.spaceDown = true;
        ev.preventDefault();
      }
    };
    this._onKeyUp = (ev) => {
      if (ev.key === " ") this.spaceDown = false;
    };
    window.addEventListener("keydown", this._onKeyDown);
    window.addEventListener("keyup", this._onKeyUp);
    this._resizeObserver = new ResizeObserver(() => {
      if (this.view.fitted) this.fit();
      else this.draw();
    });
    this._resizeObserver.observe(c);
  }

  /** Stop listening to the window and to resizes (the canvas itself is the caller's). */
  destroy() {
    window.removeEventListener("keydown", this._onKeyDown);
    window.removeEventListener("keyup", this._onKeyUp);
    this._resizeObserver.disconnect();
    if (this._frame) cancelAnimationFrame(this._frame);
    this._frame = null;
    this.destroyed = true;
  }

  _down(ev) {
    this.canvas.focus({ preventScroll: true });
    const p = this._toImage(ev);
    this.pointer = p;
    if (ev.button === 1 || (ev.button === 0 && this.spaceDown)) {
      this.drag = { kind: "pan", sx: ev.clientX, sy: ev.clientY, ox: this.view.ox, oy: this.view.oy };
      this.canvas.setPointerCapture(ev.pointerId);
      return;
    }
    const e = this.selected !== null ? this.elements.get(this.selected) : null;
    if (this.readOnly) {
      const hit = ev.button === 0 ? this._elementAt(p) : null;
      if (hit !== null) {
        this.select(hit);
        this.onSelect(hit);
      }
      return;
    }
    if (this.tool === "box") return this._boxDown(ev, p, e);
    if (this.tool === "polygon") {
      if (ev.button !== 0 || ev.detail > 1) return; // the double-click's second press closes instead
      if (!this._needSelection(e)) return;
      this.polygon.push([clamp(p.x, 0, this.width), clamp(p.y, 0, this.height)]);
      this.draw();
      return;
    }
    if (this.tool === "refine") {
      if (!this._needSelection(e)) return;
      const positive = ev.button === 0 && !ev.shiftKey;
      this._refineClick(e, p, positive);
      return;
    }
    // brush / eraser
    if (ev.button !== 0 || !this._needSelection(e)) return;
    const erase = this.tool === "eraser" || ev.altKey;
    if (!e.mask) e.mask = new Uint8Array(this.width * this.height);
    this.drag = { kind: "paint", id: e.id, erase, last: p, before: encodeRle(e.mask, this.height, this.width) };
    this.canvas.setPointerCapture(ev.pointerId);
    this._stamp(e, p, p, erase);
  }

  _needSelection(e) {
    if (e) return true;
    this.onMessage("Select an element first (Tab, or click it with the box tool V).", "error");
    return false;
  }

  _boxDown(ev, p, e) {
    if (ev.button !== 0) return;
    const handle = e && e.box && !ev.shiftKey ? this._handleAt(e.box, p) : null;
    if (handle) {
      this.drag = { kind: "box", id: e.id, handle, start: p, orig: [...e.box] };
    } else {
      const other = ev.shiftKey ? null : this._elementAt(p);
      if (other !== null && other !== this.selected) {
        this.select(other);
        this.onSelect(other);
        return;
      }
      if (!e) return;
      if (e.box && !ev.shiftKey) return;
      this.drag = { kind: "newbox", id: e.id, start: p, orig: e.box ? [...e.box] : null };
    }
    this.canvas.setPointerCapture(ev.pointerId);
  }

  _move(ev) {
    const p = this._toImage(ev);
    this.pointer = p;
    const d = this.drag;
    if (!d) {
      this._updateCursor(p);
      this.draw();
      return;
    }
    if (d.kind === "pan") {
      this.view.ox = d.ox + ev.clientX - d.sx;
      this.view.oy = d.oy + ev.clientY - d.sy;
      this.view.fitted = false;
    } else if (d.kind === "paint") {
      this._stamp(this.elements.get(d.id), d.last, p, d.erase);
      d.last = p;
    } else if (d.kind === "box" || d.kind === "newbox") {
      this.elements.get(d.id).box = this._draggedBox(d, p);
      d.moved = true;
    }
    this.draw();
  }

  _up(ev) {
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    if (this.canvas.hasPointerCapture?.(ev.pointerId)) this.canvas.releasePointerCapture(ev.pointerId);
    const e = d.id !== undefined ? this.elements.get(d.id) : null;
    if (d.kind === "paint") {
      const after = encodeRle(e.mask, this.height, this.width);
      if (after.counts !== d.before.counts) this._recordMask(e.id, d.before, after, d.erase ? "erase" : "brush");
    } else if (d.kind === "box" || d.kind === "newbox") {
      const box = e.box;
      const valid = box && box[2] - box[0] >= 1 && box[3] - box[1] >= 1;
      if (!d.moved || !valid) {
        e.box = d.orig;
        this.draw();
        return;
      }
      e.box = box.map((v) => Math.round(v * 10) / 10);
      this._recordBox(e.id, d.orig, [...e.box]);
    }
    this.draw();
  }

  _wheel(ev) {
    ev.preventDefault();
    const r = this.canvas.getBoundingClientRect();
    const sx = ev.clientX - r.left, sy = ev.clientY - r.top;
    const factor = Math.exp(-ev.deltaY * 0.0015);
    const scale = clamp(this.view.scale * factor, 0.05, 64);
    const ix = (sx - this.view.ox) / this.view.scale, iy = (sy - this.view.oy) / this.view.scale;
    this.view = { scale, ox: sx - ix * scale, oy: sy - iy * scale, fitted: false };
    this.draw();
  }

  _updateCursor(p) {
    let cursor = "crosshair";
    if (this.spaceDown) cursor = "grab";
    else if (this.tool === "brush" || this.tool === "eraser") cursor = "none";
    else if (this.readOnly) cursor = this._elementAt(p) !== null ? "pointer" : "default";
    else if (this.tool === "box") {
      const e = this.selected !== null ? this.elements.get(this.selected) : null;
      const h = e && e.box ? this._handleAt(e.box, p) : null;
      cursor = h === "move" ? "move" : h ? `${h}-resize` : this._elementAt(p) !== null ? "pointer" : "crosshair";
    }
    this.canvas.style.cursor = cursor;
  }

  _draggedBox(d, p) {
    const W = this.width, H = this.height;
    const px = clamp(p.x, 0, W), py = clamp(p.y, 0, H);
    if (d.kind === "newbox") {
      const sx = clamp(d.start.x, 0, W), sy = clamp(d.start.y, 0, H);
      return [Math.min(sx, px), Math.min(sy, py), Math.max(sx, px), Math.max(sy, py)];
    }
    let [x0, y0, x1, y1] = d.orig;
    if (d.handle === "move") {
      const dx = clamp(p.x - d.start.x, -x0, W - x1), dy = clamp(p.y - d.start.y, -y0, H - y1);
      return [x0 + dx, y0 + dy, x1 + dx, y1 + dy];
    }
    if (d.handle.includes("n")) y0 = py;
    if (d.handle.includes("s")) y1 = py;
    if (d.handle.includes("w")) x0 = px;
    if (d.handle.includes("e")) x1 = px;
    return [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
  }

  // ---- mask painting ----------------------------------------------------------

  /** Paint (or erase) discs along the segment a→b into e.mask, then refresh the overlay there. */
  _stamp(e, a, b, erase) {
    const r = this._brushRadius();
    const W = this.width, H = this.height;
    const dist = Math.hypot(b.x - a.x, b.y - a.y);
    const steps = Math.max(1, Math.ceil(dist / Math.max(0.5, r / 2)));
    const value = erase ? 0 : 1;
    let minX = W, minY = H, maxX = -1, maxY = -1;
    for (let s = 0; s <= steps; s++) {
      const cx = a.x + ((b.x - a.x) * s) / steps, cy = a.y + ((b.y - a.y) * s) / steps;
      const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(W - 1, Math.ceil(cx + r));
      const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(H - 1, Math.ceil(cy + r));
      for (let y = y0; y <= y1; y++) {
        const dy = y + 0.5 - cy;
        for (let x = x0; x <= x1; x++) {
          const dx = x + 0.5 - cx;
          if (dx * dx + dy * dy <= r * r) e.mask[y * W + x] = value;
        }
      }
      if (x0 <= x1 && y0 <= y1) {
        minX = Math.min(minX, x0); minY = Math.min(minY, y0);
        maxX = Math.max(maxX, x1); maxY = Math.max(maxY, y1);
      }
    }
    if (maxX >= minX) this._refreshOverlay(e, minX, minY, maxX - minX + 1, maxY - minY + 1);
  }

  _closePolygon(subtract) {
    const e = this.selected !== null ? this.elements.get(this.selected) : null;
    const points = this.polygon;
    this.polygon = [];
    if (!e || points.length < 3) {
      this.onMessage("A polygon needs at least 3 points.", "error");
      this.draw();
      return;
    }
    const W = this.width, H = this.height;
    const off = document.createElement("canvas");
    off.width = W;
    off.height = H;
    const octx = off.getContext("2d");
    octx.fillStyle = "#fff";
    octx.beginPath();
    octx.moveTo(points[0][0], points[0][1]);
    for (const [x, y] of points.slice(1)) octx.lineTo(x, y);
    octx.closePath();
    octx.fill();
    const alpha = octx.getImageData(0, 0, W, H).data;
    const mask = e.mask ? new Uint8Array(e.mask) : new Uint8Array(W * H);
    const before = encodeRle(e.mask || mask, H, W);
    for (let i = 0; i < W * H; i++) if (alpha[i * 4 + 3] >= 128) mask[i] = subtract ? 0 : 1;
    const after = encodeRle(mask, H, W);
    if (after.counts === before.counts) {
      this.draw();
      return;
    }
    this.setMask(e.id, mask);
    this._recordMask(e.id, before, after, subtract ? "polygon cut" : "polygon");
  }

  async _refineClick(e, p, positive) {
    if (!this.refine) {
      this.onMessage("Click-to-refine is not available on this page.", "error");
      return;
    }
    this.refinePoints.push({ x: clamp(p.x, 0, this.width), y: clamp(p.y, 0, this.height), label: positive ? 1 : 0 });
    this.draw();
    const request = {
      box: e.box ? [...e.box] : null,
      points: this.refinePoints.map((q) => [q.x, q.y]),
      labels: this.refinePoints.map((q) => q.label),
    };
    this.onMessage("Refining the mask with SAM…", "info");
    let result;
    try {
      result = await this.refine(request);
    } catch (err) {
      this.refinePoints.pop();
      this.draw();
      this.onMessage(err instanceof RefineUnavailable ? err.message : `Click-to-refine failed: ${err.message}`, "error");
      return;
    }
    if (this.selected !== e.id) return; // the reviewer moved on meanwhile
    if (!result.mask) {
      this.onMessage("SAM found no mask for these points; try another point.", "error");
      return;
    }
    const before = e.mask ? encodeRle(e.mask, this.height, this.width) : null;
    const after = encodeRle(result.mask, this.height, this.width);
    this.setMask(e.id, result.mask);
    this._recordMask(e.id, before, after, "refine");
    const score = typeof result.score === "number" ? ` (score ${result.score.toFixed(2)})` : "";
    this.onMessage(`Mask refined${score}. Click again to add points, Esc to start over.`, "info");
  }

  // ---- history ------------------------------------------------------------------

  _recordMask(id, before, after, label) {
    const apply = (rle) => this.setMask(id, rle ? decodeRle(rle).data : null);
    this.history.push({ label: `${label} mask`, elementId: id, kind: "mask", undo: () => apply(before), redo: () => apply(after) });
    this.onChange(id, "mask");
  }

  _recordBox(id, before, after) {
    this.history.push({
      label: before ? "edit box" : "draw box", elementId: id, kind: "box",
      undo: () => this.setBox(id, before), redo: () => this.setBox(id, after),
    });
    this.onChange(id, "box");
  }

  // ---- drawing --------------------------------------------------------------------

  _overlay(e) {
    if (!e.overlay) {
      const c = document.createElement("canvas");
      c.width = this.width;
      c.height = this.height;
      e.overlay = c;
      e.overlayData = c.getContext("2d").createImageData(this.width, this.height);
      this._refreshOverlay(e, 0, 0, this.width, this.height);
    }
    return e.overlay;
  }

  _refreshOverlay(e, x, y, w, h) {
    if (!e.overlay) return; // built lazily on the next draw
    const [r, g, b] = hexToRgb(ROLE_COLOURS[e.role] || "#888888");
    const data = e.overlayData.data, W = this.width, m = e.mask;
    for (let yy = y; yy < y + h; yy++) {
      for (let xx = x, i = yy * W + x; xx < x + w; xx++, i++) {
        const o = i * 4;
        if (m && m[i]) {
          data[o] = r; data[o + 1] = g; data[o + 2] = b; data[o + 3] = 255;
        } else data[o + 3] = 0;
      }
    }
    e.overlay.getContext("2d").putImageData(e.overlayData, 0, 0, x, y, w, h);
  }

  draw() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = null;
      this._paint();
    });
  }

  _paint() {
    if (this.destroyed) return;
    const { w, h } = this._cssSize();
    const dpr = window.devicePixelRatio || 1;
    const c = this.canvas, ctx = this.ctx;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#20242e";
    ctx.fillRect(0, 0, c.width, c.height);
    const { scale, ox, oy } = this.view;
    ctx.setTransform(dpr * scale, 0, 0, dpr * scale, dpr * ox, dpr * oy);
    ctx.imageSmoothingEnabled = scale < 2;
    if (this.image.complete && this.image.naturalWidth) ctx.drawImage(this.image, 0, 0, this.width, this.height);
    const ids = this.order.filter((id) => id !== this.selected);
    if (this.selected !== null) ids.push(this.selected);
    if (this.overlaysVisible) {
      for (const id of ids) {
        const e = this.elements.get(id);
        if (!e.mask || e.rejected) continue;
        ctx.globalAlpha = id === this.selected ? Math.min(1, this.opacity + 0.15) : this.opacity;
        ctx.drawImage(this._overlay(e), 0, 0);
      }
      ctx.globalAlpha = 1;
    }
    // boxes and labels in screen space
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = "12px system-ui, sans-serif";
    const placed = []; // label rectangles drawn so far: a label that would cover one moves down
    for (const id of ids) {
      const e = this.elements.get(id);
      const sel = id === this.selected;
      if (!e.box || (!this.overlaysVisible && !sel)) continue;
      const [x0, y0, x1, y1] = e.box.map((v, i) => (i % 2 ? oy + v * scale : ox + v * scale));
      ctx.strokeStyle = ROLE_COLOURS[e.role] || "#888";
      ctx.lineWidth = sel ? 3 : 2;
      ctx.globalAlpha = e.rejected ? 0.5 : 1;
      ctx.setLineDash(e.rejected ? [6, 4] : []);
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.setLineDash([]);
      if (e.label) {
        const tw = ctx.measureText(e.label).width + 8;
        let ty = y0 >= 18 ? y0 - 18 : y0;
        while (placed.some((r) => x0 < r.x + r.w && r.x < x0 + tw && ty < r.y + 18 && r.y < ty + 18)) ty += 18;
        placed.push({ x: x0, y: ty, w: tw });
        ctx.fillStyle = ROLE_COLOURS[e.role] || "#888";
        ctx.fillRect(x0, ty, tw, 18);
        ctx.fillStyle = "#fff";
        ctx.fillText(e.label, x0 + 4, ty + 13);
      }
      ctx.globalAlpha = 1;
      if (sel && this.tool === "box" && !this.readOnly) {
        ctx.fillStyle = "#fff";
        ctx.strokeStyle = "#111";
        ctx.lineWidth = 1;
        const xs = [x0, (x0 + x1) / 2, x1], ys = [y0, (y0 + y1) / 2, y1];
        for (const hx of xs) for (const hy of ys) {
          if (hx === xs[1] && hy === ys[1]) continue;
          ctx.fillRect(hx - 4, hy - 4, 8, 8);
          ctx.strokeRect(hx - 4, hy - 4, 8, 8);
        }
      }
    }
    this._paintTools(ctx, scale, ox, oy);
  }

  _paintTools(ctx, scale, ox, oy) {
    const toScreen = ([x, y]) => [ox + x * scale, oy + y * scale];
    if (this.polygon.length) {
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2;
      ctx.beginPath();
      this.polygon.map(toScreen).forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (this.pointer) ctx.lineTo(...toScreen([this.pointer.x, this.pointer.y]));
      ctx.stroke();
      ctx.fillStyle = "#fff";
      for (const [x, y] of this.polygon.map(toScreen)) ctx.fillRect(x - 3, y - 3, 6, 6);
    }
    for (const q of this.refinePoints) {
      const [x, y] = toScreen([q.x, q.y]);
      ctx.fillStyle = q.label ? "#1f8a4c" : "#c0392b";
      ctx.beginPath();
      ctx.arc(x, y, 6, 0, Math.PI * 2);
      ctx.fill();
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
    if (this.pointer && (this.tool === "brush" || this.tool === "eraser")) {
      const [x, y] = toScreen([this.pointer.x, this.pointer.y]);
      ctx.strokeStyle = this.tool === "eraser" ? "#fff" : ROLE_COLOURS[this.elements.get(this.selected)?.role] || "#fff";
      ctx.lineWidth = 1.5;
      ctx.setLineDash(this.tool === "eraser" ? [3, 3] : []);
      ctx.beginPath();
      ctx.arc(x, y, this._brushRadius() * scale, 0, Math.PI * 2);
      ctx.stroke();
      ctx.setLineDash([]);
    }
  }
}
