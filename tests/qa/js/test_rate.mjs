// Unit tests of static/qa/rate.js (node --test): digits typed on a rating slider.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const R = await import(resolve(here, "../../../static/qa/rate.js"));

const TEN = { min: 0, max: 10, step: 1 };
const NINE = { min: 1, max: 9, step: 1 };

test("a digit sets the value; below the minimum it is clamped", () => {
  assert.equal(R.valueFromDigits("7", TEN), 7);
  assert.equal(R.valueFromDigits("0", NINE), 1);
  assert.equal(R.valueFromDigits("9", NINE), 9);
});

test("two digits typed quickly make one number while it stays on the scale", () => {
  assert.equal(R.joinDigits("1", "0", TEN, true), "10");
  assert.equal(R.joinDigits("1", "5", TEN, true), "5"); // 15 is off the scale: the new digit alone
  assert.equal(R.joinDigits("1", "0", TEN, false), "0"); // too slow: a new number
  assert.equal(R.joinDigits("3", "4", NINE, true), "4");
});

test("values snap to the step from the minimum", () => {
  assert.equal(R.valueFromDigits("3", { min: 0, max: 10, step: 2 }), 4);
  assert.equal(R.valueFromDigits("2", { min: 0.5, max: 5, step: 0.5 }), 2);
  assert.equal(R.valueFromDigits("7", { min: 1, max: 5, step: 1 }), 5);
});
