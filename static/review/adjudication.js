// Adjudication page: pick or edit the final answer of an item whose reviews disagree,
// then submit it through POST /api/review/adjudication/<image_id>/ (docs/review-api.md).
// Keys: 1–8 pick the emotion, Ctrl+Enter submits. All text goes through textContent.
// The overlay (masks and boxes of the answer, over the image) uses the editor's colours
// and mask painting; requests go through the API client.
import { csrfFromPage, requestJson } from "./api_client.js";
import { h } from "./dom.js";
import { ROLE_COLOURS, paintMask, roleRgb } from "./editor/painting.js";
import { ROLES } from "./review_model.js";
import { decodeRle } from "./rle.js";

const OVERLAY_ALPHA = 90; // the masks' alpha on the overlay canvas

/** The answer a review (or the model base) holds, as the API takes it back. */
function answerFrom(annotation) {
  const triplets = (annotation.triplets || []).map((t) => {
    const out = { key: t.key };
    for (const role of ROLES) {
      if (!t[role]) continue;
      // The final answer decides every element it lists (each row has its Keep box).
      const status = t[role].status;
      const e = { phrase: t[role].phrase, status: !status || status === "pending" || status === "accepted_unchecked" ? "accepted" : status };
      if (t[role].box) e.box = t[role].box;
      if (t[role].mask) e.mask = t[role].mask;
      out[role] = e;
    }
    return out;
  });
  return { triplets, ces: annotation.ces ? { label: annotation.ces.label } : null, rationale: annotation.rationale || "" };
}

function drawOverlay(canvas, answer) {
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const pixels = ctx.createImageData(canvas.width, canvas.height);
  for (const t of answer.triplets) {
    for (const role of ROLES) {
      const e = t[role];
      if (!e || e.status === "rejected" || !e.mask) continue;
      const [maskH, maskW] = e.mask.size;
      if (maskH !== canvas.height || maskW !== canvas.width) continue;
      paintMask(pixels.data, canvas.width, decodeRle(e.mask).data, [...roleRgb(role), OVERLAY_ALPHA]);
    }
  }
  ctx.putImageData(pixels, 0, 0);
  ctx.lineWidth = Math.max(2, canvas.width / 300);
  for (const t of answer.triplets) {
    for (const role of ROLES) {
      const e = t[role];
      if (!e || e.status === "rejected" || !e.box) continue;
      ctx.strokeStyle = ROLE_COLOURS[role];
      const [x0, y0, x1, y1] = e.box;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    }
  }
}

export function mountAdjudication({ data, emotions, root, canvas, apiUrl, nextUrl }) {
  const start = data.reviews.length ? data.reviews[0] : data.base;
  let answer = start ? answerFrom(start) : { triplets: [], ces: null, rationale: "" };
  let decision = "approved";
  let reason = "";
  let message = null;

  const votes = {};
  for (const r of data.reviews) if (r.ces) (votes[r.ces.label] ||= []).push(r.reviewer);

  function setLabh(label) {
    answer.ces = { label };
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
        onclick: () => setLabh(emotion) }, `${i + 1} ${emotion}${who}`));
    });
    root.append(labels);

    const table = h("table", { class: "adj-elements" }, h("thead", {}, h("tr", {}, h("th", {}, "Triplet"), h("th", {}, "Role"),
      h("th", {}, "Phrase"), h("th", {}, "Keep"))));
    const body = h("tbody");
    answer.triplets.forEach((t, ti) => {
      for (const role of ROLES) {
        const e = t[role];
        if (!e) continue;
        const phrase = h("input", { value: e.phrase, size: 30, "aria-label": `${role} phrase of triplet ${ti + 1}`,
          oninput: (ev) => { e.phrase = ev.target.value; if (e.status === "accepted") e.status = "edited"; } });
        const keep = h("input", { type: "checkbox", checked: e.status !== "rejected", "aria-label": `keep ${role} of triplet ${ti + 1}`,
          onchange: (ev) => { e.status = ev.target.checked ? "accepted" : "rejected"; drawOverlay(canvas, answer); } });
        body.append(h("tr", {}, h("td", {}, String(ti + 1)), h("td", { class: `role-${role}` }, role), h("td", {}, phrase), h("td", {}, keep)));
      }
    });
    table.append(body);
    root.append(table);

    const decisionSelect = h("select", { onchange: (ev) => { decision = ev.target.value; } },
      ...["approved", "rejected", "flagged"].map((d) => h("option", { value: d, selected: d === decision }, d)));
    const reasonInput = h("input", { value: reason, size: 50, placeholder: "reason (required to reject or flag)",
      oninput: (ev) => { reason = ev.target.value; } });
    root.append(h("p", { class: "filters" }, h("label", {}, "Decision", decisionSelect), h("label", {}, "Reason", reasonInput),
      h("button", { type: "button", class: "primary", onclick: submit }, "Submit final answer (Ctrl+Enter)")));
    if (message) root.append(h("div", { class: `messages ${message.kind}`, role: "alert" }, h("pre", {}, message.text)));
    drawOverlay(canvas, answer);
  }

  async function submit() {
    message = null;
    const response = await requestJson(apiUrl, {
      method: "POST", csrf: csrfFromPage(),
      body: { expected_version: data.version, decision, reason, annotation: answer },
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
    button.addEventListener("click", () => { answer = answerFrom(data.reviews[Number(button.dataset.startFrom)]); render(); });
  });
  document.addEventListener("keydown", (ev) => {
    const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement;
    if (ev.key === "Enter" && ev.ctrlKey) { ev.preventDefault(); submit(); return; }
    if (!typing && /^[1-8]$/.test(ev.key)) setLabh(emotions[Number(ev.key) - 1]);
  });
  render();
}
