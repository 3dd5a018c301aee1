// The reviewer's work on one item, as plain JSON (it is also the draft payload),
// and what the submit endpoint gets from it. No DOM here: tested under node.
//
// work = {
//   format: 1, image_id, expected_version,
//   triplets: [{key, added, elements: {background?|attribute?|subject?: Element}}],
//   label,            // the CES label the reviewer settled on (starts as the model's)
//   model_label,      // the model's label, for reference
//   rationale,
//   time_ms: {elementId: ms spent with the element selected},
//   elapsed_ms,       // time on the item before this page load (restored drafts)
//   decision, reason, // what the reviewer chose last (for a reload in the middle of a reject)
// }
// Element = {phrase, box, mask, box_score, mask_score, status, origin, bulk?}
//   status: "pending" | "accepted" | "rejected" | "added" (edited is derived on submit);
//     pending = not checked yet: approving sends it as "accepted_unchecked"
//   bulk: accepted with Shift+A (accept all remaining), recorded as action "accept_all"
//   origin: {phrase, box, mask} as the model proposed it, null for added elements
//   mask: COCO RLE {size, counts} (string counts) or null

import { rleArea } from "./rle.js";

// How sure the reviewer is of the label (optional; Shift+1…5): the CES confidence sent.
export const CONFIDENCE_LEVELS = [0.2, 0.4, 0.6, 0.8, 1.0];

// The dataset's emotion taxonomy (docs/taxonomies.md): its labels in order, the key of each,
// its positive labels. Mikels' eight until the page calls setTaxonomy with the dataset's
// (live bindings: every module that imports them sees the change).
export let EMOTIONS = ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"];
export let EMOTION_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8"];
export let POSITIVE_EMOTIONS = ["amusement", "awe", "contentment", "excitement"];

/** Use `taxonomy` ({labels, keys, positive}, as the dataset's API gives it) from now on. */
export function setTaxonomy(taxonomy) {
  if (!taxonomy || !Array.isArray(taxonomy.labels) || !taxonomy.labels.length) return;
  EMOTIONS = [...taxonomy.labels];
  EMOTION_KEYS = Array.isArray(taxonomy.keys) && taxonomy.keys.length === EMOTIONS.length
    ? taxonomy.keys.map((k) => String(k).toLowerCase()) : EMOTIONS.map((_, i) => String(i + 1));
  POSITIVE_EMOTIONS = Array.isArray(taxonomy.positive) ? [...taxonomy.positive] : [];
}

/** The taxonomy the page carries in <script id="taxonomy" type="application/json">, if any. */
export function readTaxonomy(doc) {
  const el = doc.getElementById("taxonomy");
  if (el) setTaxonomy(JSON.parse(el.textContent));
}

/** "1 – 8" for consecutive digits, else the keys one by one ("j, k, l"). */
export function emotionKeysText() {
  const digits = EMOTION_KEYS.every((k, i) => k === String(i + 1));
  return digits && EMOTION_KEYS.length > 1 ? `1 – ${EMOTION_KEYS.length}` : EMOTION_KEYS.join(", ");
}
export const ROLES = ["background", "attribute", "subject"];
export const FORMAT = 1;

/** The emotion the critic suggests instead (`critic.suggested_label`), or null when it suggests none. */
export function criticSuggestion(critic) {
  const label = critic?.suggested_label;
  return EMOTIONS.includes(label) ? label : null;
}

/** A random RFC 4122 version 4 UUID (works outside secure contexts too). */
export function uuid4() {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function elementId(key, role) {
  return `${key}:${role}`;
}

export function parseElementId(id) {
  const i = id.lastIndexOf(":");
  return { key: id.slice(0, i), role: id.slice(i + 1) };
}

const copyBox = (box) => (box ? [...box] : null);
const copyMask = (mask) => (mask ? { size: [...mask.size], counts: mask.counts } : null);

/** A fresh work object from the annotation the reviewer starts from (may be null). */
export function workFromBase({ imageId, version, base }) {
  const triplets = (base?.triplets || []).map((t) => {
    const elements = {};
    for (const role of ROLES) {
      const e = t[role];
      if (!e) continue;
      elements[role] = {
        phrase: e.phrase,
        box: copyBox(e.box),
        mask: copyMask(e.mask),
        box_score: e.box_score ?? null,
        mask_score: e.mask_score ?? null,
        status: e.status === "rejected" ? "rejected" : "pending",
        origin: { phrase: e.phrase, box: copyBox(e.box), mask: copyMask(e.mask) },
      };
    }
    return { key: t.key || uuid4(), added: false, elements };
  });
  const label = base?.ces?.label || null;
  return {
    format: FORMAT,
    image_id: imageId,
    expected_version: version,
    triplets,
    label,
    confidence: null,
    model_label: label,
    rationale: base?.rationale || "",
    time_ms: {},
    elapsed_ms: 0,
    decision: "approved",
    reason: "",
  };
}

/** Whether a draft payload can be restored for this item. */
export function draftMatches(payload, imageId) {
  return !!payload && payload.format === FORMAT && payload.image_id === imageId && Array.isArray(payload.triplets);
}

/** Every element, in display (and Tab) order: [{id, key, role, tripletIndex, element}]. */
export function elementList(work) {
  const out = [];
  work.triplets.forEach((t, tripletIndex) => {
    for (const role of ROLES) {
      const element = t.elements[role];
      if (element) out.push({ id: elementId(t.key, role), key: t.key, role, tripletIndex, element });
    }
  });
  return out;
}

export function findElement(work, id) {
  const { key, role } = parseElementId(id);
  const triplet = work.triplets.find((t) => t.key === key);
  return triplet ? triplet.elements[role] || null : null;
}

export function normPhrase(p) {
  return (p || "").trim().split(/\s+/).filter(Boolean).join(" ");
}

function sameBox(a, b) {
  if (!a || !b) return !a && !b;
  return a.every((v, i) => Math.abs(v - b[i]) < 1e-6);
}

function emptyMask(m) {
  return !m || rleArea(m) === 0;
}

function sameMask(a, b) {
  if (emptyMask(a) || emptyMask(b)) return emptyMask(a) && emptyMask(b);
  return a.counts === b.counts && a.size[0] === b.size[0] && a.size[1] === b.size[1];
}

/** What changed on an element since the model proposed it. */
export function elementChanges(e) {
  if (!e.origin) return { phrase: false, box: false, mask: false };
  return {
    phrase: normPhrase(e.phrase) !== normPhrase(e.origin.phrase),
    box: !sameBox(e.box, e.origin.box),
    mask: !sameMask(e.mask, e.origin.mask),
  };
}

/** The status shown and submitted: pending | accepted | edited | rejected | added. */
export function effectiveStatus(e) {
  if (e.status === "added" || e.status === "rejected") return e.status;
  const c = elementChanges(e);
  return c.phrase || c.box || c.mask ? "edited" : e.status;
}

/** The elements nobody decided yet (accepted, edited, rejected or added), in Tab order. */
export function uncheckedElements(work) {
  return elementList(work).filter(({ element }) => effectiveStatus(element) === "pending");
}

/**
 * Client-side checks before submitting; [{elementId?, field?, message}] (empty when fine).
 * `requireAllChecked` (the dataset's setting): approving needs every element decided.
 */
export function checkWork(work, decision, { requireAllChecked = false } = {}) {
  const problems = [];
  const unchecked = uncheckedElements(work);
  if (decision === "approved" && requireAllChecked && unchecked.length) {
    const n = unchecked.length;
    problems.push({
      elementId: unchecked[0].id, field: "element_decisions",
      message: `This dataset approves only checked items: ${n} element${n === 1 ? " is" : "s are"} not checked yet. `
        + "Accept (A), reject (R) or edit each one, or accept all remaining at once (Shift+A).",
    });
  }
  for (const { id, role, tripletIndex, element } of elementList(work)) {
    if (element.status !== "rejected" && !normPhrase(element.phrase)) {
      problems.push({ elementId: id, message: `Triplet ${tripletIndex + 1}: the ${role} needs a phrase (or reject it).` });
    }
  }
  if (decision === "approved" && !work.label) problems.push({ message: `Pick an emotion (keys ${emotionKeysText().replace(" – ", "–")}) before approving.` });
  return problems;
}

function summary(e, { withMask = false } = {}) {
  const out = { phrase: normPhrase(e.phrase) };
  if (e.box) out.box = [...e.box];
  if (withMask && !emptyMask(e.mask)) out.mask = copyMask(e.mask);
  return out;
}

/**
 * The body of POST /api/review/leases/<id>/submit/ (see docs/review-api.md).
 * Pending elements of an approved item go with it as "accepted_unchecked" (approved,
 * never looked at); only explicit actions become element decisions, and only they
 * make an element "accepted" (Shift+A: action "accept_all").
 */
export function buildSubmission(work, { decision, reason = "", elapsedMs = 0 }) {
  const triplets = [];
  const decisions = [];
  for (const t of work.triplets) {
    const out = { key: t.key };
    for (const role of ROLES) {
      const e = t.elements[role];
      if (!e) continue;
      let status = effectiveStatus(e);
      if (status === "pending" && decision === "approved") status = "accepted_unchecked";
      const c = elementChanges(e);
      const item = { phrase: normPhrase(e.phrase) || (e.origin ? e.origin.phrase : ""), status };
      if (e.box) {
        item.box = e.box.map((v) => Math.round(v * 100) / 100);
        if (!c.box && e.box_score != null) item.box_score = e.box_score;
      }
      if (!emptyMask(e.mask)) {
        item.mask = copyMask(e.mask);
        if (!c.mask && e.mask_score != null) item.mask_score = e.mask_score;
      }
      out[role] = item;

      const actions = [];
      if (e.status === "added") actions.push(["add", null, summary(e, { withMask: true })]);
      else if (e.status === "rejected") actions.push(["reject", summary(e.origin || e), null]);
      else {
        if (c.phrase) actions.push(["edit_phrase", e.origin.phrase, normPhrase(e.phrase)]);
        if (c.box) actions.push(["edit_box", copyBox(e.origin.box), copyBox(e.box)]);
        if (c.mask) actions.push(["edit_mask", emptyMask(e.origin.mask) ? null : copyMask(e.origin.mask), emptyMask(e.mask) ? null : copyMask(e.mask)]);
        if (!actions.length && e.status === "accepted") actions.push([e.bulk ? "accept_all" : "accept", summary(e), summary(e)]);
      }
      const spent = Math.round(work.time_ms[elementId(t.key, role)] || 0);
      actions.forEach(([action, before, after], i) => {
        decisions.push({ triplet_key: t.key, role, action, before, after, time_ms: i === 0 ? spent : 0 });
      });
    }
    if (Object.keys(out).length > 1) triplets.push(out);
  }
  const annotation = { triplets, rationale: work.rationale || "" };
  if (work.label) {
    annotation.ces = { label: work.label };
    if (work.confidence != null) annotation.ces.confidence = work.confidence;
  }
  return {
    expected_version: work.expected_version,
    decision,
    reason: decision === "approved" ? "" : reason.trim(),
    annotation,
    element_decisions: decisions,
    time_spent_ms: Math.round((work.elapsed_ms || 0) + elapsedMs),
  };
}
