// The editor's view of the image: zoom (scale) and pan (ox, oy, in CSS pixels of the
// canvas), and the transforms between screen and image coordinates.
// Image coordinates are pixels of the image; screen coordinates are CSS pixels from
// the canvas's top-left corner. No DOM here: tested under node (tests/review/js/).

export const MIN_SCALE = 0.05;
export const MAX_SCALE = 64;

export function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

/** The zoom factor of one wheel event. */
export function wheelFactor(deltaY) {
  return Math.exp(-deltaY * 0.0015);
}

export class Viewport {
  constructor() {
    this.scale = 1;
    this.ox = 0;
    this.oy = 0;
    this.fitted = true; // follows the canvas size until the reviewer zooms or pans
  }

  /**
   * Scale an image of imageW x imageH to fit an area of areaW x areaH, centred, keeping
   * `pad` pixels free on every side (so handles on the image's edge stay on the canvas).
   */
  fit(areaW, areaH, imageW, imageH, pad = 0) {
    const scale = Math.max(Math.min((areaW - 2 * pad) / imageW, (areaH - 2 * pad) / imageH), 0) || 1;
    this.scale = scale;
    this.ox = (areaW - imageW * scale) / 2;
    this.oy = (areaH - imageH * scale) / 2;
    this.fitted = true;
  }

  /** Zoom by `factor` (clamped to MIN_SCALE..MAX_SCALE) keeping the image point under (sx, sy) in place. */
  zoomAt(sx, sy, factor) {
    const scale = clamp(this.scale * factor, MIN_SCALE, MAX_SCALE);
    const ix = (sx - this.ox) / this.scale, iy = (sy - this.oy) / this.scale;
    this.scale = scale;
    this.ox = sx - ix * scale;
    this.oy = sy - iy * scale;
    this.fitted = false;
  }

  /** Move the image's top-left corner to (ox, oy) on the screen. */
  panTo(ox, oy) {
    this.ox = ox;
    this.oy = oy;
    this.fitted = false;
  }

  /** Screen point -> image point {x, y}. */
  toImage(sx, sy) {
    return { x: (sx - this.ox) / this.scale, y: (sy - this.oy) / this.scale };
  }

  /** Image point [x, y] -> screen point [sx, sy]. */
  toScreen([x, y]) {
    return [this.ox + x * this.scale, this.oy + y * this.scale];
  }
}
