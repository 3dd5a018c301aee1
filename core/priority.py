"""The review-queue priority rule: how much the model annotators agree, and where an image
stands in the queue (no Django).

The pipeline (``ml.stages.pipeline.route``) and the importer (``annotations.importers.routing``)
both order the queue with :func:`queue_priority`; the lowest priority is reviewed first.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.distributions import argmax_label, js_distance
from core.triplets import PhraseTriplet, triplet_overlap


@dataclass(frozen=True)
class AnnotatorAgreement:
    """How much the two annotators agree (1 = identical)."""

    label_match: bool
    distribution_distance: float  # Jensen-Shannon distance, base 2, in [0, 1]
    triplet_overlap: float  # token-set Jaccard of matched triplet phrases, in [0, 1]

    @property
    def score(self) -> float:
        """One number in [0, 1] used to order the review queue (low first)."""
        return (float(self.label_match) + (1.0 - self.distribution_distance) + self.triplet_overlap) / 3.0


def annotator_agreement(
    answers: Sequence[tuple[Sequence[PhraseTriplet], Mapping[str, float]]],
) -> AnnotatorAgreement | None:
    """Agreement of two or more annotators' answers, each ``(triplets, distribution)``
    (the distribution calibrated or not, as the caller compares them); ``None`` for a
    single one.

    With more than two, the label must match across all of them, and distance and
    overlap are averaged over all pairs.
    """
    if len(answers) < 2:
        return None
    labels = {argmax_label(distribution) for _, distribution in answers}
    pairs = list(itertools.combinations(answers, 2))
    distance = sum(js_distance(a[1], b[1]) for a, b in pairs) / len(pairs)
    overlap = sum(triplet_overlap(a[0], b[0]) for a, b in pairs) / len(pairs)
    return AnnotatorAgreement(label_match=len(labels) == 1, distribution_distance=distance, triplet_overlap=overlap)


def queue_priority(confidence: float | None, agreement: float | None) -> float | None:
    """Mean of the annotators' agreement score and the label's confidence; the confidence
    alone with one annotator (no agreement), the agreement alone without a confidence;
    ``None`` with neither. Low goes first."""
    if confidence is None:
        return agreement
    return confidence if agreement is None else (agreement + confidence) / 2
