"""CES calibration and annotator agreement: pure numpy functions (no Django).

Temperature scaling works on log-probabilities: an annotator's distribution
``p`` becomes ``softmax(log(p + eps) / T)``. ``T > 1`` flattens an
over-confident annotator, ``T < 1`` sharpens an under-confident one, ``T = 1``
is the identity (up to ``eps``). Temperatures are fitted per model by the
recalibration step from logged human decisions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from ml.stages.triplets import triplet_overlap
from ml.stages.types import EMOTIONS, AnnotatorAgreement, AnnotatorResult, CalibrationResult

DEFAULT_EPSILON = 1e-6


def as_vector(distribution: Mapping[str, float]) -> np.ndarray:
    """A distribution as a float64 vector in :data:`EMOTIONS` order."""
    return np.array([float(distribution[e]) for e in EMOTIONS], dtype=np.float64)


def as_mapping(vector: np.ndarray) -> dict[str, float]:
    return {e: float(v) for e, v in zip(EMOTIONS, vector, strict=True)}


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z)
    return e / e.sum()


def temperature_scale(
    distribution: Mapping[str, float], temperature: float, *, epsilon: float = DEFAULT_EPSILON
) -> dict[str, float]:
    """``softmax(log(p + epsilon) / temperature)``; ``temperature`` must be finite and > 0."""
    if not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    logits = np.log(as_vector(distribution) + epsilon)
    return as_mapping(softmax(logits / temperature))


def js_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon distance with base-2 logarithms, in [0, 1]."""
    a, b = as_vector(p), as_vector(q)
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    divergence = max(0.0, (kl(a) + kl(b)) / 2)
    return min(1.0, math.sqrt(divergence))


def argmax_label(distribution: Mapping[str, float]) -> str:
    """The most probable emotion; ties go to the first in :data:`EMOTIONS` order."""
    return EMOTIONS[int(np.argmax(as_vector(distribution)))]


def annotator_agreement(
    results: Sequence[AnnotatorResult], calibrated: Mapping[str, Mapping[str, float]]
) -> AnnotatorAgreement | None:
    """Agreement of two or more annotators; ``None`` for a single one.

    With more than two, the label must match across all of them, and distance and
    overlap are averaged over all pairs.
    """
    if len(results) < 2:
        return None
    labels = {argmax_label(calibrated[r.model]) for r in results}
    pairs = list(itertools.combinations(results, 2))
    distance = sum(js_distance(calibrated[a.model], calibrated[b.model]) for a, b in pairs) / len(pairs)
    overlap = sum(triplet_overlap(a.triplets, b.triplets) for a, b in pairs) / len(pairs)
    return AnnotatorAgreement(label_match=len(labels) == 1, distribution_distance=distance, triplet_overlap=overlap)


def calibrate_and_merge(
    results: Sequence[AnnotatorResult],
    temperatures: Mapping[str, float],
    *,
    classifier: Mapping[str, float] | None = None,
    classifier_weight: float = 0.0,
    epsilon: float = DEFAULT_EPSILON,
) -> CalibrationResult:
    """Scale each annotator by its temperature (1.0 when none is known) and merge.

    The merged distribution is the mean of the calibrated ones; with a
    classifier distribution it becomes ``(1 - w) * mean + w * classifier``.
    """
    if not results:
        raise ValueError("calibration needs at least one annotator result")
    names = [r.model for r in results]
    if len(set(names)) != len(names):
        raise ValueError(f"annotator names must be distinct, got {names}")
    if not 0.0 <= classifier_weight <= 1.0:
        raise ValueError(f"classifier_weight must be in [0, 1], got {classifier_weight}")
    raw = {r.model: dict(r.distribution) for r in results}
    calibrated = {r.model: temperature_scale(r.distribution, temperatures.get(r.model, 1.0), epsilon=epsilon) for r in results}
    merged = np.mean([as_vector(d) for d in calibrated.values()], axis=0)
    if classifier is not None:
        merged = (1.0 - classifier_weight) * merged + classifier_weight * as_vector(classifier)
    merged = merged / merged.sum()
    merged_map = as_mapping(merged)
    label = argmax_label(merged_map)
    return CalibrationResult(
        raw=raw,
        calibrated=calibrated,
        merged=merged_map,
        label=label,
        confidence=float(merged_map[label]),
        agreement=annotator_agreement(results, calibrated),
        classifier=dict(classifier) if classifier is not None else None,
    )
