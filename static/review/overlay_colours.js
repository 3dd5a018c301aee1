// Per-element overlay colours (issue 12, item 8): each element gets its own colour from
// a palette, its role stays readable from the outline style (solid background, dashed
// attribute, dotted subject), and on the adjudication page each reviewer has a colour.
// Pure data and functions: unit-tested under node.

export const ELEMENT_PALETTE = [
  "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
  "#f032e6", "#bfef45", "#469990", "#9a6324", "#800000", "#000075",
];

/** Outline dash (screen pixels) of each role: solid background, dashed attribute, dotted subject. */
export const ROLE_DASH = { background: [], attribute: [10, 5], subject: [2, 4] };

export const ROLE_STYLE_TEXT = { background: "solid", attribute: "dashed", subject: "dotted" };

/** The reviewers' colours on the adjudication page (review 1, review 2, …); the final answer keeps per-element colours. */
export const REVIEWER_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"];

/** The colour of the n-th element (0-based), cycling through the palette. */
export function elementColour(n) {
  return ELEMENT_PALETTE[((n % ELEMENT_PALETTE.length) + ELEMENT_PALETTE.length) % ELEMENT_PALETTE.length];
}

/** Give each element of `list` (editor elements, in order) its own colour, unless it has one. */
export function colourElements(list) {
  return list.map((e, i) => (e.colour ? e : { ...e, colour: elementColour(i) }));
}
