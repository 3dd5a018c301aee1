"""Merging the annotators' B-A-S triplets into the candidates stored for review (no Django).

Duplicates are found with :func:`core.triplets.triplet_similarity` (token-set Jaccard of
the phrases), the measure the annotators' agreement uses too.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.triplets import PhraseTriplet, triplet_similarity
from ml.stages.types import AnnotatorResult, CalibrationResult


def merge_triplets(
    results: Sequence[AnnotatorResult],
    calibration: CalibrationResult,
    *,
    duplicate_threshold: float = 0.6,
    max_triplets: int | None = None,
) -> tuple[PhraseTriplet, ...]:
    """The candidate triplets stored for review: the union of the annotators' triplets.

    Annotators are taken in order of the calibrated probability they gave the
    merged label (most convinced first); a triplet whose similarity to an
    already kept one is at least ``duplicate_threshold`` is dropped as a
    duplicate. Phrases are kept exactly as the annotators wrote them.
    """
    def support(result: AnnotatorResult) -> float:
        dist = calibration.calibrated.get(result.model, result.distribution)
        return float(dist.get(calibration.label, 0.0))

    ordered = sorted(results, key=support, reverse=True)
    kept: list[PhraseTriplet] = []
    for result in ordered:
        for triplet in result.triplets:
            if all(triplet_similarity(triplet, k) < duplicate_threshold for k in kept):
                kept.append(triplet)
    if max_triplets is not None:
        kept = kept[:max_triplets]
    return tuple(kept)
