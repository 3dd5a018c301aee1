"""Phrase triplets and their overlap (core.triplets); emotion distributions (core.distributions)."""

import numpy as np
import pytest

from core.distributions import argmax_label, as_mapping, as_vector, js_distance
from core.triplets import PhraseTriplet, phrase_similarity, tokens, triplet_overlap, triplet_similarity
from core.vocabulary import EMOTIONS, NEGATIVE_EMOTIONS, POSITIVE_EMOTIONS, ROLES


def test_vocabulary():
    assert len(EMOTIONS) == 8 and POSITIVE_EMOTIONS + NEGATIVE_EMOTIONS == EMOTIONS
    assert POSITIVE_EMOTIONS == ("amusement", "awe", "contentment", "excitement")
    assert ROLES == ("background", "attribute", "subject")


def test_phrases_are_compared_as_token_sets():
    assert tokens("The dark clouds, at dusk") == frozenset({"dark", "clouds", "dusk"})
    assert tokens("the of") == frozenset({"the", "of"})  # nothing but function words: keep them
    assert phrase_similarity("The dark clouds", "dark clouds") == 1.0
    assert phrase_similarity("dark clouds", "dark sky") == pytest.approx(1 / 3)
    assert phrase_similarity("", "") == 1.0


def test_triplet_similarity_and_overlap():
    a = PhraseTriplet("stormy beach", "dark clouds", "fisherman")
    b = PhraseTriplet("stormy beach", "dark sky", "a fisherman")
    assert a.phrases() == {"background": "stormy beach", "attribute": "dark clouds", "subject": "fisherman"}
    assert triplet_similarity(a, b) == pytest.approx((1 + 1 / 3 + 1) / 3)
    assert triplet_overlap([a], [a, b]) == pytest.approx(0.5)
    assert triplet_overlap([a, b], [b, a]) == pytest.approx(1.0)
    assert triplet_overlap([], [a]) == 0.0


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
