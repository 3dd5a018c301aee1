// Unit tests of static/review/overlay_colours.js (node --test): per-element colours and role outline styles.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const C = await import(resolve(here, "../../../static/review/overlay_colours.js"));

test("neighbouring elements get different colours; the palette cycles", () => {
  const first = Array.from({ length: C.ELEMENT_PALETTE.length }, (_, i) => C.elementColour(i));
  assert.equal(new Set(first).size, C.ELEMENT_PALETTE.length);
  assert.equal(C.elementColour(C.ELEMENT_PALETTE.length), C.elementColour(0));
});

test("each role has its own outline style", () => {
  const dashes = ["background", "attribute", "subject"].map((r) => JSON.stringify(C.ROLE_DASH[r]));
  assert.equal(new Set(dashes).size, 3);
  assert.deepEqual(C.ROLE_DASH.background, []);
});

test("colourElements keeps a colour given and fills in the rest", () => {
  const out = C.colourElements([{ id: "a" }, { id: "b", colour: "#123456" }]);
  assert.deepEqual(out.map((e) => e.colour), [C.elementColour(0), "#123456"]);
});
