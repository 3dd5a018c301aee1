"""CES calibration: pure numpy functions (no Django).

Temperature scaling works on log-probabilities: an annotator's distribution
``p`` becomes ``softmax(log(p + eps) / T)``. ``T > 1`` flattens an
over-confident annotator, ``T < 1`` sharpens an under-confident one, ``T = 1``
is the identity (up to ``eps``). Temperatures are fitted per model by the
recalibration step from logged human decisions (:func:`fit_temperature`), which also
measures the Expected Calibration Error before and after (:func:`reliability_diagram`).
The annotators' agreement on the calibrated distributions is
:func:`core.priority.annotator_agreement` (triplets paired by :mod:`core.alignment`, by
meaning with the phrases' stored embeddings).

Shapes and conventions of the fitting and reliability statistics
- ``probs``: ``(n, k)`` float array, each row a distribution over ``k`` classes (our
  annotators give 8-way CES distributions). Rows must sum to 1 within ``1e-3``.
- ``logits``: ``(n, k)`` float array; ``softmax(logits)`` gives the probabilities.
- ``labels``: ``(n,)`` int array of true class indices in ``[0, k)``.
- Temperature ``T > 0`` scales logits: ``softmax(logits / T)``.

Distributions become logits as ``log(p + epsilon)`` (:func:`probs_to_logits`), the same
convention and default epsilon as :func:`temperature_scale`, so a temperature fitted on
them gives the same calibrated distribution in the pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.alignment import NO_VECTORS, PhraseVectors
from core.distributions import argmax_label, as_mapping, as_vector
from core.errors import UndefinedStatisticError
from core.priority import annotator_agreement
from core.vocabulary import EMOTIONS
from ml.stages.types import AnnotatorResult, CalibrationResult

DEFAULT_EPSILON = 1e-6
TEMPERATURE_BOUNDS = (0.01, 100.0)


def softmax(logits: Any) -> np.ndarray:
    """Row-wise softmax of ``(n, k)`` logits, computed stably (max subtracted)."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def temperature_scale(
    distribution: Mapping[str, float], temperature: float, *, epsilon: float = DEFAULT_EPSILON,
    labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """``softmax(log(p + epsilon) / temperature)`` over ``labels`` (default: the distribution's
    own keys, whatever the taxonomy); ``temperature`` must be finite and > 0."""
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    labels = tuple(distribution) if labels is None else labels
    logits = np.log(as_vector(distribution, labels) + epsilon)
    return as_mapping(softmax(logits / temperature), labels)


def calibrate_and_merge(
    results: Sequence[AnnotatorResult],
    temperatures: Mapping[str, float],
    *,
    classifier: Mapping[str, float] | None = None,
    classifier_weight: float = 0.0,
    epsilon: float = DEFAULT_EPSILON,
    vectors: PhraseVectors | None = None,
    labels: Sequence[str] = EMOTIONS,
) -> CalibrationResult:
    """Scale each annotator by its temperature (1.0 when none is known) and merge, over
    ``labels`` (the dataset's taxonomy; ties of the label go to the first in this order).

    The merged distribution is the mean of the calibrated ones; with a
    classifier distribution it becomes ``(1 - w) * mean + w * classifier``.
    ``vectors``: stored embeddings of the annotators' phrases for their agreement.
    """
    if not results:
        raise ValueError("calibration needs at least one annotator result")
    names = [r.model for r in results]
    if len(set(names)) != len(names):
        raise ValueError(f"annotator names must be distinct, got {names}")
    if not 0.0 <= classifier_weight <= 1.0:
        raise ValueError(f"classifier_weight must be in [0, 1], got {classifier_weight}")
    raw = {r.model: dict(r.distribution) for r in results}
    for r in results:
        if set(r.distribution) != set(labels):
            raise ValueError(f"{r.model}'s distribution is not over the labels {', '.join(labels)}")
    if classifier is not None and set(classifier) != set(labels):
        raise ValueError(f"the classifier's distribution is not over the labels {', '.join(labels)}")
    calibrated = {r.model: temperature_scale(r.distribution, temperatures.get(r.model, 1.0), epsilon=epsilon, labels=labels)
                  for r in results}
    merged = np.mean([as_vector(d, labels) for d in calibrated.values()], axis=0)
    if classifier is not None:
        merged = (1.0 - classifier_weight) * merged + classifier_weight * as_vector(classifier, labels)
    merged = merged / merged.sum()
    merged_map = as_mapping(merged, labels)
    label = argmax_label(merged_map, labels)
    return CalibrationResult(
        raw=raw,
        calibrated=calibrated,
        merged=merged_map,
        label=label,
        confidence=float(merged_map[label]),
        agreement=annotator_agreement([(r.triplets, calibrated[r.model]) for r in results], vectors or NO_VECTORS, labels),
        classifier=dict(classifier) if classifier is not None else None,
    )


# ------------------------------------------------ fitting a temperature, reliability


def _as_labels(labels: Any, n: int, k: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be {n} integer class indices, got shape {y.shape} dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in [0, {k}), got {y.min()}..{y.max()}")
    return y


def _as_matrix(values: Any, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"{name} must be 2-D (n, classes >= 2), got shape {x.shape}")
    if x.shape[0] == 0:
        raise UndefinedStatisticError(f"{name} is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds non-finite values")
    return x


def _as_probs(probs: Any) -> np.ndarray:
    p = _as_matrix(probs, "probs")
    if np.any(p < 0) or np.any(np.abs(p.sum(axis=1) - 1.0) > 1e-3):
        raise ValueError("probs rows must be non-negative and sum to 1 (within 1e-3)")
    return p


def _check_temperature(temperature: float) -> float:
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return float(temperature)


def probs_to_logits(probs: Any, *, epsilon: float = DEFAULT_EPSILON) -> np.ndarray:
    """``(n, k)`` logits ``log(p + epsilon)`` of distributions; zeros stay finite."""
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    return np.log(_as_probs(probs) + epsilon)


def apply_temperature(logits: Any, temperature: float) -> np.ndarray:
    """``(n, k)`` probabilities ``softmax(logits / T)``; for distributions pass ``probs_to_logits(p)``."""
    return softmax(_as_matrix(logits, "logits") / _check_temperature(temperature))


def negative_log_likelihood(logits: Any, labels: Any, temperature: float = 1.0) -> float:
    """Mean ``-log softmax(logits / T)[label]`` over the ``n`` rows."""
    z = _as_matrix(logits, "logits") / _check_temperature(temperature)
    y = _as_labels(labels, *z.shape)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def _nll_slope(z: np.ndarray, y: np.ndarray, beta: float) -> tuple[float, float]:
    """First and second derivative of the mean NLL of ``softmax(beta * z)`` in ``beta``.

    ``d/dbeta = mean(E_p[z] - z_y)``, ``d2/dbeta2 = mean(Var_p[z]) >= 0``: the NLL is
    convex in ``beta = 1/T``, so the slope's single root is the optimum.
    """
    p = softmax(beta * z)
    mean = (p * z).sum(axis=1)
    var = (p * z * z).sum(axis=1) - mean**2
    return float(np.mean(mean - z[np.arange(len(y)), y])), float(np.mean(np.maximum(var, 0.0)))


def fit_temperature(logits: Any, labels: Any, *, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """Temperature ``T`` in ``bounds`` minimising the NLL of ``softmax(logits / T)``.

    Safeguarded Newton on ``beta = 1/T`` (bisection whenever a step leaves the bracket).
    Raises :class:`UndefinedStatisticError` when the optimum lies beyond a bound: the NLL
    keeps falling as ``T`` grows (confidence carries no information about correctness) or
    as ``T`` shrinks (every row already ranks its label first: perfectly separated).
    For distributions, pass ``probs_to_logits(probs)``.
    """
    t_min, t_max = bounds
    if not 0 < t_min < t_max < np.inf:
        raise ValueError(f"bounds must satisfy 0 < low < high < inf, got {bounds}")
    z = _as_matrix(logits, "logits")
    y = _as_labels(labels, *z.shape)
    z = z - z.max(axis=1, keepdims=True)
    lo, hi = 1.0 / t_max, 1.0 / t_min
    if _nll_slope(z, y, lo)[0] >= 0:
        raise UndefinedStatisticError(f"NLL still falls at T = {t_max}: the confidences carry no information")
    if _nll_slope(z, y, hi)[0] <= 0:
        raise UndefinedStatisticError(f"NLL still falls at T = {t_min}: the labels are perfectly separated")
    beta = 1.0
    if not lo < beta < hi:
        beta = (lo + hi) / 2.0
    for _ in range(200):
        slope, curvature = _nll_slope(z, y, beta)
        lo, hi = (beta, hi) if slope < 0 else (lo, beta)
        step = beta - slope / curvature if curvature > 0 else np.nan
        beta_next = step if lo < step < hi else (lo + hi) / 2.0
        if abs(beta_next - beta) <= 1e-12 * beta:
            return 1.0 / beta_next
        beta = beta_next
    return 1.0 / beta


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin calibration of top-1 confidence, bins ``(edges[b], edges[b+1]]`` (Guo et al. 2017).

    ``counts (B,)`` samples per bin; ``accuracy`` and ``confidence (B,)`` are bin means,
    ``NaN`` for an empty bin. ``ece`` is the count-weighted mean gap.
    """

    edges: np.ndarray
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def ece(self) -> float:
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(self.counts[filled] @ gaps / self.counts.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists, with ``None`` for the means of empty bins."""
        def listed(a: np.ndarray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in a]

        return {
            "edges": self.edges.tolist(),
            "counts": self.counts.tolist(),
            "accuracy": listed(self.accuracy),
            "confidence": listed(self.confidence),
            "ece": self.ece,
        }


def reliability_diagram(probs: Any, labels: Any, n_bins: int = 15) -> ReliabilityDiagram:
    """Bin the top-1 confidence of ``probs (n, k)`` into ``n_bins`` equal-width bins on ``[0, 1]``.

    The prediction is the argmax (ties: lowest index); it is correct when it equals
    ``labels[i]``. A confidence of exactly 0 goes to the first bin.
    """
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    p = _as_probs(probs)
    y = _as_labels(labels, *p.shape)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / counts
        mean_conf = np.bincount(bins, weights=confidence, minlength=n_bins) / counts
    return ReliabilityDiagram(edges, counts, accuracy, mean_conf)


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """ECE of Guo et al. (2017): ``sum_b |B_b|/n * |acc(B_b) - conf(B_b)|`` over equal-width bins."""
    return reliability_diagram(probs, labels, n_bins).ece
