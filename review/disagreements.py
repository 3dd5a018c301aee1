"""Differences between a model's answer and a person's final answer.

Pure functions over annotation dicts in the EmoVerse JSONL form produced by
``annotations.selectors.annotation_to_dict`` (triplets with ``key`` and one
object per role: ``phrase``, ``box`` XYXY pixels, ``mask`` COCO RLE with
string counts, ``status``). No database access here.

An element the reviewer approved with the item without looking at it (status
``accepted_unchecked``) is unknown, neither agreement nor disagreement: it gets no
row at all (the submit answer counts such elements apart).

Element identity is ``(triplet key, role)``. A model annotation whose triplet
keys do not occur in the human answer (e.g. one of the two VLM annotators,
whose triplets the pipeline merged under new keys) is aligned triplet by
triplet by meaning instead (``core.alignment``: role, phrase embeddings, box
and mask IoU), so a paraphrase is one element with a phrase edit, not an
element rejected plus an element added. Each difference says how its triplets
were paired (``paired_by``: ``key``, ``meaning``, or ``words`` where a phrase had
no stored embedding yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.alignment import NO_VECTORS, PhraseVectors, align_triplets, phrase_key, same_meaning
from core.boxes import box_iou
from core.masks import mask_iou
from core.vocabulary import ROLES

IOU_EQUAL = 1.0 - 1e-9
UNCHECKED = "accepted_unchecked"


@dataclass(frozen=True)
class Difference:
    field: str
    triplet_key: str | None = None
    role: str = ""
    model_value: Any = None
    model_confidence: float | None = None
    human_value: Any = None
    box_iou: float | None = None
    mask_iou: float | None = None
    paired_by: str = ""  # how the element's triplets were paired: key, meaning, words; "" when unpaired or for the label


def _kept(element: dict | None) -> bool:
    return element is not None and element.get("status") != "rejected"


def _summary(element: dict) -> dict:
    """An element without its mask (masks are logged only on mask rows)."""
    return {k: element[k] for k in ("phrase", "box") if k in element}


def _element_differences(key: str | None, role: str, me: dict | None, he: dict | None, *,
                          locates: bool = True, paired_by: str = "") -> list[Difference]:
    if he is not None and he.get("status") == UNCHECKED:
        return []  # nobody looked at it: no evidence either way
    if me is None and not _kept(he):
        return []
    if me is not None and not _kept(he):
        return [Difference("element_rejected", key, role, _summary(me), me.get("box_score"), None, paired_by=paired_by)]
    if me is None:
        return [Difference("element_added", key, role, None, None, _summary(he), paired_by=paired_by)]
    out = []
    if phrase_key(me.get("phrase")) != phrase_key(he.get("phrase")):
        out.append(Difference("element_phrase", key, role, me.get("phrase"), me.get("box_score"), he.get("phrase"),
                              paired_by=paired_by))
    if not locates:
        return out
    mb, hb = me.get("box"), he.get("box")
    if (mb or hb) and (iou := box_iou(mb, hb)) < IOU_EQUAL:
        out.append(Difference("box", key, role, mb, me.get("box_score"), hb, box_iou=iou, paired_by=paired_by))
    mm, hm = me.get("mask"), he.get("mask")
    if (mm or hm) and (iou := mask_iou(mm, hm)) < IOU_EQUAL:
        out.append(Difference("mask", key, role, mm, me.get("mask_score"), hm, mask_iou=iou, paired_by=paired_by))
    return out


def annotation_differences(model: dict, human: dict, vectors: PhraseVectors = NO_VECTORS) -> list[Difference]:
    """Every difference between ``model``'s answer and ``human``'s final answer.

    CES label (when both have one); per aligned element: rejected (missing from
    or rejected in the human answer), phrase, box (with box IoU), mask (with mask
    IoU); elements of the human answer the model lacks (added). Elements the person
    approved unchecked give no row (module docstring). A missing box or
    mask on one side counts as IoU 0 — except for a phrase-only answer (a VLM
    annotator's: no box and no mask anywhere), which is not compared on location.
    """
    out = []
    m_ces, h_ces = model.get("ces") or {}, human.get("ces") or {}
    if m_ces.get("label") and h_ces.get("label") and m_ces["label"] != h_ces["label"]:
        out.append(Difference("ces_label", model_value=m_ces["label"], model_confidence=m_ces.get("confidence"),
                              human_value=h_ces["label"]))
    triplets = model.get("triplets") or []
    locates = any((t.get(role) or {}).get("box") or (t.get(role) or {}).get("mask") for t in triplets for role in ROLES)
    for pair in align_triplets(triplets, human.get("triplets") or [], vectors).pairs:
        mt, ht = pair.a, pair.b
        key = (ht or mt).get("key")
        for role in ROLES:
            out += _element_differences(key, role, (mt or {}).get(role), (ht or {}).get(role), locates=locates,
                                        paired_by=pair.paired_by)
    return out


def kept_elements(annotation: dict) -> dict[tuple[str, str], bool]:
    """``(triplet key, role) → kept`` for the elements that were not added by a person."""
    out = {}
    for t in annotation.get("triplets") or []:
        for role in ROLES:
            element = t.get(role)
            if element is not None and element.get("status") != "added":
                out[(t.get("key"), role)] = _kept(element)
    return out


def _elements(annotation: dict) -> dict[tuple[str, str], dict]:
    return {(t.get("key"), role): t[role] for t in annotation.get("triplets") or [] for role in ROLES if t.get(role)}


def _added(annotation: dict) -> list[dict]:
    """The triplets with the elements a person added (their keys are new on every review)."""
    out = []
    for t in annotation.get("triplets") or []:
        added = {role: t[role] for role in ROLES if t.get(role) and t[role].get("status") == "added"}
        if added:
            out.append({"key": t.get("key"), **added})
    return out


def _same_additions(a: list[dict], b: list[dict], vectors: PhraseVectors) -> bool:
    """Two reviews added the same elements: their added triplets pair one to one
    (:func:`core.alignment.align_triplets`), with the same roles, phrases that mean the
    same (:func:`core.alignment.same_meaning`)."""
    for pair in align_triplets(a, b, vectors).pairs:
        if not pair.matched or {r for r in ROLES if r in pair.a} != {r for r in ROLES if r in pair.b}:
            return False
        if any(not same_meaning(pair.a[r].get("phrase"), pair.b[r].get("phrase"), vectors) for r in ROLES if r in pair.a):
            return False
    return True


def _same_element(a: dict, b: dict, min_iou: float) -> bool:
    if phrase_key(a.get("phrase")) != phrase_key(b.get("phrase")):
        return False
    if (a.get("box") or b.get("box")) and box_iou(a.get("box"), b.get("box")) < min_iou:
        return False
    return not ((a.get("mask") or b.get("mask")) and mask_iou(a.get("mask"), b.get("mask")) < min_iou)


def reviews_disagree(reviews: list[dict], decisions: list[str], *, min_iou: float = 0.75,
                     vectors: PhraseVectors = NO_VECTORS) -> bool:
    """True when independent reviews differ on the label, the decision, which
    (model-proposed) elements to keep, how they edited a kept element (phrase after
    normalising case and spaces; box or mask IoU below ``min_iou``), or the elements
    they added (their triplets paired by :mod:`core.alignment`, compared by role and
    meaning). An element one review dropped counts as rejected."""
    if len(set(decisions)) > 1:
        return True
    labels = {(r.get("ces") or {}).get("label") for r in reviews}
    if len(labels) > 1:
        return True
    kept = [kept_elements(r) for r in reviews]
    universe = set().union(*kept) if kept else set()
    if any(len({k.get(element, False) for k in kept}) > 1 for element in universe):
        return True
    elements = [_elements(r) for r in reviews]
    for element in universe:
        if not kept[0].get(element, False):
            continue  # rejected by everyone: what it would have been does not matter
        first = elements[0][element]
        if any(not _same_element(first, other[element], min_iou) for other in elements[1:]):
            return True
    added = [_added(r) for r in reviews]
    return any(not _same_additions(added[0], other, vectors) for other in added[1:])


def _pair_iou(a: dict, b: dict, field: str, measure) -> float | None:
    """IoU of one geometry field of two elements; None when neither has it, 0 when only one has it."""
    if not (a.get(field) or b.get(field)):
        return None
    return measure(a.get(field), b.get(field))


def reviews_conflict(reviews: list[dict], *, min_iou: float = 0.75) -> dict[str, Any]:
    """Why independent reviews conflict, for the adjudication queue.

    ``labels``: the distinct CES labels when the reviews disagree on it (else empty);
    ``elements``: how many elements one review kept and another rejected or left
    out (model-proposed elements by ``(triplet key, role)``, added ones by role and
    phrase); ``geometry``: the lowest box or mask IoU between the reviews' copies
    of an element every review kept, when it is below ``min_iou`` (else None);
    ``reasons``: the same as short sentences.
    """
    labels = sorted({label for r in reviews if (label := (r.get("ces") or {}).get("label"))})
    labels = labels if len(labels) > 1 else []
    kept = [kept_elements(r) for r in reviews]
    universe = set().union(*kept) if kept else set()
    split = sum(1 for element in universe if len({k.get(element, False) for k in kept}) > 1)
    added = [set(_added(r)) for r in reviews]
    split += len(set().union(*added) - set.intersection(*added)) if added else 0
    elements = [_elements(r) for r in reviews]
    lowest: float | None = None
    for element in universe:
        if not all(k.get(element, False) for k in kept):
            continue
        first = elements[0][element]
        for other in elements[1:]:
            for field, measure in (("box", box_iou), ("mask", mask_iou)):
                iou = _pair_iou(first, other[element], field, measure)
                if iou is not None and (lowest is None or iou < lowest):
                    lowest = iou
    geometry = lowest if lowest is not None and lowest < min_iou else None
    reasons = []
    if labels:
        reasons.append(f"label: {' / '.join(labels)}")
    if split:
        reasons.append(f"elements: {split} kept by one reviewer, rejected or absent for another")
    if geometry is not None:
        reasons.append(f"geometry: IoU {geometry:.2f} < {min_iou:.2f}")
    return {"labels": labels, "elements": split, "geometry": geometry, "min_iou": min_iou, "reasons": reasons}


__all__ = ["Difference", "annotation_differences", "kept_elements", "reviews_conflict", "reviews_disagree"]
