"""Temperature scaling, merging with a classifier, and annotator agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.distributions import js_distance
from core.alignment import PhraseVectors
from core.triplets import PhraseTriplet
from core.vocabulary import EMOTIONS
from ml.stages.backends.temperature_calibrator import TemperatureCalibrator
from ml.stages.calibration import calibrate_and_merge, temperature_scale
from ml.stages.triplets import merge_triplets
from ml.stages.types import AnnotatorResult, StageError
from demo.chat_server import distribution

T1 = PhraseTriplet("stormy beach at dusk", "dark heavy clouds", "lone fisherman")
T2 = PhraseTriplet("grey sea", "crashing waves", "small boat")


def _result(model, dist, triplets=(T1,)):
    return AnnotatorResult(model=model, prompt_version="v", triplets=tuple(triplets), distribution=dist, rationale="r", raw_output="")


def test_identity_temperature_keeps_the_distribution():
    d = distribution("fear", 0.6)
    assert temperature_scale(d, 1.0) == pytest.approx(d, abs=1e-5)


def test_temperature_matches_the_formula_and_flattens():
    d = distribution("fear", 0.8)
    scaled = temperature_scale(d, 2.0)
    logits = np.log(np.array([d[e] for e in EMOTIONS]) + 1e-6) / 2.0
    expected = np.exp(logits) / np.exp(logits).sum()
    assert [scaled[e] for e in EMOTIONS] == pytest.approx(expected.tolist())
    assert scaled["fear"] < 0.8
    assert max(scaled, key=scaled.get) == "fear"
    assert sum(scaled.values()) == pytest.approx(1.0)
    assert temperature_scale(d, 0.5)["fear"] > 0.8


def test_zero_probabilities_do_not_break_the_log():
    d = {e: 0.0 for e in EMOTIONS} | {"awe": 1.0}
    scaled = temperature_scale(d, 3.0)
    assert all(math.isfinite(v) for v in scaled.values())
    assert scaled["awe"] > 0.9


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperatures_are_refused(t):
    with pytest.raises(ValueError):
        temperature_scale(distribution("fear"), t)


def test_js_distance_bounds():
    a = {e: 0.0 for e in EMOTIONS} | {"fear": 1.0}
    b = {e: 0.0 for e in EMOTIONS} | {"awe": 1.0}
    assert js_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert js_distance(a, b) == pytest.approx(1.0)
    half = js_distance(distribution("fear", 0.6), distribution("awe", 0.6))
    assert 0.0 < half < 1.0
    assert half == pytest.approx(js_distance(distribution("awe", 0.6), distribution("fear", 0.6)))


def test_merge_uses_per_model_temperatures_and_reports_agreement():
    a = _result("gpt-4o", distribution("fear", 0.8), (T1, T2))
    b = _result("gemini", distribution("fear", 0.5), (T1,))
    result = calibrate_and_merge([a, b], {"gpt-4o": 2.0})

    assert result.raw["gpt-4o"] == a.distribution
    assert result.calibrated["gpt-4o"] == pytest.approx(temperature_scale(a.distribution, 2.0))
    assert result.calibrated["gemini"] == pytest.approx(temperature_scale(b.distribution, 1.0))
    expected = (np.array(list(result.calibrated["gpt-4o"].values())) + np.array(list(result.calibrated["gemini"].values()))) / 2
    assert list(result.merged.values()) == pytest.approx(expected.tolist())
    assert result.label == "fear"
    assert result.confidence == pytest.approx(result.merged["fear"])
    assert result.agreement.label_match is True
    assert result.agreement.triplet_overlap == pytest.approx(0.5)  # one of two triplets matched exactly
    assert 0 < result.agreement.distribution_distance < 0.5


def test_disagreeing_annotators_score_lower():
    same = calibrate_and_merge([_result("a", distribution("fear")), _result("b", distribution("fear"))], {})
    other = calibrate_and_merge(
        [_result("a", distribution("fear")), _result("b", distribution("awe"), (T2,))], {}
    )
    assert other.agreement.label_match is False
    assert other.agreement.triplet_overlap == 0.0
    assert other.agreement.score < same.agreement.score
    assert same.agreement.score == pytest.approx(1.0, abs=1e-6)


def test_single_annotator_has_no_agreement():
    assert calibrate_and_merge([_result("a", distribution("fear"))], {}).agreement is None


def test_classifier_is_blended_with_its_weight():
    calibrator = TemperatureCalibrator(classifier_weight=0.75)
    results = [_result("a", distribution("fear", 0.6)), _result("b", distribution("fear", 0.6))]
    classifier = {e: 0.0 for e in EMOTIONS} | {"awe": 1.0}

    result = calibrator.calibrate(None, results, {}, classifier_distribution=classifier)

    assert result.label == "awe"
    assert result.merged["awe"] == pytest.approx(0.25 * distribution("fear", 0.6)["awe"] + 0.75, abs=1e-4)
    assert result.classifier == classifier


def test_calibrator_turns_bad_input_into_a_stage_error():
    with pytest.raises(StageError, match="distinct"):
        TemperatureCalibrator().calibrate(None, [_result("a", distribution("fear"))] * 2, {})
    with pytest.raises(StageError, match="temperature"):
        TemperatureCalibrator().calibrate(None, [_result("a", distribution("fear"))], {"a": 0.0})


def test_agreement_and_merge_pair_paraphrases_by_meaning_with_stored_embeddings():
    """Two annotators describe one thing in other words: with the phrases' embeddings their
    triplets pair (full overlap) and the merge keeps one; by words they stay apart."""
    para = PhraseTriplet("shore at twilight", "ominous skies", "solitary angler")
    axis = {"background": [1.0, 0, 0], "attribute": [0, 1.0, 0], "subject": [0, 0, 1.0]}
    vectors = PhraseVectors({p: axis[role] for t in (T1, para) for role, p in t.phrases().items()})
    a, b = _result("a", distribution("fear", 0.6), (T1,)), _result("b", distribution("fear", 0.5), (para,))

    by_words = calibrate_and_merge([a, b], {})
    by_meaning = calibrate_and_merge([a, b], {}, vectors=vectors)

    assert by_words.agreement.triplet_overlap == 0.0 and by_words.agreement.triplets_paired_by == "words"
    assert by_meaning.agreement.triplet_overlap == pytest.approx(1.0)
    assert by_meaning.agreement.triplets_paired_by == "meaning" and by_meaning.agreement.score > by_words.agreement.score
    assert merge_triplets([a, b], by_words) == (T1, para)
    assert merge_triplets([a, b], by_meaning, vectors=vectors) == (T1,)  # the more convinced annotator's words


def test_merge_triplets_puts_the_most_convinced_annotator_first_and_drops_duplicates():
    near_t1 = PhraseTriplet("stormy beach at dusk", "the dark heavy clouds", "a lone fisherman")
    a = _result("a", distribution("fear", 0.4), (T2, T1))
    b = _result("b", distribution("fear", 0.9), (near_t1,))
    calibration = calibrate_and_merge([a, b], {})

    merged = merge_triplets([a, b], calibration)

    assert merged == (near_t1, T2)
    assert merge_triplets([a, b], calibration, max_triplets=1) == (near_t1,)
