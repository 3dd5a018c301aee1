// Checks static/review/rle.js against pycocotools, both directions.
//
//   node test_rle.mjs CASES.json OUT.json
//
// CASES.json (written by tests/review/test_rle_js.py): [{height, width, bits, counts}] where
// bits is the row-major mask as a "0101…" string and counts pycocotools' compressed RLE.
// For each case this script decodes counts and encodes bits with rle.js and compares.
// It then encodes masks of its own (seeded random blobs and edge cases) and writes
// OUT.json: [{height, width, bits, counts}] for the Python side to decode with pycocotools.
// Exit status 1 and a message per failure when anything differs.

import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const rle = await import(resolve(here, "../../../static/review/rle.js"));

const [casesPath, outPath] = process.argv.slice(2);
const failures = [];

function bitsOf(mask) {
  let s = "";
  for (const v of mask) s += v ? "1" : "0";
  return s;
}

function maskOf(bits) {
  const m = new Uint8Array(bits.length);
  for (let i = 0; i < bits.length; i++) m[i] = bits.charCodeAt(i) === 49 ? 1 : 0;
  return m;
}

// Python -> JS: decode and encode every pycocotools case.
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
cases.forEach((c, i) => {
  const decoded = rle.decodeRle({ size: [c.height, c.width], counts: c.counts });
  if (decoded.height !== c.height || decoded.width !== c.width) failures.push(`case ${i}: decoded size differs`);
  else if (bitsOf(decoded.data) !== c.bits) failures.push(`case ${i}: decode(${c.counts}) differs from the mask`);
  const encoded = rle.encodeRle(maskOf(c.bits), c.height, c.width);
  if (encoded.counts !== c.counts) failures.push(`case ${i}: encode gave ${encoded.counts}, pycocotools ${c.counts}`);
  if (rle.rleArea({ counts: c.counts }) !== rle.maskArea(maskOf(c.bits))) failures.push(`case ${i}: rleArea differs`);
});

// Unit checks that need no Python.
function expectThrows(fn, what) {
  try {
    fn();
    failures.push(`expected an error: ${what}`);
  } catch (e) {
    /* expected */
  }
}
expectThrows(() => rle.decodeRle({ size: [2, 2], counts: "3" }), "runs shorter than the image");
expectThrows(() => rle.decodeRle({ size: [2, 2], counts: "~" }), "character outside the alphabet");
expectThrows(() => rle.stringToRuns("a"), "a number cut short"); // 'a' = 49 -> more bit set
expectThrows(() => rle.encodeRle(new Uint8Array(3), 2, 2), "mask of the wrong length");
{
  const runs = [0, 5, 1000000, 3, 70000, 2];
  const back = rle.stringToRuns(rle.runsToString(runs));
  if (JSON.stringify(back) !== JSON.stringify(runs)) failures.push(`large/negative deltas: ${back}`);
}

// JS -> Python: masks made here, encoded here.
let seed = 12345;
function rand() {
  // mulberry32
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const out = [];
const shapes = [[1, 1], [1, 7], [9, 1], [3, 5], [48, 64], [120, 97], [300, 211]];
for (const [h, w] of shapes) {
  for (let k = 0; k < 4; k++) {
    const m = new Uint8Array(h * w);
    if (k === 1) m.fill(1);
    if (k >= 2) {
      // a few random discs, plus salt noise on k == 3
      for (let d = 0; d < 3; d++) {
        const cx = rand() * w, cy = rand() * h, r = 1 + rand() * Math.max(h, w) / 3;
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) m[y * w + x] = 1;
      }
      if (k === 3) for (let i = 0; i < m.length; i++) if (rand() < 0.05) m[i] ^= 1;
    }
    out.push({ height: h, width: w, bits: bitsOf(m), counts: rle.encodeRle(m, h, w).counts });
  }
}
writeFileSync(outPath, JSON.stringify(out));

if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log(`ok: ${cases.length} pycocotools cases, ${out.length} masks encoded`);
