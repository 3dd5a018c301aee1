// Adjudication page: decide the final answer of an item whose reviews disagree, then submit
// it through POST /api/review/adjudication/<image_id>/ (docs/review-api.md).
// The image is the review page's editor (adjudication_editor.js): both reviewers' elements
// in their colours (reference), the final answer's elements each in its own colour.
// Keys: the taxonomy's keys (1–8 for Mikels') the emotion, Shift+1…5 how sure (again clears; absent: carried from the
// reviews), T takes the selected reviewer element into the final answer, V B X P the
// editor's tools, Z / Shift+Z undo / redo, Shift+O only the selected overlay,
// Ctrl+Enter submits. All text goes through textContent.
import { AdjudicationEditor, adjudicationId, parseAdjudicationId } from "./adjudication_editor.js";
import { csrfFromPage, requestJson } from "./api_client.js";
import { h } from "./dom.js";
import { History } from "./editor/history.js";
import { REVIEWER_COLOURS, ROLE_STYLE_TEXT } from "./overlay_colours.js";
import { keyAction, isTyping } from "./review_keys.js";
import { annotatorsPanel, criticPanel, rationalePanel } from "./review_panels.js";
import { CONFIDENCE_LEVELS, EMOTION_KEYS, ROLES } from "./review_model.js";

/** The answer a review (or the model base) holds, as the API takes it back. */
function answerFrom(annotation) {
  const triplets = (annotation.triplets || []).map((t) => {
    const out = { key: t.key };
    for (const role of ROLES) {
      if (!t[role]) continue;
      // The final answer decides every element it lists (each row has its Keep box).
      const status = t[role].status;
      const e = { phrase: t[role].phrase, status: !status || status === "pending" || status === "accepted_unchecked" ? "accepted" : status };
      if (t[role].box) e.box = [...t[role].box];
      if (t[role].mask) e.mask = { size: [...t[role].mask.size], counts: t[role].mask.counts };
      out[role] = e;
    }
    return out;
  });
  return { triplets, ces: annotation.ces ? { label: annotation.ces.label } : null, rationale: annotation.rationale || "" };
}

const copy = (value) => JSON.parse(JSON.stringify(value));

function legend(reviews) {
  return h("p", { class: "adj-legend muted" },
    "On the image: ",
    reviews.map((r, i) => h("span", { class: "swatch-item" },
      h("span", { class: "swatch", style: { background: REVIEWER_COLOURS[i % REVIEWER_COLOURS.length] } }),
      `Review ${i + 1} · ${r.reviewer}`)),
    h("span", {}, " · final answer: one colour per element · outline: "),
    ROLES.map((role) => h("span", { class: `role-${role}` }, `${role} ${ROLE_STYLE_TEXT[role]} `)));
}

export function mountAdjudication({ data, emotions, root, canvas, panels, legendRoot, apiUrl, nextUrl }) {
  const start = data.reviews.length ? data.reviews[0] : data.base;
  let answer = start ? answerFrom(start) : { triplets: [], ces: null, rationale: "" };
  let confidence = null;
  let decision = "approved";
  let reason = "";
  let message = null;
  const history = new History();

  const votes = {};
  for (const r of data.reviews) if (r.ces) (votes[r.ces.label] ||= []).push(r.reviewer);

  const view = new AdjudicationEditor({
    canvas, image: data.image, reviews: data.reviews, history, getAnswer: () => answer,
    onEdited: () => render(), onSelect: () => render(),
    onMessage: (text, level) => { message = { kind: level === "error" ? "error" : "info", text }; render(); },
  });

  /** Replace the whole answer as one undoable step (start from a review, take an element). */
  function replaceAnswer(next, label, select = null) {
    const before = copy(answer), after = copy(next);
    const apply = (value, id) => { answer = copy(value); view.sync(); if (id) view.editor.select(id); render(); };
    history.push({ label, structural: true, undo: () => apply(before, null), redo: () => apply(after, select) });
    apply(after, select);
  }

  function take() {
    const id = view.editor.selected;
    if (!id || !parseAdjudicationId(id).layer.startsWith("r")) {
      message = { kind: "error", text: "Select a reviewer's element on the image first (click it), then press T." };
      render();
      return;
    }
    const next = copy(answer);
    const saved = answer;
    answer = next;
    const taken = view.take(id);
    answer = saved;
    if (taken) replaceAnswer(next, "take element", taken);
  }

  function setLabel(label) {
    answer.ces = { label };
    render();
  }

  function setConfidence(level) {
    confidence = confidence === level ? null : level;
    render();
  }

  function select(id) {
    view.editor.select(id);
    render();
  }

  function render() {
    root.replaceChildren();
    root.append(h("h2", {}, "Final answer"));
    const labels = h("div", { class: "adj-labels", role: "radiogroup", "aria-label": "CES label" });
    emotions.forEach((emotion, i) => {
      const chosen = answer.ces && answer.ces.label === emotion;
      const who = votes[emotion] ? ` (${votes[emotion].join(", ")})` : "";
      labels.append(h("button", { type: "button", class: chosen ? "primary" : "", "aria-pressed": chosen ? "true" : "false",
        onclick: () => setLabel(emotion) }, `${EMOTION_KEYS[i].toUpperCase()} ${emotion}${who}`));
    });
    root.append(labels);
    root.append(h("div", { class: "adj-confidence", role: "group", "aria-label": "How sure you are of the emotion" },
      h("span", { class: "muted" }, "How sure (Shift+1…5; none: carried from the reviews) "),
      CONFIDENCE_LEVELS.map((level, i) => h("button", {
        type: "button", class: confidence === level ? "primary" : "", "aria-pressed": confidence === level ? "true" : "false",
        dataset: { confidence: String(level) }, onclick: () => setConfidence(level),
      }, String(i + 1)))));

    const colours = view.finalColours();
    const selected = view.editor.selected;
    const table = h("table", { class: "adj-elements" }, h("thead", {}, h("tr", {}, h("th", {}, "Triplet"), h("th", {}, "Role"),
      h("th", {}, "Phrase"), h("th", {}, "Geometry"), h("th", {}, "Keep"))));
    const body = h("tbody");
    answer.triplets.forEach((t, ti) => {
      for (const role of ROLES) {
        const e = t[role];
        if (!e) continue;
        const id = adjudicationId("f", ti, role);
        const phrase = h("input", { value: e.phrase, size: 30, "aria-label": `${role} phrase of triplet ${ti + 1}`,
          oninput: (ev) => { e.phrase = ev.target.value; if (e.status === "accepted") e.status = "edited"; } });
        const keep = h("input", { type: "checkbox", checked: e.status !== "rejected", "aria-label": `keep ${role} of triplet ${ti + 1}`,
          onchange: (ev) => { e.status = ev.target.checked ? "accepted" : "rejected"; view.sync(); } });
        const geometry = h("button", { type: "button", class: selected === id ? "primary" : "", "aria-label": `edit ${role} of triplet ${ti + 1}`,
          onclick: () => select(id) }, `${e.box ? "box" : "no box"} · ${e.mask ? "mask" : "no mask"} · edit`);
        body.append(h("tr", { class: selected === id ? "selected" : "" },
          h("td", {}, h("span", { class: "swatch", style: { background: colours.get(id) } }), ` ${ti + 1}`),
          h("td", { class: `role-${role}` }, role), h("td", {}, phrase), h("td", {}, geometry), h("td", {}, keep)));
      }
    });
    table.append(body);
    root.append(table);
    const chosen = selected && parseAdjudicationId(selected);
    root.append(h("p", { class: "filters" },
      h("button", { type: "button", onclick: take, disabled: !(chosen && chosen.layer.startsWith("r")) },
        "Take the selected reviewer element (T)"),
      h("label", {}, h("input", { type: "checkbox", name: "reviews-toggle", checked: view.showReviews, onchange: (ev) => view.setShowReviews(ev.target.checked) }),
        " show the reviewers' elements"),
      h("span", { class: "muted" }, "Tools: V box · B brush · X eraser · P polygon · Z / Shift+Z undo / redo · Shift+O only selected")));

    const decisionSelect = h("select", { onchange: (ev) => { decision = ev.target.value; } },
      ...["approved", "rejected", "flagged"].map((d) => h("option", { value: d, selected: d === decision }, d)));
    const reasonInput = h("input", { value: reason, size: 50, placeholder: "reason (required to reject or flag)",
      oninput: (ev) => { reason = ev.target.value; } });
    root.append(h("p", { class: "filters" }, h("label", {}, "Decision", decisionSelect), h("label", {}, "Reason", reasonInput),
      h("button", { type: "button", class: "primary", onclick: submit }, "Submit final answer (Ctrl+Enter)")));
    if (message) root.append(h("div", { class: `messages ${message.kind}`, role: "alert" }, h("pre", {}, message.text)));
  }

  async function submit() {
    message = null;
    const sent = copy(answer);
    if (sent.ces && confidence !== null) sent.ces.confidence = confidence;
    const response = await requestJson(apiUrl, {
      method: "POST", csrf: csrfFromPage(),
      body: { expected_version: data.version, decision, reason, annotation: sent },
    });
    const body = response.data || {};
    if (response.status === 201) {
      window.location.assign(nextUrl);
      return;
    }
    if (response.status === 409) {
      const newer = (body.changes && body.changes.newer_versions) || [];
      message = { kind: "error", text: `${body.detail}\nNewer versions: ${newer.map((v) => `v${v.version} ${v.kind} by ${v.author_name}`).join("; ") || "none"}\nReload the page to see them; your edits are still on this page.` };
    } else {
      message = { kind: "error", text: `${body.detail || response.statusText}${body.field ? ` (field: ${body.field})` : ""}` };
    }
    render();
  }

  document.querySelectorAll("[data-start-from]").forEach((button) => {
    button.addEventListener("click", () => replaceAnswer(answerFrom(data.reviews[Number(button.dataset.startFrom)]), "start from a review"));
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); submit(); return; }
    if (isTyping(ev.target)) return;
    if (!ev.ctrlKey && !ev.metaKey && !ev.altKey && !ev.shiftKey && ev.key.toLowerCase() === "t") { ev.preventDefault(); take(); return; }
    const action = keyAction(ev, { selected: view.editor.selected !== null });
    if (action?.name !== "move" && view.editor.handleKey(ev)) { ev.preventDefault(); return; }
    const run = {
      label: (emotion) => setLabel(emotion),
      confidence: (level) => setConfidence(level),
      undo: () => history.undo(),
      redo: () => history.redo(),
      onlySelected: () => view.editor.setOnlySelected(!view.editor.onlySelected),
    };
    if (!action || !run[action.name]) return;
    ev.preventDefault();
    run[action.name](action.arg);
  });

  panels.replaceChildren(...[
    criticPanel({ critic: data.critic }),
    annotatorsPanel({ annotators: data.annotators, disagreement: data.disagreement }),
    rationalePanel({ rationale: data.base?.rationale, critic: null }),
  ].filter(Boolean));
  legendRoot.replaceChildren(legend(data.reviews));
  view.sync();
  render();
}
