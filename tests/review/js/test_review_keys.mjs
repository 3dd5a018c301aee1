// Unit tests of static/review/review_keys.js (node --test): which action each key of
// the review page runs, and that every key the ? overlay lists for the page does something.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const K = await import(resolve(here, "../../../static/review/review_keys.js"));
const EMOTIONS_MODULE = await import(resolve(here, "../../../static/review/review_model.js"));
const { EMOTIONS } = EMOTIONS_MODULE;

const press = (key, mods = {}) => ({ key, shiftKey: false, ctrlKey: false, metaKey: false, altKey: false, target: { tagName: "CANVAS" }, ...mods });
const act = (key, mods, state = { selected: true }) => K.keyAction(press(key, mods), state);

test("1 to 8 pick Mikels' emotions in order; 9 and 0 are not the page's", () => {
  for (let i = 1; i <= 8; i++) assert.deepEqual(act(String(i)), { name: "label", arg: EMOTIONS[i - 1] });
  assert.equal(act("7").arg, "fear");
  assert.equal(act("9"), null);
  assert.equal(act("0"), null); // the editor's "fit"
});

test("element keys need a selected element", () => {
  for (const [key, name] of [["a", "accept"], ["r", "reject"], ["e", "edit"], ["A", "accept"]]) {
    assert.deepEqual(act(key), { name });
    assert.equal(act(key, {}, { selected: false }), null);
  }
});

test("Shift+A accepts all remaining elements, with or without a selection; C takes the critic's emotion", () => {
  assert.deepEqual(act("A", { shiftKey: true }), { name: "acceptAll" });
  assert.deepEqual(act("A", { shiftKey: true }, { selected: false }), { name: "acceptAll" });
  assert.deepEqual(act("a", { shiftKey: true }), { name: "acceptAll" }); // whatever the case the layout reports
  assert.deepEqual(act("A"), { name: "accept" }); // Caps Lock: still one element
  assert.deepEqual(act("c"), { name: "criticLabel" });
  assert.deepEqual(act("c", {}, { selected: false }), { name: "criticLabel" });
  assert.equal(act("C", { shiftKey: true }), null);
  assert.equal(act("a", { shiftKey: true, ctrlKey: true }), null);
  assert.ok(K.KEYS.some(([k, what]) => k === "Shift-A" && /accept/.test(what)));
  assert.ok(K.KEYS.some(([k, what]) => k === "C" && /critic/.test(what)));
});

test("item decisions: Enter submits, Shift-R rejects, F flags, Esc returns to approve", () => {
  assert.deepEqual(act("Enter"), { name: "submit" });
  assert.equal(act("Enter", { target: { tagName: "BUTTON" } }), null);
  assert.equal(act("Enter", { target: { tagName: "A" } }), null);
  assert.deepEqual(act("R", { shiftKey: true }), { name: "mode", arg: "rejected" });
  assert.deepEqual(act("R", { shiftKey: true }, { selected: false }), { name: "mode", arg: "rejected" });
  assert.deepEqual(act("f"), { name: "mode", arg: "flagged" });
  assert.deepEqual(act("Escape", {}, { mode: "flagged" }), { name: "mode", arg: "approved" });
  assert.equal(act("Escape", {}, { mode: "approved" }), null);
});

test("Tab moves, undo and redo with and without Ctrl/Cmd", () => {
  assert.deepEqual(act("Tab"), { name: "move", arg: 1 });
  assert.deepEqual(act("Tab", { shiftKey: true }), { name: "move", arg: -1 });
  assert.deepEqual(act("z"), { name: "undo" });
  assert.deepEqual(act("Z", { shiftKey: true }), { name: "redo" });
  assert.deepEqual(act("y"), { name: "redo" });
  assert.deepEqual(act("z", { ctrlKey: true }), { name: "undo" });
  assert.deepEqual(act("z", { metaKey: true, shiftKey: true }), { name: "redo" });
  assert.deepEqual(act("n"), { name: "addTriplet" });
  assert.deepEqual(act("?", { shiftKey: true }), { name: "keys" });
});

test("browser shortcuts stay the browser's", () => {
  for (const mods of [{ ctrlKey: true }, { metaKey: true }, { altKey: true }]) {
    for (const key of ["a", "r", "1", "Enter", "f", "n", "y"]) assert.equal(act(key, mods), null, `${key} ${JSON.stringify(mods)}`);
  }
});

test("Shift+1…5 give how sure the reviewer is, whatever character the layout shifts the digit to", () => {
  assert.deepEqual(act("!", { shiftKey: true, code: "Digit1" }), { name: "confidence", arg: 0.2 });
  assert.deepEqual(act("%", { shiftKey: true, code: "Digit5" }), { name: "confidence", arg: 1.0 });
  assert.equal(act("^", { shiftKey: true, code: "Digit6" }), null);
  assert.deepEqual(act("4", { code: "Digit4" }), { name: "label", arg: "excitement" }); // no Shift: the emotion
});

test("text fields keep their keys", () => {
  for (const tagName of ["INPUT", "TEXTAREA", "SELECT"]) assert.equal(K.isTyping({ tagName }), true);
  assert.equal(K.isTyping({ tagName: "DIV", isContentEditable: true }), true);
  assert.equal(K.isTyping({ tagName: "CANVAS" }), false);
  assert.equal(K.isTyping(null), false);
});

test("every page key the overlay lists has an action", () => {
  const editorKeys = new Set(["V", "B / X", "[ / ]", "P", "S", "O", "0"]);
  const examples = {
    "1 – 8": [press("3")], "Tab / Shift-Tab": [press("Tab"), press("Tab", { shiftKey: true })], A: [press("a")],
    "Shift-A": [press("A", { shiftKey: true })], C: [press("c")],
    R: [press("r")], "E or double-click": [press("e")], N: [press("n")],
    "Shift-1 – 5": [press("@", { shiftKey: true, code: "Digit2" })],
    "Z / Shift-Z (or Y)": [press("z"), press("Z", { shiftKey: true }), press("y")], Enter: [press("Enter")],
    "Shift-R": [press("R", { shiftKey: true })], F: [press("f")], "?": [press("?")],
    "Shift-O": [press("O", { shiftKey: true })],
  };
  for (const [keys] of K.KEYS) {
    if (editorKeys.has(keys)) continue;
    assert.ok(examples[keys], `no example for the listed key ${keys}`);
    for (const ev of examples[keys]) assert.notEqual(K.keyAction(ev, { selected: true }), null, keys);
  }
});

test("Shift+O shows only the selected element's overlay; plain O stays the editor's overlays on/off", () => {
  assert.deepEqual(act("O", { shiftKey: true }), { name: "onlySelected" });
  assert.deepEqual(act("O", { shiftKey: true }, { selected: false }), { name: "onlySelected" });
  assert.equal(act("o"), null);
  assert.equal(act("O", { shiftKey: true, ctrlKey: true }), null);
  assert.ok(K.KEYS.some(([keys]) => keys === "Shift-O"), "the ? overlay lists Shift-O");
});

test("the dataset's taxonomy decides the emotion keys and the key table's first row", () => {
  const M = EMOTIONS_MODULE;
  try {
    M.setTaxonomy({ labels: ["anger", "disgust", "fear", "happiness", "sadness", "surprise"], keys: ["1", "2", "3", "4", "5", "6"], positive: ["happiness"] });
    assert.deepEqual(act("4"), { name: "label", arg: "happiness" });
    assert.equal(act("7"), null);
    assert.equal(act("8"), null);
    assert.deepEqual(K.keyTable()[0], ["1 – 6", "pick the emotion (anger, disgust, fear, happiness, sadness, surprise)"]);
    M.setTaxonomy({ labels: ["negative", "neutral", "positive"], keys: ["j", "k", "l"], positive: ["positive"] });
    assert.deepEqual(act("l"), { name: "label", arg: "positive" });
    assert.deepEqual(act("J"), { name: "label", arg: "negative" }); // Caps Lock
    assert.equal(act("L", { shiftKey: true }), null);
    assert.equal(act("1"), null);
    assert.deepEqual(K.keyTable()[0], ["j, k, l", "pick the emotion (negative, neutral, positive)"]);
  } finally {
    M.setTaxonomy({ labels: ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"],
      keys: ["1", "2", "3", "4", "5", "6", "7", "8"], positive: ["amusement", "awe", "contentment", "excitement"] });
  }
  assert.deepEqual(act("8"), { name: "label", arg: "sadness" });
});
