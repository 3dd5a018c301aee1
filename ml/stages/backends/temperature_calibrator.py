"""Calibrator backend: per-model temperature scaling, then the mean of the annotators,
optionally blended with an emotion classifier's distribution."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.alignment import PhraseVectors
from core.vocabulary import MIKELS
from ml.stages.calibration import DEFAULT_EPSILON, calibrate_and_merge
from ml.stages.types import AnnotatorResult, CalibrationResult, ImageInput, StageError


class TemperatureCalibrator:
    """Options: ``classifier_weight`` (0..1, weight of the emotion classifier's
    distribution in the merge when one is configured; default 0.3) and ``epsilon``
    (added before the log; default 1e-6)."""

    def __init__(self, *, classifier_weight: float = 0.3, epsilon: float = DEFAULT_EPSILON):
        if not 0.0 <= classifier_weight <= 1.0:
            raise ValueError(f"classifier_weight must be in [0, 1], got {classifier_weight}")
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
        self.classifier_weight = classifier_weight
        self.epsilon = epsilon

    def calibrate(
        self,
        image: ImageInput,
        results: Sequence[AnnotatorResult],
        temperatures: Mapping[str, float],
        classifier_distribution: Mapping[str, float] | None = None,
        vectors: PhraseVectors | None = None,
    ) -> CalibrationResult:
        try:
            return calibrate_and_merge(
                results,
                temperatures,
                classifier=classifier_distribution,
                classifier_weight=self.classifier_weight,
                epsilon=self.epsilon,
                vectors=vectors,
                labels=getattr(image, "taxonomy", MIKELS).labels,  # no image (a direct caller): Mikels
            )
        except ValueError as exc:
            raise StageError(f"calibration failed: {exc}") from exc
