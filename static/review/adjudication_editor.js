// The adjudication page's editor: the review page's MaskEditor over the image, holding
// each reviewer's elements (locked, in the reviewer's colour: reference only) and the
// final answer's elements (each in its own colour, editable with the box tool, brush,
// eraser and polygon; undo/redo through the shared History). `take` copies a reviewer's
// element into the final answer (same triplet key and role), where it can be edited.
import { MaskEditor } from "./editor/mask_editor.js";
import { REVIEWER_COLOURS, elementColour } from "./overlay_colours.js";
import { ROLES } from "./review_model.js";
import { decodeRle, encodeRle } from "./rle.js";

const FINAL = "f";

/** The editor id of element `role` of triplet `ti` of the final answer ("f") or of review n ("r<n>"). */
export function adjudicationId(layer, ti, role) {
  return `${layer}:${ti}:${role}`;
}

export function parseAdjudicationId(id) {
  const [layer, ti, role] = id.split(":");
  return { layer, ti: Number(ti), role };
}

const short = (text, n = 24) => (text && text.length > n ? `${text.slice(0, n - 1)}…` : text || "");

export class AdjudicationEditor {
  /**
   * canvas: the editor's canvas; image: {url, width, height}; reviews: the payload's reviews;
   * history: the page's History; getAnswer(): the final answer being edited;
   * onEdited(id, kind): after a final element's box or mask changed; onSelect(id); onMessage(text, level).
   */
  constructor({ canvas, image, reviews, history, getAnswer, onEdited, onSelect, onMessage }) {
    this.reviews = reviews;
    this.getAnswer = getAnswer;
    this.width = image.width;
    this.height = image.height;
    this.showReviews = true;
    this.editor = new MaskEditor(canvas, {
      width: image.width, height: image.height, imageUrl: image.url, history,
      onChange: (id, kind) => this._changed(id, kind),
      onSelect: (id) => onSelect(id),
      onMessage,
    });
    this.onEdited = onEdited;
    canvas.editor = this.editor; // the browser tests read its view
  }

  /** Rebuild the editor's elements from the reviews and the final answer (after a structural change). */
  sync() {
    const list = [];
    if (this.showReviews) {
      this.reviews.forEach((review, ri) => {
        (review.triplets || []).forEach((t, ti) => {
          for (const role of ROLES) {
            const e = t[role];
            if (!e || e.status === "rejected" || (!e.box && !e.mask)) continue;
            list.push({
              id: adjudicationId(`r${ri}`, ti, role), role, colour: REVIEWER_COLOURS[ri % REVIEWER_COLOURS.length],
              label: `R${ri + 1} ${short(e.phrase)}`, box: e.box || null, mask: e.mask ? decodeRle(e.mask).data : null,
              locked: true, lockedMessage: `Review ${ri + 1}'s element: press T to take it into the final answer, then edit it.`,
            });
          }
        });
      });
    }
    let n = 0;
    this.getAnswer().triplets.forEach((t, ti) => {
      for (const role of ROLES) {
        const e = t[role];
        if (!e) continue;
        list.push({
          id: adjudicationId(FINAL, ti, role), role, colour: elementColour(n++), label: short(e.phrase),
          box: e.box || null, mask: e.mask ? decodeRle(e.mask).data : null, rejected: e.status === "rejected",
        });
      }
    });
    const selected = this.editor.selected;
    this.editor.setElements(list);
    if (selected !== null) this.editor.select(selected);
  }

  /** The colour of a final element (as the table shows it): the n-th final element's. */
  finalColours() {
    const out = new Map();
    let n = 0;
    this.getAnswer().triplets.forEach((t, ti) => {
      for (const role of ROLES) if (t[role]) out.set(adjudicationId(FINAL, ti, role), elementColour(n++));
    });
    return out;
  }

  setShowReviews(show) {
    this.showReviews = show;
    this.sync();
  }

  /** Write an edited box or mask of a final element back into the answer. */
  _changed(id, kind) {
    const { layer, ti, role } = parseAdjudicationId(id);
    if (layer !== FINAL) return;
    const e = this.getAnswer().triplets[ti]?.[role];
    if (!e) return;
    if (kind === "box") {
      const box = this.editor.getBox(id);
      if (box) e.box = box;
      else delete e.box;
    } else {
      const mask = this.editor.getMask(id);
      if (mask) e.mask = encodeRle(mask, this.height, this.width);
      else delete e.mask;
    }
    if (e.status !== "rejected" && e.status !== "added") e.status = "edited";
    this.onEdited(id, kind);
  }

  /**
   * Copy reviewer element `id` (box, mask, phrase) into the final answer: into the triplet with
   * the same key when it has one, else into a new triplet. Returns the final element's id, or null.
   */
  take(id) {
    const { layer, ti, role } = parseAdjudicationId(id);
    if (!layer.startsWith("r")) return null;
    const source = this.reviews[Number(layer.slice(1))]?.triplets?.[ti];
    const e = source?.[role];
    if (!e) return null;
    const answer = this.getAnswer();
    let index = answer.triplets.findIndex((t) => source.key && t.key === source.key);
    if (index < 0) {
      answer.triplets.push({ key: source.key });
      index = answer.triplets.length - 1;
    }
    const taken = { phrase: e.phrase, status: "edited" };
    if (e.box) taken.box = [...e.box];
    if (e.mask) taken.mask = { size: [...e.mask.size], counts: e.mask.counts };
    answer.triplets[index][role] = taken;
    return adjudicationId(FINAL, index, role);
  }
}
