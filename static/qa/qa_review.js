// The QA review page (docs/qa.md, "QA review"): the leased image's pending pairs, one at a
// time or all as a list, decided with the keyboard; decisions are saved as a draft and
// submitted together through /api/qa/review/. Every model text goes in as a text node.

import { h, truncate } from "../review/dom.js";
import { MaskEditor } from "../review/editor/mask_editor.js";
import { decodeRle } from "../review/rle.js";

const API = "/api/qa/review/";
const root = document.querySelector("[data-qa-review]");

function csrf() {
  try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch { return ""; }
}

async function send(url, method, body, { keepalive = false } = {}) {
  const res = await fetch(url, {
    method, credentials: "same-origin", keepalive,
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  return { status: res.status, ok: res.ok, data };
}

if (root) {
  const data = JSON.parse(document.getElementById("qa-review-data").textContent);
  const { pairs, elements, reasons, lease } = data;
  const decisions = new Map(Object.entries(data.draft?.decisions || {}).filter(([id]) => pairs.some((p) => String(p.id) === id)));
  let focus = Math.max(0, Number(data.draft?.focus || 0)) % Math.max(1, pairs.length);
  let awaitingReason = false;
  let editing = null; // the card being edited
  let busy = false;

  const list = root.querySelector("#qa-pairs");
  const message = root.querySelector("#qa-message");
  const listMode = root.querySelector("#qa-list-mode");
  const editor = new MaskEditor(root.querySelector(".stage canvas"), {
    width: data.image.width, height: data.image.height, imageUrl: data.image.url, readOnly: true,
  });

  const say = (text, kind = "") => { message.textContent = text; message.className = `qa-message ${kind}`; };

  function answerText(p, answer = p.answer, options = p.options) {
    if (p.type === "multiple_choice") return `${Number(answer) + 1}. ${options?.[answer] ?? "?"}`;
    return String(answer);
  }

  function decisionLabel(d) {
    if (!d) return "undecided";
    if (d.decision === "reject") return `rejected: ${reasons.find((r) => r.value === d.reason)?.label || d.reason}`;
    return d.decision === "edit" ? "edited" : "accepted";
  }

  function card(p, i) {
    const d = decisions.get(String(p.id));
    const shown = d?.decision === "edit" ? { ...p, ...d.edit } : p;
    const options = shown.type === "multiple_choice"
      ? h("ol", { class: "options" }, shown.options.map((o, k) => h("li", { class: k === Number(shown.answer) ? "answer" : null }, o)))
      : h("p", {}, "Answer: ", h("strong", { class: "answer" }, shown.answer));
    return h("li", {
      class: `qa-pair panel${i === focus ? " focused" : ""}${d ? ` decided ${d.decision}` : ""}`,
      dataset: { pair: p.id }, onclick: () => setFocus(i),
    },
      h("div", { class: "meta muted small" }, `${i + 1}/${pairs.length} · ${p.category.name} · ${p.dimension.name} · ${p.type.replace("_", " ")}`,
        p.critic_agrees === false ? h("span", { class: "badge flagged", title: "The critic answered this question differently" }, " critic disagrees") : null),
      h("p", { class: "question" }, shown.question),
      options,
      p.rationale ? h("p", { class: "rationale muted small" }, truncate(p.rationale, 300)) : null,
      p.elements.length ? h("p", { class: "muted small" }, "About: ", p.elements.map((id) => `${elements[id].role} “${elements[id].phrase}”`).join(", ")) : null,
      h("p", { class: "decision" }, h("span", { class: `badge ${d ? d.decision : ""}` }, decisionLabel(d))),
    );
  }

  function render() {
    list.replaceChildren(...pairs.map(card));
    list.classList.toggle("one", !listMode.checked);
    const done = pairs.filter((p) => decisions.has(String(p.id))).length;
    root.querySelector("#qa-progress").textContent = `${done}/${pairs.length} decided`;
    const p = pairs[focus];
    editor.setElements((p?.elements || []).map((id) => {
      const e = elements[id];
      return { id, role: e.role, label: truncate(e.phrase, 28), box: e.box || null, mask: e.mask ? decodeRle(e.mask).data : null };
    }));
    list.querySelector(".focused")?.scrollIntoView({ block: "nearest" });
  }

  let saveTimer = null;
  function saveDraft({ keepalive = false } = {}) {
    clearTimeout(saveTimer);
    const payload = { decisions: Object.fromEntries(decisions), focus };
    return send(`${API}leases/${lease.id}/draft/`, "PUT", { payload }, { keepalive });
  }
  const saveSoon = () => { clearTimeout(saveTimer); saveTimer = setTimeout(saveDraft, 400); };

  function setFocus(i) {
    focus = Math.min(Math.max(i, 0), pairs.length - 1);
    render();
  }

  function decide(d) {
    decisions.set(String(pairs[focus].id), d);
    saveSoon();
    if (focus < pairs.length - 1) setFocus(focus + 1); else render();
  }

  function openEdit() {
    const p = pairs[focus];
    const prev = decisions.get(String(p.id));
    const cur = prev?.decision === "edit" ? { ...p, ...prev.edit } : p;
    const li = list.querySelector(".focused");
    const q = h("textarea", { name: "question", rows: 2, "aria-label": "Question" });
    q.value = cur.question;
    const fields = [h("label", {}, "Question", q)];
    let opts = null;
    const ans = h("input", { name: "answer", "aria-label": "Answer" });
    if (p.type === "multiple_choice") {
      opts = h("textarea", { name: "options", rows: Math.max(2, cur.options.length), "aria-label": "Options, one a line" });
      opts.value = cur.options.join("\n");
      ans.value = String(Number(cur.answer) + 1);
      fields.push(h("label", {}, "Options (one a line)", opts), h("label", {}, "Correct option (number)", ans));
    } else {
      ans.value = cur.answer;
      fields.push(h("label", {}, p.type === "yes_no" ? "Answer (yes / no)" : "Answer", ans));
    }
    const form = h("form", { class: "qa-edit" }, fields, h("p", { class: "muted small" }, "Enter saves (Ctrl+Enter in a text box), Esc cancels."));
    li.append(form);
    editing = { form, q, opts, ans };
    q.focus();
    form.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") { ev.preventDefault(); closeEdit(); return; }
      if (ev.key === "Enter" && (ev.target.tagName !== "TEXTAREA" || ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); saveEdit(); }
      ev.stopPropagation();
    });
  }

  function closeEdit() {
    editing?.form.remove();
    editing = null;
    render();
  }

  function saveEdit() {
    const p = pairs[focus];
    const edit = { question: editing.q.value.trim() };
    if (p.type === "multiple_choice") {
      edit.options = editing.opts.value.split("\n").map((s) => s.trim()).filter(Boolean);
      const n = Number(editing.ans.value.trim());
      if (!Number.isInteger(n) || n < 1 || n > edit.options.length) { say(`The correct option is a number from 1 to ${edit.options.length}.`, "error"); return; }
      edit.answer = n - 1;
    } else {
      edit.answer = editing.ans.value.trim();
      if (p.type === "yes_no") edit.answer = edit.answer.toLowerCase();
      if (p.type === "yes_no" && !["yes", "no"].includes(edit.answer)) { say("A yes/no answer is yes or no.", "error"); return; }
    }
    if (!edit.question || !edit.answer && edit.answer !== 0) { say("The question and the answer cannot be empty.", "error"); return; }
    editing.form.remove();
    editing = null;
    say("");
    decide({ decision: "edit", edit });
  }

  async function submit() {
    if (busy) return;
    const missing = pairs.findIndex((p) => !decisions.has(String(p.id)));
    if (missing >= 0) { setFocus(missing); say(`Decide every pair first: ${pairs.length - decisions.size} left.`, "error"); return; }
    busy = true;
    clearTimeout(saveTimer);
    say("Submitting…");
    const body = { decisions: pairs.map((p) => ({ pair: p.id, ...decisions.get(String(p.id)) })) };
    const res = await send(`${API}leases/${lease.id}/submit/`, "POST", body);
    busy = false;
    if (res.ok) { say("Submitted. Loading the next image…", "ok"); window.location.reload(); return; }
    if (res.status === 409) say(`${res.data?.detail || "Conflict."} Reload for the next image (your draft is kept).`, "error");
    else say(res.data?.detail || `Submit failed (${res.status}).`, "error");
  }

  document.addEventListener("keydown", (ev) => {
    if (editing || busy || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (["INPUT", "TEXTAREA", "SELECT", "BUTTON"].includes(ev.target.tagName) && ev.target.type !== "checkbox") return;
    const key = ev.key.toLowerCase();
    if (awaitingReason) {
      const n = Number(ev.key);
      ev.preventDefault();
      awaitingReason = false;
      if (Number.isInteger(n) && n >= 1 && n <= reasons.length) { say(""); decide({ decision: "reject", reason: reasons[n - 1].value }); }
      else say("Rejection cancelled.");
      return;
    }
    const actions = {
      j: () => setFocus(focus + 1), arrowdown: () => setFocus(focus + 1),
      k: () => setFocus(focus - 1), arrowup: () => setFocus(focus - 1),
      a: () => decide({ decision: "accept" }),
      e: openEdit,
      r: () => { awaitingReason = true; say(`Reason? ${reasons.map((r, i) => `${i + 1} ${r.label.toLowerCase()}`).join(", ")} (Esc cancels)`); },
      u: () => { decisions.delete(String(pairs[focus].id)); saveSoon(); render(); },
      l: () => { listMode.checked = !listMode.checked; render(); },
      enter: submit,
    };
    if (actions[key]) { ev.preventDefault(); actions[key](); }
  });
  listMode.addEventListener("change", () => { listMode.blur(); render(); });
  root.querySelector("#qa-submit").addEventListener("click", submit);
  root.querySelector("#qa-release").addEventListener("click", async () => {
    await saveDraft();
    await send(`${API}leases/${lease.id}/release/`, "POST", {});
    window.location.href = root.dataset.indexUrl;
  });
  window.addEventListener("pagehide", () => { if (saveTimer) saveDraft({ keepalive: true }); });
  if (data.draft) say("Your draft is back.");
  render();
}
