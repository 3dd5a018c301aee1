// Hit testing and box dragging in image coordinates: which element is under a point,
// which handle of a box, the box a drag makes. Boxes are [x0, y0, x1, y1] in image
// pixels; masks are row-major Uint8Array(height * width) of 0/1.
// No DOM here: tested under node (tests/review/js/).

import { clamp } from "./viewport.js";

/**
 * The handle of `box` at image point `p` within `tol` image pixels: "n", "s", "w", "e",
 * a corner ("nw", "se"…), "move" inside the box, or null outside it.
 */
export function handleAt(box, p, tol) {
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

/**
 * The id of the element under image point `p`, or null: a mask pixel first, then the
 * smallest box; rejected elements are skipped. `elements`: Map id -> {box, mask, rejected}.
 */
export function elementAt(elements, order, p, width, height) {
  const x = Math.floor(p.x), y = Math.floor(p.y);
  let best = null, bestArea = Infinity;
  for (const id of order) {
    const e = elements.get(id);
    if (e.rejected) continue;
    if (e.mask && x >= 0 && y >= 0 && x < width && y < height && e.mask[y * width + x]) {
      const area = e.box ? (e.box[2] - e.box[0]) * (e.box[3] - e.box[1]) : 0;
      if (area < bestArea) [best, bestArea] = [id, area];
    }
  }
  if (best !== null) return best;
  for (const id of order) {
    const e = elements.get(id);
    if (e.rejected || !e.box) continue;
    const [x0, y0, x1, y1] = e.box;
    const area = (x1 - x0) * (y1 - y0);
    if (p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1 && area < bestArea) [best, bestArea] = [id, area];
  }
  return best;
}

/**
 * The box a drag to image point `p` makes, kept inside the image. `drag`: {kind: "newbox",
 * start} draws from `start`; {kind: "box", handle, start, orig} moves or resizes `orig`.
 */
export function draggedBox(drag, p, width, height) {
  const W = width, H = height;
  const px = clamp(p.x, 0, W), py = clamp(p.y, 0, H);
  if (drag.kind === "newbox") {
    const sx = clamp(drag.start.x, 0, W), sy = clamp(drag.start.y, 0, H);
    return [Math.min(sx, px), Math.min(sy, py), Math.max(sx, px), Math.max(sy, py)];
  }
  let [x0, y0, x1, y1] = drag.orig;
  if (drag.handle === "move") {
    const dx = clamp(p.x - drag.start.x, -x0, W - x1), dy = clamp(p.y - drag.start.y, -y0, H - y1);
    return [x0 + dx, y0 + dy, x1 + dx, y1 + dy];
  }
  if (drag.handle.includes("n")) y0 = py;
  if (drag.handle.includes("s")) y1 = py;
  if (drag.handle.includes("w")) x0 = px;
  if (drag.handle.includes("e")) x1 = px;
  return [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
}
