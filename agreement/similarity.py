"""Element agreement: mask IoU of dense arrays, IoU summaries, exact phrase matching. Pure numpy (no Django).

- Box IoU is :mod:`core.boxes`; IoU of COCO RLE masks is :func:`core.masks.mask_iou`.
- Phrases are compared by :mod:`core.alignment` (the one rule): the same phrase after
  :func:`core.alignment.phrase_key`, and meaning from stored embeddings
  (:class:`core.alignment.PhraseVectors`, ``SAME_MEANING_COSINE``).
- A value that is undefined for its input (two empty boxes, no phrase pair) is ``NaN``
  in an array, or raises :class:`agreement.statistics.UndefinedStatisticError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agreement.statistics import UndefinedStatisticError
from core.alignment import phrase_key

# ----------------------------------------------------------------------------- IoU


def mask_iou(masks_a: Any, masks_b: Any) -> np.ndarray:
    """IoU of boolean masks of equal shape ``(..., H, W)``, reduced over ``H, W``; NaN if both empty."""
    a, b = np.asarray(masks_a, dtype=bool), np.asarray(masks_b, dtype=bool)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"masks must share one shape (..., H, W), got {a.shape} and {b.shape}")
    inter = np.logical_and(a, b).sum(axis=(-2, -1))
    union = np.logical_or(a, b).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def iou_summary(values: Any, bins: int = 10) -> dict[str, Any]:
    """Mean, median and a histogram over ``[0, 1]`` of IoU values; ``NaN`` values are counted apart.

    Returns ``{"count", "n_undefined", "mean", "median", "histogram": {"edges", "counts"}}``.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    defined = v[~np.isnan(v)]
    if len(defined) == 0:
        raise UndefinedStatisticError("no defined IoU value to summarise")
    if np.any((defined < 0) | (defined > 1)):
        raise ValueError("IoU values must lie in [0, 1]")
    counts, edges = np.histogram(defined, bins=bins, range=(0.0, 1.0))
    return {
        "count": len(defined),
        "n_undefined": int(len(v) - len(defined)),
        "mean": float(defined.mean()),
        "median": float(np.median(defined)),
        "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
    }


# -------------------------------------------------------------------------- phrases


def exact_match_rate(phrases_a: Sequence[str], phrases_b: Sequence[str]) -> float:
    """Share of aligned phrase pairs that are the same phrase (:func:`core.alignment.phrase_key`)."""
    if len(phrases_a) != len(phrases_b):
        raise ValueError(f"phrase lists differ in length: {len(phrases_a)} vs {len(phrases_b)}")
    if len(phrases_a) == 0:
        raise UndefinedStatisticError("exact match rate needs at least one phrase pair")
    return sum(phrase_key(a) == phrase_key(b) for a, b in zip(phrases_a, phrases_b)) / len(phrases_a)
