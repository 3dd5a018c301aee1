"""CES calibration: pure numpy functions (no Django).

Temperature scaling works on log-probabilities: an annotator's distribution
``p`` becomes ``softmax(log(p + eps) / T)``. ``T > 1`` flattens an
over-confident annotator, ``T < 1`` sharpens an under-confident one, ``T = 1``
is the identity (up to ``eps``). Temperatures are fitted per model by the
recalibration step from logged human decisions. The annotators' agreement on the
calibrated distributions is :func:`core.priority.annotator_agreement` (triplets paired by
:mod:`core.alignment`, by meaning with the phrases' stored embeddings).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from core.alignment import NO_VECTORS, PhraseVectors
from core.distributions import argmax_label, as_mapping, as_vector
from core.priority import annotator_agreement
from ml.stages.types import AnnotatorResult, CalibrationResult

DEFAULT_EPSILON = 1e-6


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


def calibrate_and_merge(
    results: Sequence[AnnotatorResult],
    temperatures: Mapping[str, float],
    *,
    classifier: Mapping[str, float] | None = None,
    classifier_weight: float = 0.0,
    epsilon: float = DEFAULT_EPSILON,
    vectors: PhraseVectors | None = None,
) -> CalibrationResult:
    """Scale each annotator by its temperature (1.0 when none is known) and merge.

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
        agreement=annotator_agreement([(r.triplets, calibrated[r.model]) for r in results], vectors or NO_VECTORS),
        classifier=dict(classifier) if classifier is not None else None,
    )
