// DOM for the review page's side panels. Every piece of model or user text goes
// in through textContent (dom.js's `h` turns strings into text nodes); no
// innerHTML anywhere.

import { button, h } from "./dom.js";
import { ROLE_COLOURS } from "./editor/painting.js";
import { ROLE_STYLE_TEXT, elementColour } from "./overlay_colours.js";
import { keyTable } from "./review_keys.js";
import { CONFIDENCE_LEVELS, EMOTIONS, EMOTION_KEYS, POSITIVE_EMOTIONS, ROLES, criticSuggestion, effectiveStatus, elementId } from "./review_model.js";

const pct = (p) => `${Math.round((p || 0) * 100)}%`;

/** The CES label: a row per emotion of the taxonomy (key, emotion, bar of the model's probability); click or its key picks. */
export function labelPanel({ label, modelLabel, ces, critic, disagreement, onPick, confidence = null, onConfidence = null, onCriticLabel = null }) {
  const dist = ces?.distribution || {};
  const top = EMOTIONS.reduce((a, b) => ((dist[b] || 0) > (dist[a] || 0) ? b : a), EMOTIONS[0]);
  const rows = EMOTIONS.map((emotion, i) => {
    const chosen = emotion === label;
    return h(
      "button",
      {
        type: "button",
        class: `emotion${chosen ? " chosen" : ""}${POSITIVE_EMOTIONS.includes(emotion) && i + 1 < EMOTIONS.length && !POSITIVE_EMOTIONS.includes(EMOTIONS[i + 1]) ? " last-positive" : ""}`,
        "aria-pressed": chosen ? "true" : "false", dataset: { emotion },
        onmousedown: (ev) => ev.preventDefault(), onclick: () => onPick(emotion),
        title: `${emotion} (key ${EMOTION_KEYS[i].toUpperCase()})`,
      },
      h("kbd", {}, EMOTION_KEYS[i].toUpperCase()),
      h("span", { class: "name" }, emotion),
      h("span", { class: `bar${emotion === top && ces ? " top" : ""}` }, h("span", { style: { width: pct(dist[emotion]) } })),
      h("span", { class: "p" }, ces ? pct(dist[emotion]) : ""),
    );
  });
  const note = [];
  if (modelLabel && label !== modelLabel) note.push(h("span", { class: "changed" }, `changed from the model's ${modelLabel}`));
  if (ces?.confidence != null) note.push(h("span", { class: "muted" }, `model confidence ${pct(ces.confidence)}`));
  const annotatorLabels = disagreement?.label?.values;
  return h(
    "section", { class: "panel label-panel", "aria-label": "Emotion label" },
    h("h2", {}, "Emotion ", h("span", { class: "current", dataset: { label: label || "" } }, label || "— none —")),
    note.length ? h("p", { class: "note" }, note) : null,
    h("div", { class: "emotions", role: "group" }, rows),
    onConfidence ? confidenceRow(confidence, onConfidence) : null,
    annotatorLabels
      ? h("p", { class: `annotator-labels${disagreement.label.agree ? "" : " disagree"}` },
          Object.entries(annotatorLabels).map(([who, l]) => h("span", {}, h("b", {}, who), " ", l || "—")))
      : null,
    critic && (critic.label_verdict || critic.label_reasoning)
      ? verdict(critic.label_verdict, critic.label_reasoning)
      : null,
    criticChoice(criticSuggestion(critic), label, onCriticLabel),
  );
}

/** The critic's suggested emotion as a one-key choice (C); null when it suggests none. */
function criticChoice(suggested, label, onCriticLabel) {
  if (!suggested || !onCriticLabel) return null;
  const chosen = suggested === label;
  return h("p", { class: "critic-suggestion" },
    button([h("span", {}, "critic suggests "), h("b", {}, suggested), " ", h("kbd", {}, "C")], onCriticLabel, {
      class: chosen ? "chosen" : "", "aria-pressed": chosen ? "true" : "false", dataset: { criticLabel: suggested },
      title: `Take the critic's suggested emotion, ${suggested} (key C)`,
    }));
}

/** "How sure": five levels (Shift+1…5); the chosen one again clears it. */
function confidenceRow(confidence, onConfidence) {
  return h("div", { class: "confidence", role: "group", "aria-label": "How sure you are of the emotion" },
    h("span", { class: "muted" }, "How sure"),
    CONFIDENCE_LEVELS.map((level, i) => {
      const chosen = confidence === level;
      return h("button", {
        type: "button", class: chosen ? "chosen" : "", "aria-pressed": chosen ? "true" : "false", dataset: { confidence: String(level) },
        title: `${["unsure", "rather unsure", "fairly sure", "sure", "certain"][i]} (Shift-${i + 1})`,
        onmousedown: (ev) => ev.preventDefault(), onclick: () => onConfidence(level),
      }, String(i + 1));
    }));
}

function verdict(v, reasoning) {
  const kind = /^(ok|agree|accept|correct|consistent|valid|yes)/i.test(v || "") ? "ok" : v ? "bad" : "";
  return h("div", { class: `critic ${kind}` }, h("span", { class: "verdict" }, `critic: ${v || "—"}`), reasoning ? h("span", { class: "reasoning" }, reasoning) : null);
}

const STATUS_TEXT = {
  pending: "to check", accepted: "accepted", accepted_unchecked: "not checked", edited: "edited", rejected: "rejected", added: "added",
};

/**
 * The triplets, one row per element. `handlers`: select(id), accept(id), reject(id),
 * editPhrase(id), editBox(id), editMask(id), addElement(key, role), addTriplet().
 */
export function elementsPanel({ work, selected, critic, editing, handlers }) {
  const verdicts = new Map();
  for (const v of critic?.elements || []) verdicts.set(`${v.triplet_index}:${v.role}`, v);
  const baseIndex = new Map();
  let n = 0;
  for (const t of work.triplets) if (!t.added) baseIndex.set(t.key, n++);
  let drawn = 0; // the element's place in the editor's order (M.elementList): its overlay colour
  const triplets = work.triplets.map((t, i) => {
    const rows = [];
    for (const role of ROLES) {
      const e = t.elements[role];
      if (!e) {
        rows.push(h("li", { class: "element missing" },
          button(`+ add ${role}`, () => handlers.addElement(t.key, role), { class: "link", title: `Add the missing ${role}` })));
        continue;
      }
      const id = elementId(t.key, role);
      const colour = elementColour(drawn++);
      const status = effectiveStatus(e);
      const v = baseIndex.has(t.key) ? verdicts.get(`${baseIndex.get(t.key)}:${role}`) : null;
      const phrase = editing === id
        ? h("input", { class: "phrase-input", type: "text", value: e.phrase, maxlength: 300, "aria-label": `${role} phrase`, dataset: { id } })
        : h("span", { class: "phrase", title: "Double-click or E to edit" }, e.phrase || "(no phrase yet)");
      rows.push(h(
        "li",
        {
          class: `element ${status}${selected === id ? " selected" : ""}`, dataset: { id, role, status },
          style: { "--role": colour }, title: `${role}: ${ROLE_STYLE_TEXT[role]} outline on the image`, onclick: (ev) => rowClick(ev, id, handlers),
        },
        h("div", { class: "line" },
          h("span", { class: "role" }, role),
          phrase,
          h("span", { class: `status ${status}` }, STATUS_TEXT[status]),
        ),
        h("div", { class: "actions" },
          button("✓ Accept", () => handlers.accept(id), { title: "Accept (A)", class: "accept" }),
          button("✗ Reject", () => handlers.reject(id), { title: "Reject (R)", class: "reject" }),
          button("✎ Phrase", () => handlers.editPhrase(id), { title: "Edit the phrase (E)" }),
          button(e.box ? "▭ Box" : "+ Box", () => handlers.editBox(id), { title: "Edit the box (V, drag corners)" }),
          button(e.mask ? "◐ Mask" : "+ Mask", () => handlers.editMask(id), { title: "Edit the mask (B brush, X eraser, P polygon, S refine)" }),
        ),
        v ? verdict(v.verdict, v.reasoning) : null,
      ));
    }
    return h("li", { class: `triplet${t.added ? " added" : ""}` },
      h("div", { class: "triplet-head" }, `Triplet ${i + 1}`, t.added ? h("span", { class: "badge" }, "added") : null),
      h("ul", { class: "elements" }, rows));
  });
  return h("section", { class: "panel elements-panel", "aria-label": "Triplets" },
    h("h2", {}, "Triplets ", h("span", { class: "muted" }, "Tab / Shift-Tab to move, A accept, R reject, E edit")),
    triplets.length ? h("ol", { class: "triplets" }, triplets) : h("p", { class: "muted" }, "The model proposed no triplet."),
    button("+ Add a triplet (N)", handlers.addTriplet, { class: "add-triplet" }));
}

/**
 * The model annotators of the latest pipeline run side by side; rows where they disagree
 * are marked. Annotators of earlier runs (`earlier`) only behind the "show earlier runs" toggle.
 */
export function annotatorsPanel({ annotators, disagreement, earlier = [], showEarlier = false, onToggleEarlier = null }) {
  if (!annotators?.length && !earlier?.length) return null;
  const agree = disagreement ? (disagreement.agree ? "they agree" : "they disagree on the marked rows") : "";
  const toggle = earlier?.length && onToggleEarlier
    ? button(showEarlier ? "hide earlier runs" : `show earlier runs (${earlier.length})`, onToggleEarlier,
      { class: "link earlier-toggle", "aria-expanded": showEarlier ? "true" : "false" })
    : null;
  // How the rows were paired: by meaning (phrase embeddings), or by words where none is stored yet.
  const alignment = disagreement?.alignment;
  const note = alignment ? h("p", { class: `muted alignment-note${alignment.fallback ? " fallback" : ""}` }, alignment.note) : null;
  return h("section", { class: "panel annotators-panel", "aria-label": "Model annotators" },
    h("h2", {}, "Annotators ", h("span", { class: "muted" }, agree)),
    note,
    annotators?.length ? annotatorsTable(annotators, disagreement) : h("p", { class: "muted" }, "No annotator answer from the latest run."),
    toggle,
    showEarlier && earlier?.length
      ? h("div", { class: "earlier-runs" }, h("h3", {}, "Earlier runs"), annotatorsTable(earlier, null, { withRun: true }))
      : null);
}

function annotatorsTable(annotators, disagreement, { withRun = false } = {}) {
  const names = annotators.map((a) => a.author_name);
  const head = h("tr", {}, h("th", {}, ""), annotators.map((a) => h("th", {}, a.author_name,
    withRun && a.pipeline_version ? h("span", { class: "muted run" }, ` ${a.pipeline_version}`) : null)));
  const labelRow = h("tr", { class: disagreement && !disagreement.label.agree ? "disagree" : "" },
    h("th", {}, "label"),
    annotators.map((a) => h("td", {}, a.ces ? `${a.ces.label} ${a.ces.confidence != null ? pct(a.ces.confidence) : ""}` : "—")));
  const rows = [];
  const items = disagreement?.triplets || [];
  if (items.length) {
    for (const item of items) {
      rows.push(h("tr", { class: item.agree ? "" : "disagree" },
        h("th", { style: { color: ROLE_COLOURS[item.role] } }, `${item.index + 1} ${item.role}`),
        names.map((n) => h("td", {}, item.values[n] ?? "—"))));
    }
  } else {
    const depth = Math.max(...annotators.map((a) => a.triplets.length));
    for (let i = 0; i < depth; i++) {
      for (const role of ROLES) {
        const values = annotators.map((a) => a.triplets[i]?.[role]?.phrase ?? null);
        if (values.every((v) => v === null)) continue;
        rows.push(h("tr", {}, h("th", { style: { color: ROLE_COLOURS[role] } }, `${i + 1} ${role}`), values.map((v) => h("td", {}, v ?? "—"))));
      }
    }
  }
  const rationales = h("tr", {}, h("th", {}, "rationale"), annotators.map((a) => h("td", { class: "rationale" }, a.rationale || "—")));
  return h("div", { class: "table-wrap" }, h("table", { class: "annotators" }, h("thead", {}, head), h("tbody", {}, labelRow, rows, rationales)));
}

/** The critic's verdicts: on the label, on each element (triplet numbers from 1), and its reasoning. */
export function criticPanel({ critic }) {
  if (!critic) return null;
  const elements = (critic.elements || []).map((v) =>
    h("li", { style: { color: ROLE_COLOURS[v.role] } }, `${(v.triplet_index ?? 0) + 1} ${v.role || ""}: `, verdict(v.verdict, v.reasoning)));
  return h("section", { class: "panel critic-panel", "aria-label": "Critic" },
    h("h2", {}, "Critic"),
    critic.label_verdict || critic.label_reasoning ? verdict(critic.label_verdict, critic.label_reasoning) : null,
    elements.length ? h("ul", { class: "critic-elements" }, elements) : null,
    critic.reasoning ? h("p", { class: "reasoning" }, critic.reasoning) : null);
}

export function rationalePanel({ rationale, critic }) {
  if (!rationale && !critic?.reasoning) return null;
  return h("section", { class: "panel rationale-panel", "aria-label": "Rationale" },
    h("h2", {}, "Rationale"),
    rationale ? h("p", { class: "rationale" }, rationale) : null,
    critic?.reasoning ? h("div", { class: "critic" }, h("span", { class: "verdict" }, "critic"), h("span", { class: "reasoning" }, critic.reasoning)) : null);
}

/** The 409 box: what changed, and the two ways on. */
export function conflictBox({ detail, changes, draft, onKeep, onDiscard, onNext }) {
  if (changes?.already_submitted) {
    // Nothing left to keep the edits for: the submitted version stands.
    return h("div", { class: "conflict", role: "alert" },
      h("strong", {}, `You already submitted this item (version ${changes.version}).`),
      h("p", { class: "muted" }, "Your submitted answer stands; these later edits were not saved."),
      button("Get the next item", onNext, { class: "primary", "data-action": "next" }));
  }
  const items = [];
  if (changes?.expected_version != null) items.push(h("li", {}, `You opened version ${changes.expected_version}; it is now version ${changes.current_version}.`));
  for (const v of changes?.newer_versions || []) {
    const when = v.created_at ? new Date(v.created_at).toLocaleString() : "";
    items.push(h("li", {}, `v${v.version}: ${v.kind} by ${v.author_name}${when ? `, ${when}` : ""}`));
  }
  return h("div", { class: "conflict", role: "alert" },
    h("strong", {}, "This item changed while you worked on it."),
    h("p", {}, detail || ""),
    items.length ? h("ul", {}, items) : null,
    h("p", { class: "muted", "data-draft": draft?.saved ? "saved" : "not-saved" }, `Your edits are still on this page. ${draftLine(draft)}`),
    h("div", { class: "row" },
      button("Reload the item, keeping my edits", onKeep, { class: "primary", "data-action": "keep" }),
      button("Discard my edits", onDiscard, { class: "danger", "data-action": "discard" })));
}

let phraseClick = null; // {id, at}: the first click of what may be a double-click on a phrase

/** A click on an element's row selects it (the second click of a double-click is phraseDoubleClick's). */
function rowClick(ev, id, handlers) {
  if (ev.target.closest("button, input") || ev.detail >= 2) return;
  phraseClick = ev.target.closest(".phrase") ? { id, at: ev.timeStamp } : null;
  handlers.select(id);
}

/**
 * The panels' click listener: the second click of a double-click on a phrase edits it. The
 * first click selected the element and redrew the rows (the old selection's actions folded
 * away), so the second one may land on another node: the element is the first click's.
 */
export function phraseDoubleClick(ev, handlers) {
  if (ev.detail < 2 || !phraseClick || ev.timeStamp - phraseClick.at > 800) return;
  const { id } = phraseClick;
  phraseClick = null;
  handlers.editPhrase(id);
}

/** One true line on what became of the reviewer's edits after a refused submit ({saved, detail}). */
export function draftLine(draft) {
  if (draft?.saved) return "They are saved as a draft.";
  return `They are NOT saved as a draft${draft?.detail ? ` (${draft.detail})` : ""}.`;
}

/** The item is no longer the reviewer's: why, and the way on (keeping the edits only while it is still theirs to review). */
export function lostBox({ detail, draft, onNext, onKeep }) {
  return h("div", { class: "conflict", role: "alert" },
    h("strong", {}, "You cannot submit this item."), h("p", {}, detail),
    h("p", { class: "muted", "data-draft": draft?.saved ? "saved" : "not-saved" }, `Your edits: ${draftLine(draft).replace(/^They are/, "they are")}`),
    h("div", { class: "row" },
      onKeep ? button("Continue with my edits", onKeep, { class: "primary", "data-action": "keep" }) : null,
      button("Get the next item", onNext, { class: onKeep ? "" : "primary", "data-action": "next" })));
}

export function keysOverlay(onClose) {
  return h("div", { class: "keys-overlay", role: "dialog", "aria-modal": "true", "aria-label": "Keyboard shortcuts", onclick: (ev) => { if (ev.target === ev.currentTarget) onClose(); } },
    h("div", { class: "keys-card" },
      h("h2", {}, "Keys"),
      h("table", {}, h("tbody", {}, keyTable().map(([k, what]) => h("tr", {}, h("th", {}, h("kbd", {}, k)), h("td", {}, what))))),
      button("Close (Esc)", onClose)));
}
