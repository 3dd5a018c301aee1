"""Triplet element agreement between reviewers: keep/reject decisions, box and mask IoU,
phrase agreement (exact after normalisation; semantic from stored embeddings).

An *element* is ``(image, triplet key, role)``. Each reviewer of the image either kept
it (present with status pending, accepted or edited), or rejected it (status rejected,
or absent from their review). Elements only people added (status ``added``) are not
decisions on a proposal and are left out of the decision statistics. An element a
reviewer approved with the item without looking at it (status ``accepted_unchecked``)
is unknown for that reviewer, neither kept nor rejected: it is missing from the decision
statistics, pairs with nobody, and is counted as ``unchecked``.

A model's elements are compared with each reviewer's kept triplets after aligning the
triplets (``core.alignment``, the one rule): by key where the reviewer kept the model's key
(the merged ``pipeline`` answer the reviews start from), else by meaning: an optimal
assignment over role, stored phrase embeddings and box IoU (the two VLM annotators,
whose answers are stored under their own keys), by words where a phrase has no embedding
(counted per model: ``aligned_by_words``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agreement.results import (
    ReportOptions,
    alpha_result,
    fleiss_result,
    pairable,
    undefined,
)
from agreement.selectors import ElementRow
from agreement.similarity import iou_summary
from agreement.statistics import UndefinedStatisticError
from annotations.phrase_embeddings import phrase_vectors
from core.alignment import SAME_MEANING_COSINE, NO_VECTORS, PhraseVectors, align_triplets, phrase_key, triplet_phrases
from core.boxes import paired_box_iou
from core.masks import mask_iou
from core.vocabulary import ROLES

KEPT_STATUSES = frozenset({"pending", "accepted", "edited", "added"})
UNCHECKED = "accepted_unchecked"
DECISIONS = (0.0, 1.0)  # rejected, kept


@dataclass
class _Pairs:
    """Two reviewers' kept versions of the same element, one entry per reviewer pair."""

    boxes_a: list[tuple[float, ...]] = field(default_factory=list)
    boxes_b: list[tuple[float, ...]] = field(default_factory=list)
    masks: list[tuple[dict, dict]] = field(default_factory=list)
    phrases: list[tuple[str, str]] = field(default_factory=list)

    def add(self, a: ElementRow, b: ElementRow) -> None:
        if a.box is not None and b.box is not None:
            self.boxes_a.append(a.box)
            self.boxes_b.append(b.box)
        if a.mask is not None and b.mask is not None:
            self.masks.append((a.mask, b.mask))
        self.phrases.append((phrase_key(a.phrase), phrase_key(b.phrase)))


def _decisions(units: dict[tuple, dict[str, ElementRow]], reviewers_of: dict[int, set[str]],
               reviewers: list[str]) -> np.ndarray:
    """``(reviewers, elements)``: 1 kept, 0 rejected, NaN when the reviewer did not review the
    image or approved the element unchecked (unknown)."""
    row_of = {name: i for i, name in enumerate(reviewers)}
    data = np.full((len(reviewers), len(units)), np.nan)
    for j, ((image_id, _key, _role), by_reviewer) in enumerate(units.items()):
        for name in reviewers_of.get(image_id, ()):
            row = by_reviewer.get(name)
            if row is not None and row.status == UNCHECKED:
                continue
            data[row_of[name], j] = 1.0 if row is not None and row.status in KEPT_STATUSES else 0.0
    return data


def mask_ious(pairs: list[tuple[dict, dict]]) -> tuple[np.ndarray, int]:
    """IoU of each pair of COCO RLE masks (:func:`core.masks.mask_iou`); pairs of different sizes are skipped."""
    values, skipped = [], 0
    for a, b in pairs:
        if list(a["size"]) != list(b["size"]):
            skipped += 1
            continue
        values.append(mask_iou(a, b))
    return np.array(values, dtype=np.float64), skipped


def _summary(values: np.ndarray, bins: int, what: str, who: str) -> dict[str, Any]:
    if len(values) == 0:
        return {**undefined(f"no element has a {what} from {who}", 0), "count": 0}
    try:
        return iou_summary(values, bins=bins)
    except UndefinedStatisticError as exc:
        return {**undefined(str(exc), 0), "count": 0}


def _semantic(phrases: list[tuple[str, str]], model_name: str, who: str) -> dict[str, Any]:
    """Mean cosine of the pairs' stored embeddings, and the share that mean the same
    (:data:`core.alignment.SAME_MEANING_COSINE`)."""
    if not phrases:
        return undefined(f"no element was kept by {who}", 0)
    if not model_name:
        return undefined("no sentence-embedding model is configured", 0)
    texts = {t for pair in phrases for t in pair}
    vectors = phrase_vectors(texts, model_name=model_name)
    cosines = [c for c in (vectors.cosine(a, b) for a, b in phrases) if c is not None]
    if not cosines:
        reason = (f"no phrase embeddings from {model_name} are stored for these phrases; workers embed them after "
                  "pre-annotation, import and review, or run `python manage.py embed_phrases --dataset SLUG` "
                  "where sentence-transformers is installed")
        return {**undefined(reason, 0), "missing_phrases": len([t for t in texts if t not in vectors])}
    similarity = np.array(cosines)
    return {
        "value": float(similarity.mean()),
        "median": float(np.median(similarity)),
        "share_similar": float(np.mean(similarity >= SAME_MEANING_COSINE)),
        "threshold": SAME_MEANING_COSINE,
        "n": len(cosines),
        "missing_pairs": len(phrases) - len(cosines),
        "model": model_name,
    }


def _exact(phrases: list[tuple[str, str]], who: str) -> dict[str, Any]:
    if not phrases:
        return undefined(f"no element was kept by {who}", 0)
    return {"value": float(np.mean([a == b for a, b in phrases])), "n": len(phrases)}


def group(rows: Iterable[ElementRow]) -> dict[tuple, dict[str, ElementRow]]:
    """``(image, key, role)`` → reviewer → row, for elements that are not only person-added."""
    units: dict[tuple, dict[str, ElementRow]] = {}
    for row in rows:
        units.setdefault((row.image_id, row.key, row.role), {})[row.reviewer] = row
    return {k: v for k, v in units.items() if any(r.status != "added" for r in v.values())}


def _pair_section(pairs: _Pairs, options: ReportOptions, who: str) -> dict[str, Any]:
    """Box and mask IoU summaries and phrase agreement over aligned element pairs."""
    boxes = paired_box_iou(np.array(pairs.boxes_a).reshape(-1, 4), np.array(pairs.boxes_b).reshape(-1, 4))
    masks, skipped = mask_ious(pairs.masks)
    return {
        "box_iou": _summary(boxes, options.iou_bins, "box", who),
        "mask_iou": {**_summary(masks, options.iou_bins, "mask", who), "skipped_size_mismatch": skipped},
        "phrase_exact": _exact(pairs.phrases, who),
        "phrase_semantic": _semantic(pairs.phrases, options.semantic_model, who),
    }


def element_section(units: dict[tuple, dict[str, ElementRow]], reviewers_of: dict[int, set[str]],
                    options: ReportOptions) -> dict[str, Any]:
    """Decision alpha and Fleiss' kappa with intervals, share of unanimous elements, IoU
    summaries and phrase agreement between reviewers (``units`` from :func:`group`)."""
    reviewers = sorted({name for names in reviewers_of.values() for name in names})
    data = _decisions(units, reviewers_of, reviewers)
    rated = pairable(data)
    section: dict[str, Any] = {
        "elements": int(rated.sum()),
        "decision_alpha": alpha_result(data, "nominal", options),
        "decision_fleiss_kappa": fleiss_result(data, DECISIONS, options),
        "unanimous": None,
        "kept": None,
        "unchecked": sum(r.status == UNCHECKED for by_reviewer in units.values() for r in by_reviewer.values()),
    }
    if rated.any():
        values = data[:, rated]
        section["unanimous"] = float(np.mean(np.nanmin(values, axis=0) == np.nanmax(values, axis=0)))
        section["kept"] = float(np.nanmean(values))
    pairs = _Pairs()
    for by_reviewer in units.values():
        kept = sorted((name, r) for name, r in by_reviewer.items() if r.status in KEPT_STATUSES)
        for (_, a), (_, b) in itertools.combinations(kept, 2):
            pairs.add(a, b)
    return {**section, **_pair_section(pairs, options, "two reviewers who both kept it")}


def triplets_by_author(rows: Iterable[ElementRow], *, kept_only: bool = False) -> dict[int, dict[str, list[dict]]]:
    """``image → author → triplets`` in the form :func:`core.alignment.align_triplets`
    reads (``{"key", role: {"phrase", "box", "mask", "row"}}``); with ``kept_only``, only
    elements the author kept or approved unchecked (a triplet with none left is dropped)."""
    grouped: dict[int, dict[str, dict[str, dict]]] = {}
    for row in rows:
        if kept_only and row.status not in KEPT_STATUSES and row.status != UNCHECKED:
            continue
        triplet = grouped.setdefault(row.image_id, {}).setdefault(row.reviewer, {}).setdefault(row.key, {"key": row.key})
        triplet[row.role] = {"phrase": row.phrase, "box": list(row.box) if row.box else None, "mask": row.mask, "row": row}
    return {image: {author: list(triplets.values()) for author, triplets in by_author.items()}
            for image, by_author in grouped.items()}


def _image_vectors(images: list[int], model_triplets: dict[int, dict[str, list[dict]]],
                   reviewer_triplets: dict[int, dict[str, list[dict]]], model_name: str) -> PhraseVectors:
    """The stored embeddings of every phrase of ``images`` (one query per 500 phrases)."""
    if not model_name:
        return NO_VECTORS
    answers = [t for image in images for source in (model_triplets, reviewer_triplets)
               for t in source.get(image, {}).values()]
    return phrase_vectors(triplet_phrases(*answers), model_name=model_name)


IMAGES_PER_LOOKUP = 500


def model_element_sections(model_rows: Iterable[ElementRow], reviewer_triplets: dict[int, dict[str, list[dict]]],
                           reviewers_of: dict[int, set[str]], options: ReportOptions) -> dict[str, dict[str, Any]]:
    """Per model: how often reviewers kept its elements, and IoU and phrase agreement of each
    element with every reviewer's kept version of it. ``reviewer_triplets``: each reviewer's
    kept triplets (:func:`triplets_by_author` with ``kept_only``). The model's triplets are
    aligned with each reviewer's (module docstring) using the embeddings stored under
    ``options.semantic_model``; an element whose triplet has no counterpart, or whose
    counterpart lacks its role, counts as rejected; one the reviewer approved unchecked is
    no decision (counted as ``unchecked``). ``aligned_by_words``: the model's triplets
    paired by words because a phrase had no stored embedding."""
    kept: dict[str, list[float]] = {}
    unchecked: dict[str, int] = {}
    pairs: dict[str, _Pairs] = {}
    by_words: dict[str, int] = {}
    model_triplets = triplets_by_author(model_rows)
    images = sorted(model_triplets)
    for start in range(0, len(images), IMAGES_PER_LOOKUP):
        chunk = images[start : start + IMAGES_PER_LOOKUP]
        vectors = _image_vectors(chunk, model_triplets, reviewer_triplets, options.semantic_model)
        for image_id in chunk:
            for model, triplets in model_triplets[image_id].items():
                decisions = kept.setdefault(model, [])
                model_pairs = pairs.setdefault(model, _Pairs())
                for name in sorted(reviewers_of.get(image_id, ())):
                    review = reviewer_triplets.get(image_id, {}).get(name, [])
                    for pair in align_triplets(triplets, review, vectors).pairs:
                        mine, theirs = pair.a, pair.b
                        if mine is None:
                            continue  # a triplet only the reviewer has: no decision on the model's proposal
                        by_words[model] = by_words.get(model, 0) + (pair.paired_by == "words")
                        for role in (r for r in ROLES if r in mine):
                            if theirs is not None and role in theirs and theirs[role]["row"].status == UNCHECKED:
                                unchecked[model] = unchecked.get(model, 0) + 1
                                continue
                            is_kept = theirs is not None and role in theirs
                            decisions.append(float(is_kept))
                            if is_kept:
                                model_pairs.add(mine[role]["row"], theirs[role]["row"])
    out = {}
    for model in sorted(kept):
        decisions = kept[model]
        out[model] = {
            "decisions": len(decisions),
            "unchecked": unchecked.get(model, 0),
            "kept_by_reviewers": float(np.mean(decisions)) if decisions else None,
            "aligned_by_words": by_words.get(model, 0),
            **_pair_section(pairs[model], options, "this model and a reviewer who kept it (aligned triplets)"),
        }
    return out
