// The review page's keys: the table the ? overlay shows, and a pure map from a key
// press to the page's action (the mask editor's own keys, V B X P S O 0 [ ], are
// handled by MaskEditor.handleKey first). Unit-tested under node: tests/review/js/.

import { CONFIDENCE_LEVELS, EMOTIONS, EMOTION_KEYS, emotionKeysText } from "./review_model.js";

/** The key table the ? overlay shows; its first row follows the dataset's taxonomy. */
export function keyTable() {
  return [[emotionKeysText(), `pick the emotion (${EMOTIONS.join(", ")})`], ...KEYS];
}

export const KEYS = [
  ["C", "take the critic's suggested emotion (when it suggests one)"],
  ["Shift-1 – 5", "how sure you are of the emotion (1 unsure … 5 certain; again clears it)"],
  ["Tab / Shift-Tab", "next / previous element"],
  ["A", "accept the element"],
  ["Shift-A", "accept every element not decided yet, as one explicit check"],
  ["R", "reject the element (again: undo the rejection)"],
  ["E or double-click", "edit the phrase (Enter keeps, Esc cancels)"],
  ["N", "add a triplet"],
  ["V", "box tool: drag corners or edges, drag inside to move, Shift-drag draws a new box"],
  ["B / X", "brush / eraser (Alt-drag with the brush erases)"],
  ["[ / ]", "smaller / bigger brush"],
  ["P", "polygon: click points, Enter or double-click fills, Alt+Enter cuts out, Backspace, Esc"],
  ["S", "refine with SAM: click inside the object, Shift-click outside it"],
  ["O", "overlays on / off"],
  ["Shift-O", "only the selected element's overlay (again: every element's)"],
  ["0", "fit the image; wheel zooms, Space-drag pans"],
  ["Z / Shift-Z (or Y)", "undo / redo"],
  ["Enter", "approve and submit"],
  ["Shift-R", "reject the item (type a reason, Enter submits)"],
  ["F", "flag the item (type a reason, Enter submits)"],
  ["?", "show / hide these keys"],
];

/** True when the key goes to a text field (the page's keys stay out of its way). */
export function isTyping(target) {
  return !!target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

/**
 * The page's action for a keydown, or null when the key is not one of the page's.
 * `ev`: {key, shiftKey, ctrlKey, metaKey, altKey, target}; `selected`: an element is
 * selected; `mode`: the decision Enter submits ("approved", "rejected", "flagged").
 * Actions: {name: "move", arg: ±1} | "undo" | "redo" | {name: "label", arg: emotion} |
 * {name: "confidence", arg: 0.2…1.0} | "criticLabel" |
 * "keys" | "accept" | "acceptAll" | "reject" | "edit" | "addTriplet" | "onlySelected" | {name: "mode", arg} | "submit".
 */
export function keyAction(ev, { selected = false, mode = "approved" } = {}) {
  const key = ev.key;
  const lower = key.length === 1 ? key.toLowerCase() : key;
  const command = ev.ctrlKey || ev.metaKey;
  if (key === "Tab" && !command && !ev.altKey) return { name: "move", arg: ev.shiftKey ? -1 : 1 };
  if (command && lower === "z" && !ev.altKey) return { name: ev.shiftKey ? "redo" : "undo" };
  if (command || ev.altKey) return null;
  const labelIndex = ev.shiftKey ? -1 : EMOTION_KEYS.indexOf(lower);
  if (labelIndex >= 0) return { name: "label", arg: EMOTIONS[labelIndex] };
  // Shift+digit: ev.key is the shifted character ("!", "@"…, layout-dependent); ev.code is the key.
  const digit = /^Digit([1-5])$/.exec(ev.code || "");
  if (digit && ev.shiftKey) return { name: "confidence", arg: CONFIDENCE_LEVELS[Number(digit[1]) - 1] };
  switch (lower) {
    case "?":
      return { name: "keys" };
    case "a":
      if (ev.shiftKey) return { name: "acceptAll" };
      return selected ? { name: "accept" } : null;
    case "c":
      return ev.shiftKey ? null : { name: "criticLabel" };
    case "r":
      if (ev.shiftKey) return { name: "mode", arg: "rejected" };
      return selected ? { name: "reject" } : null;
    case "e":
      return selected ? { name: "edit" } : null;
    case "n":
      return { name: "addTriplet" };
    case "o":
      return ev.shiftKey ? { name: "onlySelected" } : null; // plain O is the editor's

    case "f":
      return { name: "mode", arg: "flagged" };
    case "z":
      return { name: ev.shiftKey ? "redo" : "undo" };
    case "y":
      return { name: "redo" };
    case "Enter":
      if (["BUTTON", "A"].includes(ev.target?.tagName)) return null; // the focused control's own Enter
      return { name: "submit" };
    case "Escape":
      return mode !== "approved" ? { name: "mode", arg: "approved" } : null;
    default:
      return null;
  }
}
