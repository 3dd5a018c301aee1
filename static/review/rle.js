// COCO run-length encoding of binary masks, compatible with pycocotools.
//
// A mask is a Uint8Array of height*width values (0 or 1) in ROW-MAJOR order
// (index y * width + x), which is what canvas ImageData uses. COCO RLE runs are
// COLUMN-MAJOR (down each column, then the next column) and start with a run of
// zeros (possibly of length 0). The compressed "counts" string is pycocotools'
// rleToString/rleFrString format: every run is written LEB128-like in 5-bit
// groups (6th bit = "more follows"), offset into ASCII 48..111; from the 4th run
// on (index > 2) the value written is the difference to the run two before.

/** Runs (array of non-negative integers) -> compressed counts string. */
export function runsToString(runs) {
  let out = "";
  for (let i = 0; i < runs.length; i++) {
    let x = runs[i];
    if (i > 2) x -= runs[i - 2];
    let more = true;
    while (more) {
      let c = ((x % 32) + 32) % 32; // x & 0x1f for any sign
      x = Math.floor(x / 32); // arithmetic shift right by 5
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      out += String.fromCharCode(c + 48);
    }
  }
  return out;
}

/** Compressed counts string -> runs. Throws on characters outside the alphabet. */
export function stringToRuns(counts) {
  const runs = [];
  let p = 0;
  while (p < counts.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= counts.length) throw new Error("RLE counts end in the middle of a number");
      const c = counts.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new Error(`character ${JSON.stringify(counts[p])} is not in the RLE alphabet`);
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p++;
      k++;
      if (!more && c & 0x10) x -= 2 ** (5 * k); // sign extension
    }
    if (runs.length > 2) x += runs[runs.length - 2];
    runs.push(x);
  }
  return runs;
}

/** Row-major 0/1 mask -> column-major runs starting with zeros. */
export function maskToRuns(mask, height, width) {
  if (mask.length !== height * width) throw new Error(`mask has ${mask.length} values, expected ${height}x${width}`);
  const runs = [];
  let current = 0;
  let run = 0;
  for (let x = 0; x < width; x++) {
    for (let i = x, y = 0; y < height; y++, i += width) {
      const v = mask[i] ? 1 : 0;
      if (v !== current) {
        runs.push(run);
        run = 0;
        current = v;
      }
      run++;
    }
  }
  runs.push(run);
  return runs;
}

/** Column-major runs -> row-major Uint8Array mask. Throws unless runs cover the image exactly. */
export function runsToMask(runs, height, width) {
  const total = runs.reduce((a, b) => a + b, 0);
  if (runs.some((r) => r < 0) || total !== height * width) {
    throw new Error(`RLE runs cover ${total} pixels, the mask has ${height * width}`);
  }
  const mask = new Uint8Array(height * width);
  let pos = 0; // column-major position
  for (let i = 0; i < runs.length; i++) {
    const end = pos + runs[i];
    if (i % 2 === 1) {
      for (let j = pos; j < end; j++) {
        const x = Math.floor(j / height);
        const y = j - x * height;
        mask[y * width + x] = 1;
      }
    }
    pos = end;
  }
  return mask;
}

/** {"size": [h, w], "counts": str | number[]} -> {height, width, data: Uint8Array (row-major)}. */
export function decodeRle(rle) {
  if (!rle || !Array.isArray(rle.size) || rle.size.length !== 2) throw new Error("not a COCO RLE object");
  const [height, width] = rle.size;
  const runs = typeof rle.counts === "string" ? stringToRuns(rle.counts) : rle.counts;
  return { height, width, data: runsToMask(runs, height, width) };
}

/** Row-major 0/1 mask -> {"size": [h, w], "counts": compressed str}, as pycocotools.mask.encode. */
export function encodeRle(mask, height, width) {
  return { size: [height, width], counts: runsToString(maskToRuns(mask, height, width)) };
}

/** Number of foreground pixels of a row-major mask. */
export function maskArea(mask) {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) n++;
  return n;
}

/** Foreground pixels of an RLE without decoding it. */
export function rleArea(rle) {
  const runs = typeof rle.counts === "string" ? stringToRuns(rle.counts) : rle.counts;
  let n = 0;
  for (let i = 1; i < runs.length; i += 2) n += runs[i];
  return n;
}
