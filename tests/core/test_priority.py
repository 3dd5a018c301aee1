"""The review-queue priority rule and the annotators' agreement (core.priority)."""

import pytest

from core.alignment import PhraseVectors
from core.priority import (
    CRITIC_WRONG_FACTOR,
    AnnotatorAgreement,
    annotator_agreement,
    critic_verdict,
    queue_priority,
    stored_critic_verdict,
)
from core.triplets import PhraseTriplet
from core.vocabulary import EMOTIONS

T1 = PhraseTriplet("stormy beach at dusk", "dark heavy clouds", "lone fisherman")
T2 = PhraseTriplet("city street", "neon lights", "crowd")


def peaked(label: str, p: float) -> dict[str, float]:
    rest = (1.0 - p) / (len(EMOTIONS) - 1)
    return {e: (p if e == label else rest) for e in EMOTIONS}


def one_hot(label: str) -> dict[str, float]:
    return {e: float(e == label) for e in EMOTIONS}


def test_priority_is_the_mean_of_agreement_and_confidence():
    assert queue_priority(0.7, 1.0) == pytest.approx(0.85)  # two agreeing annotators, confidence 0.7
    assert queue_priority(0.9, 0.3) == pytest.approx(0.6)


def test_one_annotator_is_ordered_by_confidence_alone():
    assert queue_priority(0.3, None) == 0.3
    assert queue_priority(0.9, None) == 0.9


def test_without_a_confidence_the_agreement_orders_and_with_neither_there_is_no_priority():
    assert queue_priority(None, 0.4) == 0.4
    assert queue_priority(None, None) is None


def test_a_critic_wrong_verdict_raises_the_priority_and_other_verdicts_do_not():
    assert CRITIC_WRONG_FACTOR == 0.5
    assert queue_priority(0.7, 1.0, "wrong") == pytest.approx(0.425)  # reviewed before the same item without it
    assert queue_priority(0.7, 1.0, "doubtful") == queue_priority(0.7, 1.0, "ok") == queue_priority(0.7, 1.0) == pytest.approx(0.85)
    assert queue_priority(0.3, None, "wrong") == pytest.approx(0.15)
    assert queue_priority(None, None, "wrong") is None


def test_the_critic_verdict_is_the_worst_of_label_and_elements():
    assert critic_verdict(["ok", "ok", "wrong", "doubtful"]) == "wrong"
    assert critic_verdict(["ok", "doubtful", None]) == "doubtful"
    assert critic_verdict(["ok"]) == "ok"
    assert critic_verdict([None, "unsure", {"x": 1}]) is None
    assert critic_verdict([]) is None


def test_disagreement_goes_first():
    agreeing = annotator_agreement([((T1,), peaked("fear", 0.7)), ((T1,), peaked("fear", 0.7))])
    disagreeing = annotator_agreement([((T1,), peaked("fear", 0.7)), ((T2,), peaked("awe", 0.7))])
    assert agreeing.score == pytest.approx(1.0)
    assert queue_priority(0.7, disagreeing.score) < queue_priority(0.7, agreeing.score)


def test_agreement_of_identical_answers():
    agreement = annotator_agreement([((T1, T2), peaked("fear", 0.6)), ((T2, T1), peaked("fear", 0.6))])
    assert agreement == AnnotatorAgreement(label_match=True, distribution_distance=0.0, triplet_overlap=1.0)
    assert agreement.score == 1.0


def test_agreement_parts_for_known_answers():
    half = annotator_agreement([((T1, T2), one_hot("fear")), ((T1,), one_hot("fear"))])
    assert half.label_match and half.distribution_distance == 0.0
    assert half.triplet_overlap == pytest.approx(0.5)  # one of two triplets matched exactly
    assert half.score == pytest.approx(2.5 / 3)
    apart = annotator_agreement([((T1,), one_hot("fear")), ((T2,), one_hot("awe"))])
    assert not apart.label_match
    assert apart.distribution_distance == pytest.approx(1.0) and apart.triplet_overlap == 0.0
    assert apart.score == 0.0


def test_three_annotators_must_all_share_the_label_and_pairs_are_averaged():
    agreement = annotator_agreement(
        [((T1,), one_hot("fear")), ((T1,), one_hot("fear")), ((T2,), one_hot("awe"))]
    )
    assert not agreement.label_match
    assert agreement.distribution_distance == pytest.approx(2 / 3)
    assert agreement.triplet_overlap == pytest.approx(1 / 3)


def test_a_single_annotator_has_no_agreement():
    assert annotator_agreement([((T1,), one_hot("fear"))]) is None
    assert annotator_agreement([]) is None


def test_a_stored_critic_gives_its_worst_verdict():
    stored = {"label_verdict": "ok", "elements": [{"verdict": "doubtful"}, {"verdict": "wrong"}, "junk"]}
    assert stored_critic_verdict(stored) == "wrong"
    assert stored_critic_verdict({"label_verdict": "doubtful", "elements": "not a list"}) == "doubtful"
    assert stored_critic_verdict(None) is None
    assert stored_critic_verdict(["wrong"]) is None


def test_paraphrasing_annotators_agree_by_meaning_with_stored_embeddings():
    """The queue learns from meaning: the same scene in other words counts as agreement once
    the phrases' embeddings are stored; without them the triplets do not pair (by words)."""
    para = PhraseTriplet("shore at twilight", "ominous thick sky", "solitary angler")
    axis = {"background": [1.0, 0, 0], "attribute": [0, 1.0, 0], "subject": [0, 0, 1.0]}
    vectors = PhraseVectors({p: axis[role] for t in (T1, para) for role, p in t.phrases().items()})
    answers = [((T1,), peaked("fear", 0.7)), ((para,), peaked("fear", 0.7))]
    by_words = annotator_agreement(answers)
    by_meaning = annotator_agreement(answers, vectors)
    assert by_words.triplet_overlap == 0.0 and by_words.triplets_paired_by == "words"
    assert by_meaning.triplet_overlap == pytest.approx(1.0) and by_meaning.triplets_paired_by == "meaning"
    assert queue_priority(0.7, by_meaning.score) > queue_priority(0.7, by_words.score)
