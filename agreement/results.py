"""Report options, and statistics wrapped as JSON-ready results with bootstrap intervals.

A result is ``{"value", "low", "high", "n", "confidence", "undefined_resamples"}`` or, when
the statistic has no value for the data, ``{"value": None, "undefined": "<reason>", "n"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings

from annotations.phrase_embeddings import phrase_model_name
from agreement.statistics import (
    ConfidenceInterval,
    UndefinedStatisticError,
    cohen_kappa,
    confusion_matrix,
    counts_table,
    fleiss_kappa,
    krippendorff_alpha_ci,
)


@dataclass(frozen=True)
class ReportOptions:
    n_resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95
    min_shared: int = 5  # a reviewer pair needs this many shared items for Cohen's kappa
    iou_bins: int = 10
    semantic_model: str = ""  # PhraseEmbedding.model_name to read; empty: no semantic score, triplets paired by words

    @classmethod
    def from_settings(cls, **overrides: Any) -> ReportOptions:
        """Defaults from ``EMOVERSE_AGREEMENT_RESAMPLES``, ``_SEED``, ``_MIN_SHARED``; ``None`` overrides are ignored."""
        values = {
            "n_resamples": getattr(settings, "EMOVERSE_AGREEMENT_RESAMPLES", 1000),
            "seed": getattr(settings, "EMOVERSE_AGREEMENT_SEED", 0),
            "min_shared": getattr(settings, "EMOVERSE_AGREEMENT_MIN_SHARED", 5),
            "semantic_model": phrase_model_name(),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        options = cls(**values)
        if options.n_resamples < 1 or options.min_shared < 1:
            raise ValueError("n_resamples and min_shared must be at least 1")
        return options


def undefined(reason: str, n: int | None = None) -> dict[str, Any]:
    return {"value": None, "undefined": reason, "n": n}


def with_interval(interval: Callable[[], ConfidenceInterval], n: int) -> dict[str, Any]:
    """Run ``interval()`` and describe its result, or why the statistic is undefined."""
    try:
        ci = interval()
    except UndefinedStatisticError as exc:
        return undefined(str(exc), n)
    return {"value": ci.estimate, "low": ci.low, "high": ci.high, "n": n, "confidence": ci.confidence,
            "undefined_resamples": ci.n_undefined}


def pairable(data: np.ndarray) -> np.ndarray:
    """``(units,)`` True where a ``(raters, units)`` array has two or more values."""
    return (~np.isnan(data)).sum(axis=0) >= 2 if data.size else np.zeros(data.shape[-1], dtype=bool)


def alpha_result(data: np.ndarray, level: str, options: ReportOptions) -> dict[str, Any]:
    """Krippendorff's alpha of ``(raters, units)`` data with its bootstrap interval."""
    n = int(pairable(data).sum())
    if n == 0:
        return undefined("no item has two or more values", 0)
    return with_interval(lambda: krippendorff_alpha_ci(data, level, n_resamples=options.n_resamples,
                                                       seed=options.seed, confidence=options.confidence), n)


def fleiss_subset(data: np.ndarray, categories: Sequence[float]) -> tuple[int, np.ndarray]:
    """The most common number ``m >= 2`` of raters per unit (ties: the larger) and the
    ``(units, K)`` counts table of the units rated exactly ``m`` times (``m = 0``: none)."""
    raters = (~np.isnan(data)).sum(axis=0) if data.size else np.zeros(0, dtype=np.int64)
    if not np.any(raters >= 2):
        return 0, np.zeros((0, len(categories)))
    sizes = np.bincount(raters[raters >= 2])
    m = int(len(sizes) - 1 - np.argmax(sizes[::-1]))
    return m, counts_table(data[:, raters == m], categories=categories)[0]


def _percentile_result(estimate: float, draws: np.ndarray, n: int, options: ReportOptions) -> dict[str, Any]:
    defined = draws[np.isfinite(draws)]
    if len(defined) == 0:
        return undefined("the statistic is undefined in every bootstrap resample", n)
    tail = (1.0 - options.confidence) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return {"value": float(estimate), "low": float(low), "high": float(high), "n": n, "confidence": options.confidence,
            "undefined_resamples": int(len(draws) - len(defined))}


def _chance_corrected(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """``(po - pe) / (1 - pe)``, NaN where ``pe`` is 1 (one category only: undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isclose(expected, 1.0, rtol=0.0, atol=1e-12), np.nan, (observed - expected) / (1.0 - expected))


def kappa_result(labels_a: np.ndarray, labels_b: np.ndarray, categories: Sequence[float],
                 options: ReportOptions) -> dict[str, Any]:
    """Cohen's kappa with a percentile bootstrap interval over items.

    Resampling ``n`` items with replacement draws the confusion table from
    ``Multinomial(n, table / n)``, so each resample costs ``O(K^2)`` whatever ``n`` is.
    """
    n = len(labels_a)
    try:
        estimate = cohen_kappa(labels_a, labels_b, categories)
    except UndefinedStatisticError as exc:
        return undefined(str(exc), n)
    table = confusion_matrix(labels_a, labels_b, categories).astype(np.float64)
    k = len(table)
    rng = np.random.default_rng(options.seed)
    draws = rng.multinomial(n, table.ravel() / n, size=options.n_resamples).reshape(-1, k, k) / n
    observed = np.trace(draws, axis1=1, axis2=2)
    expected = np.einsum("bi,bi->b", draws.sum(axis=2), draws.sum(axis=1))
    return _percentile_result(estimate, _chance_corrected(observed, expected), n, options)


def fleiss_result(data: np.ndarray, categories: Sequence[float], options: ReportOptions) -> dict[str, Any]:
    """Fleiss' kappa on the units with the most common rater number, with a percentile
    bootstrap interval over those units.

    Units with the same counts row are interchangeable, so a resample is a multinomial
    draw over the distinct rows (at most ``C(m + K - 1, K - 1)`` of them).
    """
    m, table = fleiss_subset(data, categories)
    if m == 0:
        return {**undefined("no item has two or more ratings", 0), "raters": 0}
    n = len(table)
    try:
        estimate = fleiss_kappa(table)
    except UndefinedStatisticError as exc:
        return {**undefined(str(exc), n), "raters": m}
    patterns, counts = np.unique(table, axis=0, return_counts=True)
    rng = np.random.default_rng(options.seed)
    weights = rng.multinomial(n, counts / n, size=options.n_resamples) / n  # (B, U) shares of units
    agreement = (patterns * (patterns - 1)).sum(axis=1) / (m * (m - 1))  # (U,)
    shares = weights @ patterns / m  # (B, K) category proportions
    draws = _chance_corrected(weights @ agreement, (shares**2).sum(axis=1))
    return {**_percentile_result(estimate, draws, n, options), "raters": m}
