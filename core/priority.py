"""The review-queue priority rule: how much the model annotators agree, and where an image
stands in the queue (no Django).

The pipeline (``ml.stages.pipeline.route``) and the importer (``annotations.importers.routing``)
both order the queue with :func:`queue_priority`; the lowest priority is reviewed first.
Its inputs: the label's (calibrated) confidence, the annotators' agreement score, and the
critic's verdict: an item the critic calls ``wrong`` (its label or any element) has its
priority multiplied by :data:`CRITIC_WRONG_FACTOR`, so it is reviewed sooner.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from core.alignment import MEANING, NO_VECTORS, WORDS, PhraseVectors, align_triplets
from core.distributions import argmax_label, js_distance
from core.vocabulary import EMOTIONS
from core.triplets import PhraseTriplet

CRITIC_VERDICTS = ("ok", "doubtful", "wrong")  # from best to worst
CRITIC_WRONG_FACTOR = 0.5


@dataclass(frozen=True)
class AnnotatorAgreement:
    """How much the two annotators agree (1 = identical)."""

    label_match: bool
    distribution_distance: float  # Jensen-Shannon distance, base 2, in [0, 1]
    triplet_overlap: float  # core.alignment.Alignment.overlap of the triplets, in [0, 1]
    triplets_paired_by: str = MEANING  # WORDS when some phrases had no stored embedding

    @property
    def score(self) -> float:
        """One number in [0, 1] used to order the review queue (low first)."""
        return (float(self.label_match) + (1.0 - self.distribution_distance) + self.triplet_overlap) / 3.0


def annotator_agreement(
    answers: Sequence[tuple[Sequence[PhraseTriplet], Mapping[str, float]]],
    vectors: PhraseVectors = NO_VECTORS,
    emotions: Sequence[str] = EMOTIONS,
) -> AnnotatorAgreement | None:
    """Agreement of two or more annotators' answers, each ``(triplets, distribution)``
    (the distribution calibrated or not, as the caller compares them); ``None`` for a
    single one. Triplets are paired by :mod:`core.alignment` with the phrases' stored
    embeddings ``vectors`` (by words where a phrase has none). The distributions are over
    ``emotions`` (the dataset's taxonomy's labels).

    With more than two, the label must match across all of them, and distance and
    overlap are averaged over all pairs.
    """
    if len(answers) < 2:
        return None
    labels = {argmax_label(distribution, emotions) for _, distribution in answers}
    pairs = list(itertools.combinations(answers, 2))
    distance = sum(js_distance(a[1], b[1], emotions) for a, b in pairs) / len(pairs)
    triplets = [[t.elements() for t in answer] for answer, _ in answers]
    alignments = [align_triplets(a, b, vectors) for a, b in itertools.combinations(triplets, 2)]
    overlap = sum(alignment.overlap for alignment in alignments) / len(alignments)
    return AnnotatorAgreement(label_match=len(labels) == 1, distribution_distance=distance, triplet_overlap=overlap,
                              triplets_paired_by=WORDS if any(a.fallback for a in alignments) else MEANING)


def critic_verdict(verdicts: Iterable[str | None]) -> str | None:
    """The worst of the critic's verdicts (label and elements): ``wrong`` over ``doubtful``
    over ``ok``; ``None`` without a known verdict."""
    known = [CRITIC_VERDICTS.index(v) for v in verdicts if v in CRITIC_VERDICTS]
    return CRITIC_VERDICTS[max(known)] if known else None


def stored_critic_verdict(critic: object) -> str | None:
    """The worst verdict of a critic as stored with an annotation
    (``{"label_verdict", "elements": [{"verdict"}]}``); ``None`` for anything else."""
    if not isinstance(critic, dict):
        return None
    elements = critic.get("elements")
    verdicts = [e.get("verdict") for e in elements if isinstance(e, dict)] if isinstance(elements, list) else []
    return critic_verdict([critic.get("label_verdict"), *verdicts])


def queue_priority(confidence: float | None, agreement: float | None, critic: str | None = None) -> float | None:
    """Mean of the annotators' agreement score and the label's confidence; the confidence
    alone with one annotator (no agreement), the agreement alone without a confidence;
    ``None`` with neither. Times :data:`CRITIC_WRONG_FACTOR` when the critic's worst verdict
    (:func:`critic_verdict`) is ``wrong``. Low goes first."""
    if confidence is None:
        priority = agreement
    else:
        priority = confidence if agreement is None else (agreement + confidence) / 2
    if priority is not None and critic == "wrong":
        priority *= CRITIC_WRONG_FACTOR
    return priority
