"""Merging the annotators' B-A-S triplets into the candidates stored for review (no Django).

Duplicates are found with :func:`core.alignment.triplet_similarity`, the rule that pairs
triplets everywhere else (role by role; phrase embeddings where stored, words otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.alignment import NO_VECTORS, PhraseVectors, triplet_similarity
from core.triplets import PhraseTriplet
from ml.stages.types import AnnotatorResult, CalibrationResult


def merge_triplets(
    results: Sequence[AnnotatorResult],
    calibration: CalibrationResult,
    *,
    duplicate_threshold: float = 0.75,
    max_triplets: int | None = None,
    vectors: PhraseVectors | None = None,
) -> tuple[PhraseTriplet, ...]:
    """The candidate triplets stored for review: the union of the annotators' triplets.

    Annotators are taken in order of the calibrated probability they gave the
    merged label (most convinced first); a triplet whose similarity to an
    already kept one is at least ``duplicate_threshold`` is dropped as a
    duplicate (a stricter bar than pairing, :data:`core.alignment.PAIR_MIN_SIMILARITY`:
    two answers' corresponding triplets both stay unless they say nearly the same).
    Phrases are kept exactly as the annotators wrote them.
    """
    vectors = vectors or NO_VECTORS

    def support(result: AnnotatorResult) -> float:
        dist = calibration.calibrated.get(result.model, result.distribution)
        return float(dist.get(calibration.label, 0.0))

    ordered = sorted(results, key=support, reverse=True)
    kept: list[PhraseTriplet] = []
    for result in ordered:
        for triplet in result.triplets:
            if all(triplet_similarity(triplet.elements(), k.elements(), vectors) < duplicate_threshold for k in kept):
                kept.append(triplet)
    if max_triplets is not None:
        kept = kept[:max_triplets]
    return tuple(kept)
