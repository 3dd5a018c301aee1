"""Phrase triplets (core.triplets); emotion distributions (core.distributions). How triplets
compare and pair is core.alignment (tests/core/test_alignment.py)."""

import numpy as np
import pytest

from core.distributions import argmax_label, as_mapping, as_vector, js_distance
from core.alignment import content_words, triplet_similarity, word_overlap
from core.triplets import PhraseTriplet
from core.vocabulary import EMOTIONS, NEGATIVE_EMOTIONS, POSITIVE_EMOTIONS, ROLES


def test_vocabulary():
    assert len(EMOTIONS) == 8 and POSITIVE_EMOTIONS + NEGATIVE_EMOTIONS == EMOTIONS
    assert POSITIVE_EMOTIONS == ("amusement", "awe", "contentment", "excitement")
    assert ROLES == ("background", "attribute", "subject")


def test_phrases_without_embeddings_are_compared_by_their_content_words():
    assert content_words("The dark clouds, at dusk") == frozenset({"dark", "clouds", "dusk"})
    assert content_words("the of") == frozenset({"the", "of"})  # nothing but function words: keep them
    assert word_overlap("The dark clouds", "dark clouds") == 1.0
    assert word_overlap("dark clouds", "dark sky") == pytest.approx(1 / 2)  # shared over the shorter phrase
    assert word_overlap("", "") == 0.0


def test_phrase_triplets_in_the_form_alignment_compares():
    a = PhraseTriplet("stormy beach", "dark clouds", "fisherman")
    b = PhraseTriplet("stormy beach", "dark sky", "a fisherman")
    assert a.phrases() == {"background": "stormy beach", "attribute": "dark clouds", "subject": "fisherman"}
    assert a.elements() == {"background": {"phrase": "stormy beach"}, "attribute": {"phrase": "dark clouds"},
                            "subject": {"phrase": "fisherman"}}
    assert PhraseTriplet("", "calm", "boat").elements() == {"attribute": {"phrase": "calm"}, "subject": {"phrase": "boat"}}
    # Role by role, the subject counting twice: background 1, attribute 1/2, subject 1.
    assert triplet_similarity(a.elements(), b.elements()) == pytest.approx((1 + 1 / 2 + 2 * 1) / 4)


def test_distributions_as_vectors():
    distribution = {e: i / 28 for i, e in enumerate(EMOTIONS)}
    vector = as_vector(distribution)
    assert vector.dtype == np.float64 and vector.tolist() == pytest.approx([i / 28 for i in range(8)])
    assert as_mapping(vector) == pytest.approx(distribution)
    assert argmax_label(distribution) == "sadness"
    assert argmax_label({e: 0.125 for e in EMOTIONS}) == "amusement"  # ties: the first


def test_js_distance_bounds():
    fear = {e: float(e == "fear") for e in EMOTIONS}
    awe = {e: float(e == "awe") for e in EMOTIONS}
    assert js_distance(fear, fear) == pytest.approx(0.0, abs=1e-9)
    assert js_distance(fear, awe) == pytest.approx(1.0)
    half = {e: 0.5 if e in ("fear", "awe") else 0.0 for e in EMOTIONS}
    assert js_distance(fear, half) == pytest.approx(np.sqrt(1 - 0.75 * np.log2(3) + 0.5))
