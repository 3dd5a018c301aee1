"""Phrase similarity between B-A-S triplets: agreement and merging (no Django).

Similarity is the token-set Jaccard index of two phrases after lower-casing and
dropping a few function words, so "dark clouds" and "the dark clouds" match.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ml.stages.types import ROLES, AnnotatorResult, CalibrationResult, PhraseTriplet

_TOKEN = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset({"a", "an", "the", "of", "with", "and", "in", "on", "at", "to", "is", "are"})


def tokens(phrase: str) -> frozenset[str]:
    words = _TOKEN.findall(phrase.lower())
    kept = frozenset(w for w in words if w not in _STOPWORDS)
    return kept or frozenset(words)


def phrase_similarity(a: str, b: str) -> float:
    """Token-set Jaccard index in [0, 1]; two empty phrases count as identical."""
    ta, tb = tokens(a), tokens(b)
    if not ta and not tb:
        return 1.0
    return len(ta & tb) / len(ta | tb)


def triplet_similarity(a: PhraseTriplet, b: PhraseTriplet) -> float:
    """Mean phrase similarity over the three roles."""
    pa, pb = a.phrases(), b.phrases()
    return sum(phrase_similarity(pa[r], pb[r]) for r in ROLES) / len(ROLES)


def _greedy_matches(
    a: Sequence[PhraseTriplet], b: Sequence[PhraseTriplet]
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, similarity), each index used once, best pairs first."""
    pairs = sorted(
        ((triplet_similarity(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)),
        key=lambda p: (-p[0], p[1], p[2]),
    )
    used_a: set[int] = set()
    used_b: set[int] = set()
    matches = []
    for sim, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        matches.append((i, j, sim))
    return matches


def triplet_overlap(a: Sequence[PhraseTriplet], b: Sequence[PhraseTriplet]) -> float:
    """How much two annotators' triplet sets overlap, in [0, 1].

    Triplets are matched one-to-one (greedily, most similar first); the matched
    similarities are summed and divided by the size of the larger set, so an
    unmatched extra triplet lowers the overlap.
    """
    if not a or not b:
        return 0.0
    total = sum(sim for _, _, sim in _greedy_matches(a, b))
    return total / max(len(a), len(b))


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
