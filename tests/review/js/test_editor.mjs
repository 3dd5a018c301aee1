// Unit tests of the editor's DOM-free modules (node --test): static/review/editor/
// history.js (undo/redo), viewport.js (zoom, pan, screen <-> image), geometry.js (hit
// testing, box dragging) and painting.js (brush discs, mask pixels into RGBA).

import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const editor = (name) => import(resolve(here, "../../../static/review/editor", name));
const { History } = await editor("history.js");
const { Viewport, MAX_SCALE, MIN_SCALE, wheelFactor } = await editor("viewport.js");
const G = await editor("geometry.js");
const P = await editor("painting.js");

function counter() {
  const state = { value: 0 };
  const set = (to) => {
    const from = state.value;
    state.value = to;
    return { label: `set ${to}`, undo: () => (state.value = from), redo: () => (state.value = to) };
  };
  return { state, set };
}

test("history: undo and redo walk the commands; a new command drops what was undone", () => {
  const events = [];
  const history = new History({ onChange: (kind, command) => events.push([kind, command.label]) });
  const { state, set } = counter();
  history.push(set(1));
  history.push(set(2));
  assert.equal(history.undo().label, "set 2");
  assert.equal(state.value, 1);
  assert.equal(history.redo().label, "set 2");
  assert.equal(state.value, 2);
  history.undo();
  history.undo();
  assert.equal(state.value, 0);
  assert.equal(history.undo(), null); // nothing left
  history.redo();
  history.push(set(5));
  assert.equal(history.redo(), null); // "set 2" is gone
  assert.deepEqual(history.done.map((c) => c.label), ["set 1", "set 5"]);
  assert.deepEqual(events.map((e) => e[0]), ["push", "push", "undo", "redo", "undo", "undo", "redo", "push"]);
});

test("history: keeps at most `limit` commands; clear empties both stacks", () => {
  const history = new History({ limit: 3 });
  const { set } = counter();
  for (let i = 1; i <= 5; i++) history.push(set(i));
  assert.deepEqual(history.done.map((c) => c.label), ["set 3", "set 4", "set 5"]);
  history.undo();
  history.clear();
  assert.deepEqual([history.done, history.undone], [[], []]);
});

test("viewport: fit centres the image and toImage inverts toScreen", () => {
  const view = new Viewport();
  view.fit(800, 400, 200, 200);
  assert.deepEqual([view.scale, view.ox, view.oy, view.fitted], [2, 200, 0, true]);
  assert.deepEqual(view.toScreen([50, 25]), [300, 50]);
  assert.deepEqual(view.toImage(300, 50), { x: 50, y: 25 });
  view.fit(0, 0, 200, 200); // a canvas of no size yet
  assert.equal(view.scale, 1);
  view.fit(800, 400, 200, 200, 10); // padded: the image's edges stay 10 px inside the area
  assert.deepEqual([view.scale, view.ox, view.oy], [1.9, 210, 10]);
  view.fit(10, 10, 200, 200, 10); // no room left inside the padding
  assert.equal(view.scale, 1);
});

test("viewport: zooming keeps the point under the pointer; scale is clamped; pan un-fits", () => {
  const view = new Viewport();
  view.fit(800, 400, 200, 200);
  const before = view.toImage(250, 120);
  view.zoomAt(250, 120, 3);
  assert.equal(view.scale, 6);
  assert.equal(view.fitted, false);
  const after = view.toImage(250, 120);
  assert.ok(Math.abs(after.x - before.x) < 1e-9 && Math.abs(after.y - before.y) < 1e-9);
  view.zoomAt(0, 0, 1e6);
  assert.equal(view.scale, MAX_SCALE);
  view.zoomAt(0, 0, 1e-9);
  assert.equal(view.scale, MIN_SCALE);
  assert.ok(wheelFactor(-100) > 1 && wheelFactor(100) < 1 && wheelFactor(0) === 1);
  const fitted = new Viewport();
  fitted.panTo(10, -5);
  assert.deepEqual([fitted.ox, fitted.oy, fitted.fitted], [10, -5, false]);
});

test("geometry: handles of a box, inside and outside", () => {
  const box = [10, 10, 50, 30];
  const at = (x, y) => G.handleAt(box, { x, y }, 2);
  assert.equal(at(10, 10), "nw");
  assert.equal(at(51, 31), "se");
  assert.equal(at(30, 9), "n");
  assert.equal(at(49, 20), "e");
  assert.equal(at(30, 20), "move");
  assert.equal(at(70, 20), null);
});

test("geometry: the element under a point is a mask pixel first, then the smallest box; rejected ones never", () => {
  const W = 10, H = 10;
  const mask = new Uint8Array(W * H);
  mask[5 * W + 5] = 1;
  const elements = new Map([
    ["big", { box: [0, 0, 10, 10], mask: null, rejected: false }],
    ["small", { box: [4, 4, 8, 8], mask: null, rejected: false }],
    ["masked", { box: [0, 0, 10, 10], mask, rejected: false }],
    ["gone", { box: [5, 5, 6, 6], mask: null, rejected: true }],
  ]);
  const order = [...elements.keys()];
  assert.equal(G.elementAt(elements, order, { x: 5.5, y: 5.5 }, W, H), "masked");
  assert.equal(G.elementAt(elements, order, { x: 6.5, y: 6.5 }, W, H), "small");
  assert.equal(G.elementAt(elements, order, { x: 1, y: 1 }, W, H), "big");
  assert.equal(G.elementAt(elements, order, { x: 20, y: 20 }, W, H), null);
});

test("geometry: dragging draws, moves and resizes boxes inside the image", () => {
  const W = 100, H = 50;
  assert.deepEqual(G.draggedBox({ kind: "newbox", start: { x: 80, y: 40 } }, { x: 120, y: -10 }, W, H), [80, 0, 100, 40]);
  const orig = [10, 10, 30, 20];
  assert.deepEqual(G.draggedBox({ kind: "box", handle: "move", start: { x: 15, y: 15 }, orig }, { x: 25, y: 18 }, W, H), [20, 13, 40, 23]);
  assert.deepEqual(G.draggedBox({ kind: "box", handle: "move", start: { x: 15, y: 15 }, orig }, { x: 500, y: 500 }, W, H), [80, 40, 100, 50]);
  assert.deepEqual(G.draggedBox({ kind: "box", handle: "se", start: { x: 30, y: 20 }, orig }, { x: 40, y: 25 }, W, H), [10, 10, 40, 25]);
  assert.deepEqual(G.draggedBox({ kind: "box", handle: "w", start: { x: 10, y: 15 }, orig }, { x: 35, y: 0 }, W, H), [30, 10, 35, 20]);
});

test("painting: a brush stroke sets discs along the segment, erasing clears them; a rectangle around them is returned", () => {
  const W = 20, H = 10;
  const mask = new Uint8Array(W * H);
  const rect = P.stampSegment(mask, W, H, { x: 2.5, y: 5.5 }, { x: 12.5, y: 5.5 }, 1.5, 1);
  assert.deepEqual(rect, { x: 1, y: 4, w: 14, h: 4 }); // the pixels the discs may touch
  for (let x = 2; x <= 12; x++) assert.equal(mask[5 * W + x], 1);
  assert.equal(mask[5 * W + 15], 0);
  assert.equal(mask[2 * W + 5], 0);
  P.stampSegment(mask, W, H, { x: 7.5, y: 5.5 }, { x: 7.5, y: 5.5 }, 1, 0);
  assert.equal(mask[5 * W + 7], 0);
  assert.equal(mask[5 * W + 2], 1);
  assert.equal(P.stampSegment(mask, W, H, { x: -50, y: -50 }, { x: -40, y: -50 }, 1, 1), null); // off the image
});

test("painting: mask pixels into RGBA, clearing the rest only when asked", () => {
  const W = 3;
  const mask = Uint8Array.from([1, 0, 0, 0, 1, 0]);
  const data = new Uint8ClampedArray(W * 2 * 4).fill(7);
  P.paintMask(data, W, mask, [1, 2, 3, 90]);
  assert.deepEqual([...data.slice(0, 8)], [1, 2, 3, 90, 7, 7, 7, 7]);
  assert.deepEqual([...data.slice(16, 20)], [1, 2, 3, 90]);
  P.paintMask(data, W, mask, [9, 9, 9, 255], { x: 1, y: 0, w: 2, h: 2 }, { clear: true });
  assert.deepEqual([...data.slice(0, 8)], [1, 2, 3, 90, 7, 7, 7, 0]); // x = 0 is outside the rectangle
  assert.deepEqual([...data.slice(16, 20)], [9, 9, 9, 255]);
  assert.deepEqual(P.roleRgb("subject"), [215, 48, 31]);
  assert.deepEqual(P.roleRgb("nothing"), [136, 136, 136]);
});
