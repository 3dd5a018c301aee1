"""Pairing triplets by meaning (core.alignment): the optimal assignment, the role rule, IoU,
phrase embeddings and the lexical fallback, and saying which one paired a triplet."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from core.alignment import (
    MEANING,
    NO_VECTORS,
    PAIR_MIN_COSINE,
    SAME_MEANING_COSINE,
    WORDS,
    PhraseVectors,
    align_triplets,
    alignment_summary,
    compare_phrases,
    phrase_hash,
    phrase_key,
    same_meaning,
    triplet_phrases,
    triplet_similarity,
)
from tests.factories import rect_mask_rle


def subject(phrase: str, box: list[float] | None = None, **extra) -> dict:
    element = {"phrase": phrase, **extra}
    if box is not None:
        element["box"] = box
    return element


def keyed(pairs) -> list[tuple[str | None, str | None]]:
    return [((p.a or {}).get("key"), (p.b or {}).get("key")) for p in pairs]


def test_a_phrase_is_keyed_by_its_normalised_text():
    assert phrase_key("  Dark\tCLOUDS \n") == "dark clouds"
    assert phrase_key("Ｃａｆé") == phrase_key("café")  # NFKC: full-width letters are letters
    assert phrase_hash("Dark  clouds") == hashlib.sha256(b"dark clouds").hexdigest() == phrase_hash("dark clouds")


def test_the_optimal_assignment_pairs_more_than_greedy_best_first():
    """Greedy best-first takes a1-b1 (IoU 0.9) and leaves a2-b2 (IoU 0.4, below the pairing
    bar): one pair. The optimal assignment pairs a1-b2 (0.89) and a2-b1 (0.6): two pairs."""
    a = [{"key": "a1", "subject": subject("kite", [1, 0, 10, 10])}, {"key": "a2", "subject": subject("gull", [0, 0, 6, 10])}]
    b = [{"key": "b1", "subject": subject("buoy", [0, 0, 10, 10])}, {"key": "b2", "subject": subject("mast", [2, 0, 10, 10])}]
    weights = [[triplet_similarity(x, y) for y in b] for x in a]
    assert np.array(weights) == pytest.approx(np.array([[0.9, 8 / 9], [0.6, 0.4]]))
    greedy_first = max((w, i, j) for i, row in enumerate(weights) for j, w in enumerate(row))
    assert greedy_first[1:] == (0, 0) and weights[1][1] < 0.5  # what greedy would do: one pair

    alignment = align_triplets(a, b)

    assert keyed(alignment.pairs) == [("a1", "b2"), ("a2", "b1")]
    assert alignment.overlap == pytest.approx((8 / 9 + 0.6) / 2)


def test_elements_are_compared_role_by_role():
    """The same phrase in another role is another element: a harbour as background is not a
    harbour as subject, and triplets that share no role never pair."""
    a = [{"key": "a", "background": {"phrase": "harbour"}}]
    b = [{"key": "b", "subject": {"phrase": "harbour"}}]
    assert triplet_similarity(a[0], b[0]) == 0.0
    assert keyed(align_triplets(a, b).pairs) == [("a", None), (None, "b")]
    # Shared roles only: a triplet's extra role neither helps nor hurts.
    c = {"key": "c", "background": {"phrase": "harbour"}, "subject": {"phrase": "boat"}}
    assert triplet_similarity(a[0], c) == 1.0


def test_the_subject_counts_twice():
    a = {"background": {"phrase": "beach"}, "attribute": {"phrase": "calm"}, "subject": {"phrase": "dog"}}
    same_subject = {"background": {"phrase": "forest"}, "attribute": {"phrase": "tense"}, "subject": {"phrase": "dog"}}
    same_scene = {"background": {"phrase": "beach"}, "attribute": {"phrase": "calm"}, "subject": {"phrase": "kite"}}
    assert triplet_similarity(a, same_subject) == pytest.approx(2 / 4)
    assert triplet_similarity(a, same_scene) == pytest.approx(2 / 4)
    assert align_triplets([a], [same_subject, same_scene]).pairs[0].matched  # either pairs at the bar (0.5)


def test_iou_of_grounded_elements_pairs_differently_worded_triplets():
    """Boxes (or masks, where both have one) count where both elements are grounded: an
    element the person renamed but kept in place is the same element."""
    model = [{"key": "m", "subject": subject("small boat", [0, 0, 10, 10])}]
    renamed = [{"key": "h", "subject": subject("trawler", [0, 0, 10, 9])}]
    assert triplet_similarity(model[0], renamed[0]) == pytest.approx(0.9)
    assert keyed(align_triplets(model, renamed).pairs) == [("m", "h")]
    ungrounded = [{"key": "h", "subject": subject("trawler")}]
    assert keyed(align_triplets(model, ungrounded).pairs) == [("m", None), (None, "h")]
    # Masks over boxes: the boxes coincide, the masks overlap by a third.
    masked_a = subject("trawler", [0, 0, 30, 30], mask=rect_mask_rle(40, 40, (0, 0, 15, 30)))
    masked_b = subject("ship", [0, 0, 30, 30], mask=rect_mask_rle(40, 40, (10, 0, 30, 30)))
    assert triplet_similarity({"subject": masked_a}, {"subject": masked_b}) == pytest.approx(5 / 30)


def axis_vectors(groups: dict[str, tuple[str, ...]], extra: dict[str, list[float]] | None = None) -> PhraseVectors:
    """Phrases of one group share one direction (cosine 1); groups are orthogonal (cosine 0)."""
    dim = len(groups) + 2
    vectors = {}
    for i, phrases in enumerate(groups.values()):
        for phrase in phrases:
            vectors[phrase] = np.eye(dim)[i]
    for phrase, v in (extra or {}).items():
        vectors[phrase] = np.asarray(v + [0.0] * (dim - len(v)))
    return PhraseVectors(vectors, model="test")


def test_paraphrases_pair_by_meaning_with_stored_embeddings_and_not_by_words():
    gpt = [{"key": "g", "background": {"phrase": "empty field"}, "attribute": {"phrase": "cold, solitary"},
            "subject": {"phrase": "man with a camera"}}]
    gemini = [{"key": "m", "background": {"phrase": "campus lawn"}, "attribute": {"phrase": "focused, calm"},
               "subject": {"phrase": "photographer"}}]
    vectors = axis_vectors({"field": ("empty field", "campus lawn"), "man": ("man with a camera", "photographer"),
                            "cold": ("cold, solitary",), "calm": ("focused, calm",)})

    by_words = align_triplets(gpt, gemini)
    by_meaning = align_triplets(gpt, gemini, vectors)

    assert keyed(by_words.pairs) == [("g", None), (None, "m")]
    assert by_words.fallback and by_words.method == WORDS
    assert by_words.words_only == {"empty field", "cold, solitary", "man with a camera", "campus lawn", "focused, calm",
                                   "photographer"}
    assert keyed(by_meaning.pairs) == [("g", "m")]
    assert by_meaning.pairs[0].paired_by == MEANING and not by_meaning.fallback
    assert by_meaning.pairs[0].similarity == pytest.approx((1 + 0 + 2 * 1) / 4)
    assert by_meaning.summary() == {"method": MEANING, "fallback": False, "phrases_without_embedding": 0,
                                    "note": "paired by meaning (phrase embeddings)"}


def test_a_missing_embedding_falls_back_to_words_for_that_pair_and_says_so():
    a = [{"key": "a1", "subject": {"phrase": "photographer"}}, {"key": "a2", "subject": {"phrase": "red kite"}}]
    b = [{"key": "b1", "subject": {"phrase": "man with a camera"}}, {"key": "b2", "subject": {"phrase": "kite"}}]
    vectors = axis_vectors({"man": ("photographer", "man with a camera")})  # no vector for either kite

    alignment = align_triplets(a, b, vectors)

    assert keyed(alignment.pairs) == [("a1", "b1"), ("a2", "b2")]
    assert [p.paired_by for p in alignment.pairs] == [MEANING, WORDS]
    assert alignment.fallback and alignment.words_only == {"red kite", "kite"}
    assert alignment.summary()["note"] == "paired by words: no embeddings yet for 2 phrases"
    assert alignment_summary({"x"})["note"] == "paired by words: no embeddings yet for 1 phrase"


def test_identical_phrases_need_no_embedding_and_keys_pair_first():
    a = [{"key": "k1", "subject": {"phrase": "Lighthouse"}}, {"key": "k2", "subject": {"phrase": "boat"}}]
    b = [{"key": "x", "subject": {"phrase": "lighthouse "}}, {"key": "k2", "subject": {"phrase": "tanker"}}]
    alignment = align_triplets(a, b)
    assert keyed(alignment.pairs) == [("k2", "k2"), ("k1", "x")]
    assert [p.paired_by for p in alignment.pairs] == ["key", MEANING] and not alignment.fallback


def test_unrelated_triplets_stay_unmatched_below_the_pairing_bar():
    vectors = axis_vectors({}, {"stormy sea": [1.0, 0.0], "quiet library": [0.3, (1 - 0.3**2) ** 0.5]})
    a = [{"key": "a", "background": {"phrase": "stormy sea"}}]
    b = [{"key": "b", "background": {"phrase": "quiet library"}}]
    assert compare_phrases("stormy sea", "quiet library", vectors).cosine == pytest.approx(0.3)
    assert 0.3 < PAIR_MIN_COSINE and keyed(align_triplets(a, b, vectors).pairs) == [("a", None), (None, "b")]


def test_same_meaning_by_cosine_or_by_the_same_content_words():
    vectors = axis_vectors({}, {"misty": [1.0, 0.0], "foggy": [0.6, 0.8], "sunny": [0.0, 1.0]})
    assert SAME_MEANING_COSINE <= 0.6 and same_meaning("misty", "foggy", vectors)
    assert not same_meaning("misty", "sunny", vectors)
    assert same_meaning("The lighthouse", "lighthouse") and same_meaning("Dark clouds", "dark  clouds")
    assert not same_meaning("garage", "cluttered garage") and not same_meaning("", "")
    assert compare_phrases("misty", "sunny").method == WORDS and compare_phrases("misty", "foggy", vectors).method == MEANING


def test_phrase_vectors_are_unit_length_and_keyed_by_phrase():
    vectors = PhraseVectors({"Dark Clouds": [3.0, 4.0], "zero": [0.0, 0.0]})
    assert "dark clouds" in vectors and "zero" not in vectors and len(vectors) == 1
    assert np.linalg.norm(vectors.get("  dark clouds")) == pytest.approx(1.0)
    assert vectors.cosine("dark clouds", "nothing") is None and NO_VECTORS.cosine("a", "a") is None


def test_empty_sides_and_the_phrases_to_look_up():
    assert align_triplets([], []).pairs == () and align_triplets([], []).overlap == 0.0
    one = [{"key": "a", "subject": {"phrase": "Boat"}, "attribute": {"phrase": " "}}]
    assert keyed(align_triplets(one, []).pairs) == [("a", None)] and not align_triplets(one, []).fallback
    assert triplet_phrases(one, [{"background": {"phrase": "Sea "}}]) == {"boat", "sea"}
