// Mask pixels and their overlays: the colour of each role, painting discs into a
// mask, and the per-element ImageData overlay (a canvas of the image's size) the
// editor draws over the image. Masks are row-major Uint8Array(height * width) of 0/1.
// stampSegment and paintMask need no DOM (tested under node); overlayCanvas and
// refreshOverlay need a document.

export const ROLE_COLOURS = { background: "#2b8cbe", attribute: "#e6a118", subject: "#d7301f" };

/** "#rrggbb" -> [r, g, b]. */
export function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** The [r, g, b] of a role (grey for an unknown one). */
export function roleRgb(role) {
  return hexToRgb(ROLE_COLOURS[role] || "#888888");
}

/**
 * Set (value 1) or clear (value 0) the discs of radius r along the segment a→b in
 * `mask` (image points {x, y}); returns the changed rectangle {x, y, w, h} or null.
 */
export function stampSegment(mask, width, height, a, b, r, value) {
  const W = width, H = height;
  const dist = Math.hypot(b.x - a.x, b.y - a.y);
  const steps = Math.max(1, Math.ceil(dist / Math.max(0.5, r / 2)));
  let minX = W, minY = H, maxX = -1, maxY = -1;
  for (let s = 0; s <= steps; s++) {
    const cx = a.x + ((b.x - a.x) * s) / steps, cy = a.y + ((b.y - a.y) * s) / steps;
    const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(W - 1, Math.ceil(cx + r));
    const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(H - 1, Math.ceil(cy + r));
    for (let y = y0; y <= y1; y++) {
      const dy = y + 0.5 - cy;
      for (let x = x0; x <= x1; x++) {
        const dx = x + 0.5 - cx;
        if (dx * dx + dy * dy <= r * r) mask[y * W + x] = value;
      }
    }
    if (x0 <= x1 && y0 <= y1) {
      minX = Math.min(minX, x0); minY = Math.min(minY, y0);
      maxX = Math.max(maxX, x1); maxY = Math.max(maxY, y1);
    }
  }
  return maxX >= minX ? { x: minX, y: minY, w: maxX - minX + 1, h: maxY - minY + 1 } : null;
}

/**
 * Write `mask` into RGBA `data` (an ImageData's data, `width` pixels a row) within the
 * rectangle {x, y, w, h} (the whole image when absent): [r, g, b, a] where the mask is
 * set; elsewhere alpha 0 when `clear`, the pixel left as it is otherwise.
 */
export function paintMask(data, width, mask, [r, g, b, a], rect = null, { clear = false } = {}) {
  const { x, y, w, h } = rect || { x: 0, y: 0, w: width, h: mask.length / width };
  for (let yy = y; yy < y + h; yy++) {
    for (let xx = x, i = yy * width + x; xx < x + w; xx++, i++) {
      const o = i * 4;
      if (mask && mask[i]) {
        data[o] = r; data[o + 1] = g; data[o + 2] = b; data[o + 3] = a;
      } else if (clear) data[o + 3] = 0;
    }
  }
}

/** The overlay canvas of an editor element {role, colour?, mask, overlay, overlayData}, built on first use
 * (in the element's own colour when it has one, else its role's). */
export function overlayCanvas(e, width, height) {
  if (!e.overlay) {
    const c = document.createElement("canvas");
    c.width = width;
    c.height = height;
    e.overlay = c;
    e.overlayData = c.getContext("2d").createImageData(width, height);
    refreshOverlay(e, { x: 0, y: 0, w: width, h: height });
  }
  return e.overlay;
}

/** Redraw the rectangle {x, y, w, h} of an element's overlay from its mask (nothing before the overlay exists). */
export function refreshOverlay(e, rect) {
  if (!e.overlay) return; // built lazily on the next draw
  const rgb = e.colour ? hexToRgb(e.colour) : roleRgb(e.role);
  paintMask(e.overlayData.data, e.overlayData.width, e.mask, [...rgb, 255], rect, { clear: true });
  e.overlay.getContext("2d").putImageData(e.overlayData, 0, 0, rect.x, rect.y, rect.w, rect.h);
}
