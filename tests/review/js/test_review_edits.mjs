// Unit tests of static/review/review_edits.js (node --test): the review page's edits of
// the work, each applied and reverted as one undoable command.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const E = await import(resolve(here, "../../../static/review/review_edits.js"));
const M = await import(resolve(here, "../../../static/review/review_model.js"));

const KEY = "5f0c3a52-8a43-4c1e-9a57-3d2f4a1b2c3d";
const fresh = () => M.workFromBase({
  imageId: 7, version: 3,
  base: { triplets: [{ key: KEY, background: { phrase: "stormy sea" }, subject: { phrase: "small boat" } }], ces: { label: "fear" } },
});
const id = (role) => M.elementId(KEY, role);

test("accept and reject set the status and put the old one back", () => {
  const work = fresh();
  const bg = M.findElement(work, id("background"));
  const accept = E.acceptEdit(bg);
  accept.apply();
  assert.equal(bg.status, "accepted");
  accept.revert();
  assert.equal(bg.status, "pending");
  const reject = E.rejectEdit(work, id("background"));
  assert.deepEqual([reject.label, reject.rejects, reject.removes, reject.structural], ["reject", true, false, false]);
  reject.apply();
  assert.equal(bg.status, "rejected");
  const back = E.rejectEdit(work, id("background"));
  assert.deepEqual([back.label, back.rejects], ["un-reject", false]);
  back.apply();
  assert.equal(bg.status, "pending");
  assert.equal(E.rejectEdit(work, id("attribute")), null); // no such element
});

test("rejecting a person's own addition removes it, and an added triplet with it", () => {
  const work = fresh();
  const add = E.addTripletEdit(work);
  assert.equal(add.structural, true);
  add.apply();
  assert.equal(work.triplets.length, 2);
  assert.equal(M.findElement(work, add.id).status, "added");
  const remove = E.rejectEdit(work, add.id);
  assert.deepEqual([remove.label, remove.removes, remove.rejects, remove.structural], ["remove added element", true, false, true]);
  remove.apply();
  assert.equal(work.triplets.length, 1);
  remove.revert();
  assert.equal(work.triplets.length, 2);
  assert.equal(M.findElement(work, add.id).status, "added");
  add.revert();
  assert.equal(work.triplets.length, 1);
});

test("adding a missing element: only where the role is missing; removing it keeps the triplet", () => {
  const work = fresh();
  assert.equal(E.addElementEdit(work, KEY, "subject"), null);
  const add = E.addElementEdit(work, KEY, "attribute");
  assert.equal(add.id, id("attribute"));
  add.apply();
  assert.deepEqual(M.findElement(work, id("attribute")), E.addedElement());
  E.rejectEdit(work, id("attribute")).apply();
  assert.equal(M.findElement(work, id("attribute")), null);
  assert.equal(work.triplets.length, 1);
});

test("label, phrase and confidence; the confidence already set clears it", () => {
  const work = fresh();
  assert.equal(E.labelEdit(work, "fear"), null);
  const label = E.labelEdit(work, "awe");
  label.apply();
  assert.equal(work.label, "awe");
  label.revert();
  assert.equal(work.label, "fear");
  const subj = M.findElement(work, id("subject"));
  const phrase = E.phraseEdit(subj, "fishing boat");
  phrase.apply();
  assert.equal(subj.phrase, "fishing boat");
  phrase.revert();
  assert.equal(subj.phrase, "small boat");
  const sure = E.confidenceEdit(work, 0.8);
  assert.deepEqual([sure.label, sure.value], ["confidence 0.8", 0.8]);
  sure.apply();
  const clear = E.confidenceEdit(work, 0.8);
  assert.deepEqual([clear.label, clear.value], ["confidence none", null]);
  clear.apply();
  assert.equal(work.confidence, null);
  clear.revert();
  assert.equal(work.confidence, 0.8);
});

test("Shift+A accepts every element not decided yet as one undoable bulk act; A one by one clears the bulk mark", () => {
  const work = fresh();
  const bg = M.findElement(work, id("background"));
  const subj = M.findElement(work, id("subject"));
  E.rejectEdit(work, id("background")).apply();
  const all = E.acceptAllEdit(work);
  assert.deepEqual([all.label, all.count, all.structural], ["accept all 1", 1, false]);
  all.apply();
  assert.deepEqual([bg.status, subj.status, subj.bulk], ["rejected", "accepted", true]);
  assert.equal(E.acceptAllEdit(work), null); // nothing left to decide
  all.revert();
  assert.equal(subj.status, "pending");
  assert.ok(!subj.bulk);
  all.apply();
  const one = E.acceptEdit(subj);
  one.apply();
  assert.deepEqual([subj.status, subj.bulk], ["accepted", false]);
  one.revert();
  assert.deepEqual([subj.status, subj.bulk], ["accepted", true]);
});
