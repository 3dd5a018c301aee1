"""Element agreement: mask IoU of dense arrays, IoU summaries, phrase matching. Pure numpy (no Django).

- Box IoU is :mod:`core.boxes`; IoU of COCO RLE masks is :func:`core.masks.mask_iou`.
- A value that is undefined for its input (two empty boxes, no phrase pair) is ``NaN``
  in an array, or raises :class:`agreement.statistics.UndefinedStatisticError`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from agreement.statistics import UndefinedStatisticError

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


def normalize_phrase(phrase: str) -> str:
    """NFKC, case-folded, whitespace collapsed: ``"  Dark  Clouds "`` -> ``"dark clouds"``."""
    return " ".join(unicodedata.normalize("NFKC", phrase).casefold().split())


def exact_match_rate(phrases_a: Sequence[str], phrases_b: Sequence[str]) -> float:
    """Share of aligned phrase pairs equal after :func:`normalize_phrase`."""
    if len(phrases_a) != len(phrases_b):
        raise ValueError(f"phrase lists differ in length: {len(phrases_a)} vs {len(phrases_b)}")
    if len(phrases_a) == 0:
        raise UndefinedStatisticError("exact match rate needs at least one phrase pair")
    return sum(normalize_phrase(a) == normalize_phrase(b) for a, b in zip(phrases_a, phrases_b)) / len(phrases_a)


def cosine_similarity_matrix(embeddings_a: Any, embeddings_b: Any) -> np.ndarray:
    """``(N, M)`` cosine similarity of row vectors ``(N, D)`` and ``(M, D)`` (e.g. phrase embeddings)."""
    a, b = np.asarray(embeddings_a, dtype=np.float64), np.asarray(embeddings_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings must be (N, D) and (M, D), got {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if np.any(na == 0) or np.any(nb == 0):
        raise ValueError("a zero vector has no direction; cosine similarity is undefined")
    return (a / na[:, None]) @ (b / nb[:, None]).T
