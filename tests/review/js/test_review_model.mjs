// Unit tests of static/review/review_model.js (node --test): the work model the
// review page keeps, saves as its draft and turns into the submit request.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const M = await import(resolve(here, "../../../static/review/review_model.js"));
const { encodeRle } = await import(resolve(here, "../../../static/review/rle.js"));

const H = 6, W = 8;
function rectMask(x0, y0, x1, y1) {
  const m = new Uint8Array(H * W);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * W + x] = 1;
  return encodeRle(m, H, W);
}

const KEY = "5f0c3a52-8a43-4c1e-9a57-3d2f4a1b2c3d";
const base = {
  triplets: [{
    key: KEY,
    background: { phrase: "stormy sea", box: [0, 3, 8, 6], box_score: 0.7 },
    attribute: { phrase: "dark" },
    subject: { phrase: "small boat", box: [2, 1, 4, 3], box_score: 0.8, mask: rectMask(2, 1, 4, 3), mask_score: 0.9 },
  }],
  ces: { label: "fear", confidence: 0.6, distribution: {} },
  rationale: "boat in a storm",
};

const fresh = () => M.workFromBase({ imageId: 7, version: 3, base: structuredClone(base) });
const id = (role) => M.elementId(KEY, role);

test("a fresh work object is the base, every element pending", () => {
  const work = fresh();
  assert.equal(work.expected_version, 3);
  assert.equal(work.label, "fear");
  assert.deepEqual(M.elementList(work).map((e) => e.role), ["background", "attribute", "subject"]);
  assert.ok(M.elementList(work).every((e) => M.effectiveStatus(e.element) === "pending"));
  assert.ok(M.draftMatches(JSON.parse(JSON.stringify(work)), 7));
  assert.ok(!M.draftMatches(work, 8));
});

test("an untouched approved item: every element accepted unchecked, no element decision, model scores kept", () => {
  const body = M.buildSubmission(fresh(), { decision: "approved" });
  assert.equal(body.expected_version, 3);
  assert.deepEqual(body.annotation.ces, { label: "fear" });
  const t = body.annotation.triplets[0];
  assert.equal(t.key, KEY);
  assert.deepEqual([t.background.status, t.attribute.status, t.subject.status], ["accepted_unchecked", "accepted_unchecked", "accepted_unchecked"]);
  assert.equal(t.subject.mask_score, 0.9);
  assert.equal(t.subject.box_score, 0.8);
  assert.deepEqual(body.element_decisions, []);
  assert.equal(body.reason, "");
});

test("the reviewer's own confidence goes with the label, never the model's", () => {
  const work = fresh();
  assert.equal(work.confidence, null);
  work.confidence = M.CONFIDENCE_LEVELS[3];
  assert.deepEqual(M.buildSubmission(work, { decision: "approved" }).annotation.ces, { label: "fear", confidence: 0.8 });
  work.label = null;
  assert.equal(M.buildSubmission(work, { decision: "flagged", reason: "x" }).annotation.ces, undefined);
});

test("edits become statuses and decisions with before and after", () => {
  const work = fresh();
  const bg = M.findElement(work, id("background"));
  const attr = M.findElement(work, id("attribute"));
  const subj = M.findElement(work, id("subject"));
  bg.status = "accepted";
  attr.status = "rejected";
  subj.phrase = "  small   fishing boat ";
  subj.box = [1, 1, 5, 3];
  subj.mask = rectMask(1, 1, 5, 4);
  work.time_ms[id("subject")] = 1500.4;
  work.label = "sadness";
  const body = M.buildSubmission(work, { decision: "flagged", reason: "  blurry  " });
  const t = body.annotation.triplets[0];
  assert.equal(t.background.status, "accepted");
  assert.equal(t.attribute.status, "rejected");
  assert.equal(t.subject.status, "edited");
  assert.equal(t.subject.phrase, "small fishing boat");
  assert.equal(t.subject.box_score, undefined); // a person's box has no model score
  assert.equal(t.subject.mask_score, undefined);
  assert.equal(body.reason, "blurry");
  assert.deepEqual(body.annotation.ces, { label: "sadness" });
  const decisions = body.element_decisions.map((d) => [d.role, d.action, d.time_ms]);
  assert.deepEqual(decisions, [
    ["background", "accept", 0],
    ["attribute", "reject", 0],
    ["subject", "edit_phrase", 1500],
    ["subject", "edit_box", 0],
    ["subject", "edit_mask", 0],
  ]);
  const mask = body.element_decisions.find((d) => d.action === "edit_mask");
  assert.deepEqual(mask.before, base.triplets[0].subject.mask);
  assert.deepEqual(mask.after, rectMask(1, 1, 5, 4));
  assert.deepEqual(body.element_decisions[1].before, { phrase: "dark" });
  assert.equal(body.element_decisions[1].after, null);
});

test("a mask erased to nothing is sent as no mask", () => {
  const work = fresh();
  M.findElement(work, id("subject")).mask = encodeRle(new Uint8Array(H * W), H, W);
  const body = M.buildSubmission(work, { decision: "approved" });
  assert.equal(body.annotation.triplets[0].subject.mask, undefined);
  const d = body.element_decisions.find((x) => x.action === "edit_mask");
  assert.equal(d.after, null);
});

test("an edit undone by hand is no edit", () => {
  const work = fresh();
  const subj = M.findElement(work, id("subject"));
  subj.box = [2, 1, 4, 3.0000001];
  subj.mask = rectMask(2, 1, 4, 3);
  assert.equal(M.effectiveStatus(subj), "pending");
});

test("added elements and triplets are sent with fresh keys and an add decision", () => {
  const work = fresh();
  const key = M.uuid4();
  assert.match(key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  work.triplets.push({ key, added: true, elements: { subject: { phrase: "gull", box: [0, 0, 2, 2], mask: null, status: "added", origin: null } } });
  const body = M.buildSubmission(work, { decision: "approved" });
  const added = body.annotation.triplets[1];
  assert.deepEqual(added, { key, subject: { phrase: "gull", status: "added", box: [0, 0, 2, 2] } });
  assert.deepEqual(body.element_decisions.at(-1), { triplet_key: key, role: "subject", action: "add", before: null, after: { phrase: "gull", box: [0, 0, 2, 2] }, time_ms: 0 });
});

test("checks: an element without a phrase, and approving without a label", () => {
  const work = fresh();
  work.triplets[0].elements.subject.phrase = "  ";
  work.label = null;
  const problems = M.checkWork(work, "approved");
  assert.equal(problems.length, 2);
  assert.equal(problems[0].elementId, id("subject"));
  work.triplets[0].elements.subject.status = "rejected";
  assert.equal(M.checkWork(work, "rejected").length, 0);
});

test("unchecked elements: counted, sent as accepted_unchecked; Shift+A's bulk accept is an accept_all decision", () => {
  const work = fresh();
  assert.deepEqual(M.uncheckedElements(work).map((e) => e.role), ["background", "attribute", "subject"]);
  M.findElement(work, id("background")).status = "accepted";
  M.findElement(work, id("attribute")).status = "rejected";
  assert.deepEqual(M.uncheckedElements(work).map((e) => e.role), ["subject"]);
  M.findElement(work, id("subject")).box = [1, 1, 5, 3]; // an edit is a check too
  assert.equal(M.uncheckedElements(work).length, 0);

  const bulk = fresh();
  M.findElement(bulk, id("background")).status = "accepted";
  for (const role of ["attribute", "subject"]) Object.assign(M.findElement(bulk, id(role)), { status: "accepted", bulk: true });
  const body = M.buildSubmission(bulk, { decision: "approved" });
  const t = body.annotation.triplets[0];
  assert.deepEqual([t.background.status, t.attribute.status, t.subject.status], ["accepted", "accepted", "accepted"]);
  assert.deepEqual(body.element_decisions.map((d) => [d.role, d.action]),
    [["background", "accept"], ["attribute", "accept_all"], ["subject", "accept_all"]]);
  // A rejected or flagged item sends its unchecked elements as pending: nothing was approved.
  assert.equal(M.buildSubmission(fresh(), { decision: "flagged", reason: "x" }).annotation.triplets[0].subject.status, "pending");
});

test("require_all_checked: approving with an unchecked element names how many and the first one", () => {
  const work = fresh();
  assert.deepEqual(M.checkWork(work, "approved"), []);
  M.findElement(work, id("background")).status = "accepted";
  const problems = M.checkWork(work, "approved", { requireAllChecked: true });
  assert.equal(problems.length, 1);
  assert.equal(problems[0].elementId, id("attribute"));
  assert.match(problems[0].message, /2 elements are not checked yet/);
  assert.match(problems[0].message, /Shift\+A/);
  assert.deepEqual(M.checkWork(work, "rejected", { requireAllChecked: true }), []);
});

test("the critic's suggestion is an emotion or nothing", () => {
  assert.equal(M.criticSuggestion({ suggested_label: "sadness" }), "sadness");
  assert.equal(M.criticSuggestion({ suggested_label: "gloom" }), null);
  assert.equal(M.criticSuggestion({}), null);
  assert.equal(M.criticSuggestion(null), null);
});
