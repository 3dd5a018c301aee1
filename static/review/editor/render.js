// One frame of the editor's canvas: the image, the mask overlays (the selected
// element's on top and a little stronger; each element in its own colour when it has
// one, its role in the outline style; the hovered or selected element highlighted and
// the others dimmed; only the selected one with "only selected"), boxes with their labels in screen space,
// the selected box's handles, then what the active tool shows (polygon, refine
// points, brush circle).

import { ROLE_DASH } from "../overlay_colours.js";
import { ROLE_COLOURS, overlayCanvas } from "./painting.js";

const DIMMED = 0.35; // how much of its alpha an element keeps while another one is highlighted

/** The element shown strongest now: the one under the pointer, else the selected one (null: none). */
function highlighted(ed) {
  return ed.hovered ?? ed.selected;
}

/** The elements drawn, bottom to top: the selected one last; only it when "only selected" is on. */
function shownIds(ed) {
  if (ed.onlySelected) return ed.selected !== null ? [ed.selected] : [];
  const ids = ed.order.filter((id) => id !== ed.selected);
  if (ed.selected !== null) ids.push(ed.selected);
  return ids;
}

/** The alpha factor of element `id`: full when nothing or it is highlighted, dimmed otherwise. */
function emphasis(ed, id) {
  const top = highlighted(ed);
  return top === null || top === undefined || top === id ? 1 : DIMMED;
}

const BACKDROP = "#20242e";
const TOOL_LAYERS = ["polygon", "refine", "brush", "eraser"]; // drawn last, in this order

/** Draw the editor's whole canvas (`size`: its CSS size {w, h}). */
export function paintFrame(ed, size) {
  const { w, h } = size;
  const dpr = window.devicePixelRatio || 1;
  const c = ed.canvas, ctx = ed.ctx;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
  }
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = BACKDROP;
  ctx.fillRect(0, 0, c.width, c.height);
  const { scale, ox, oy } = ed.view;
  ctx.setTransform(dpr * scale, 0, 0, dpr * scale, dpr * ox, dpr * oy);
  ctx.imageSmoothingEnabled = scale < 2;
  if (ed.image.complete && ed.image.naturalWidth) ctx.drawImage(ed.image, 0, 0, ed.width, ed.height);
  const ids = shownIds(ed);
  if (ed.overlaysVisible) {
    for (const id of ids) {
      const e = ed.elements.get(id);
      if (!e.mask || e.rejected) continue;
      ctx.globalAlpha = (id === ed.selected ? Math.min(1, ed.opacity + 0.15) : ed.opacity) * emphasis(ed, id);
      ctx.drawImage(overlayCanvas(e, ed.width, ed.height), 0, 0);
    }
    ctx.globalAlpha = 1;
  }
  // boxes and labels in screen space
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  paintBoxes(ed, ctx, ids);
  for (const name of TOOL_LAYERS) ed.tools[name].paint(ctx);
}

function paintBoxes(ed, ctx, ids) {
  const { scale, ox, oy } = ed.view;
  ctx.font = "12px system-ui, sans-serif";
  const placed = []; // label rectangles drawn so far: a label that would cover one moves down
  for (const id of ids) {
    const e = ed.elements.get(id);
    const sel = id === ed.selected;
    if (!e.box || (!ed.overlaysVisible && !sel)) continue;
    const [x0, y0, x1, y1] = e.box.map((v, i) => (i % 2 ? oy + v * scale : ox + v * scale));
    const colour = e.colour || ROLE_COLOURS[e.role] || "#888";
    ctx.strokeStyle = colour;
    ctx.lineWidth = sel || highlighted(ed) === id ? 3 : 2;
    ctx.globalAlpha = (e.rejected ? 0.5 : 1) * emphasis(ed, id);
    ctx.setLineDash(ROLE_DASH[e.role] || []);
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.setLineDash([]);
    if (e.label) {
      const tw = ctx.measureText(e.label).width + 8;
      let ty = y0 >= 18 ? y0 - 18 : y0;
      while (placed.some((r) => x0 < r.x + r.w && r.x < x0 + tw && ty < r.y + 18 && r.y < ty + 18)) ty += 18;
      placed.push({ x: x0, y: ty, w: tw });
      ctx.fillStyle = colour;
      ctx.fillRect(x0, ty, tw, 18);
      ctx.fillStyle = "#fff";
      ctx.fillText(e.label, x0 + 4, ty + 13);
    }
    ctx.globalAlpha = 1;
    if (sel && ed.tool === "box" && !ed.readOnly) paintHandles(ctx, x0, y0, x1, y1);
  }
}

/** The eight resize handles of a box given in screen pixels. */
function paintHandles(ctx, x0, y0, x1, y1) {
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
