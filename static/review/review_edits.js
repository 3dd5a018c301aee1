// The reviewer's edits of the work (review_model.js), each as an undoable command
// {label, apply(), revert(), structural}; structural commands add or remove elements
// (the editor then gets the new element list). Nothing is applied here: the page
// applies, records and renders. No DOM: tested under node (tests/review/js/).

import { effectiveStatus, elementId, parseElementId, uuid4 } from "./review_model.js";

/** A new element a person adds (no model proposal behind it). */
export function addedElement() {
  return { phrase: "", box: null, mask: null, box_score: null, mask_score: null, status: "added", origin: null };
}

/** Set obj[field] to value; revert puts back what it was when the command was made. */
function assign(label, obj, field, value, before = obj[field]) {
  return { label, apply: () => (obj[field] = value), revert: () => (obj[field] = before), structural: false };
}

/** Accept a model's element (one by one: no longer part of a Shift+A bulk accept). */
export function acceptEdit(element) {
  const before = { status: element.status, bulk: element.bulk };
  return {
    label: "accept", structural: false,
    apply: () => Object.assign(element, { status: "accepted", bulk: false }),
    revert: () => Object.assign(element, before),
  };
}

/**
 * Shift+A: accept every element nobody decided yet, as one explicit act (each is
 * submitted with action "accept_all"). Null when none is left; `count`: how many.
 */
export function acceptAllEdit(work) {
  const elements = [];
  for (const t of work.triplets) for (const e of Object.values(t.elements)) if (effectiveStatus(e) === "pending") elements.push(e);
  if (!elements.length) return null;
  const before = elements.map((e) => ({ status: e.status, bulk: e.bulk }));
  return {
    label: `accept all ${elements.length}`, structural: false, count: elements.length,
    apply: () => elements.forEach((e) => Object.assign(e, { status: "accepted", bulk: true })),
    revert: () => elements.forEach((e, i) => Object.assign(e, before[i])),
  };
}

/**
 * Reject an element, or take a rejection back; a person's own addition is removed
 * instead (its triplet too when nothing else is left of an added triplet).
 * Null when there is no such element; `removes` / `rejects` say which it is.
 */
export function rejectEdit(work, id) {
  const { key, role } = parseElementId(id);
  const t = work.triplets.find((x) => x.key === key);
  const e = t?.elements[role];
  if (!e) return null;
  if (e.status === "added") {
    const index = work.triplets.indexOf(t);
    const onlyOne = Object.keys(t.elements).length === 1 && t.added;
    return {
      label: "remove added element", structural: true, removes: true, rejects: false,
      apply: () => { delete t.elements[role]; if (onlyOne) work.triplets.splice(index, 1); },
      revert: () => { t.elements[role] = e; if (onlyOne) work.triplets.splice(index, 0, t); },
    };
  }
  const after = e.status === "rejected" ? "pending" : "rejected";
  return { ...assign(after === "rejected" ? "reject" : "un-reject", e, "status", after), removes: false, rejects: after === "rejected" };
}

/** Set how sure the reviewer is of the label; the level already set clears it. `value`: the new level or null. */
export function confidenceEdit(work, level) {
  const before = work.confidence ?? null;
  const after = before === level ? null : level;
  return { ...assign(`confidence ${after ?? "none"}`, work, "confidence", after, before), value: after };
}

/** Set the CES label; null when it is that label already. */
export function labelEdit(work, emotion) {
  return work.label === emotion ? null : assign(`label ${emotion}`, work, "label", emotion);
}

export function phraseEdit(element, phrase) {
  return assign("edit phrase", element, "phrase", phrase);
}

/** Add the missing `role` to a triplet; null when the triplet has it. `id`: the new element's id. */
export function addElementEdit(work, key, role) {
  const t = work.triplets.find((x) => x.key === key);
  if (!t || t.elements[role]) return null;
  const e = addedElement();
  return {
    label: `add ${role}`, structural: true, id: elementId(key, role),
    apply: () => (t.elements[role] = e), revert: () => delete t.elements[role],
  };
}

/** Add a triplet with an empty subject. `id`: the subject's id. */
export function addTripletEdit(work) {
  const t = { key: uuid4(), added: true, elements: { subject: addedElement() } };
  return {
    label: "add triplet", structural: true, id: elementId(t.key, "subject"),
    apply: () => work.triplets.push(t), revert: () => work.triplets.splice(work.triplets.indexOf(t), 1),
  };
}
