"""Calibration statistics: ECE by hand, temperature recovered from synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import UndefinedStatisticError
from ml.stages.calibration import (
    DEFAULT_EPSILON,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    probs_to_logits,
    reliability_diagram,
    softmax,
)

# Four predictions, two classes. Top-1 confidences .9 (right), .9 (wrong), .6 (right),
# .55 (right). With 5 bins of width .2 (right-closed, Guo et al. 2017):
#   (.8, 1]:  n=2, acc .5, conf .9    -> 2/4 * .4   = .2
#   (.4, .6]: n=2, acc 1,  conf .575  -> 2/4 * .425 = .2125
# ECE = .4125. With 15 bins the same samples share bins ((.8667, .9333] and (.5333, .6]).
HAND_PROBS = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.45, 0.55]])
HAND_LABELS = np.array([0, 1, 1, 1])


def sample_labels(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row drawn from that row's distribution."""
    return (probs.cumsum(axis=1) > rng.random((len(probs), 1))).argmax(axis=1)


@pytest.mark.parametrize("n_bins", [5, 15])
def test_ece_hand_computed(n_bins):
    assert expected_calibration_error(HAND_PROBS, HAND_LABELS, n_bins) == pytest.approx(0.4125)


def test_reliability_diagram_bins():
    diagram = reliability_diagram(HAND_PROBS, HAND_LABELS, n_bins=5)
    assert diagram.counts.tolist() == [0, 0, 2, 0, 2]
    assert diagram.accuracy[[2, 4]].tolist() == pytest.approx([1.0, 0.5])
    assert diagram.confidence[[2, 4]].tolist() == pytest.approx([0.575, 0.9])
    assert np.isnan(diagram.accuracy[0]) and np.isnan(diagram.confidence[3])
    as_dict = diagram.to_dict()
    assert as_dict["accuracy"][0] is None and as_dict["ece"] == pytest.approx(0.4125)
    assert as_dict["edges"] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_bins_are_right_closed():
    # .6 belongs to (.4, .6], not (.6, .8]; 1.0 to the last bin.
    diagram = reliability_diagram([[0.6, 0.4], [1.0, 0.0]], [0, 0], n_bins=5)
    assert diagram.counts.tolist() == [0, 0, 1, 0, 1]


def test_ece_is_zero_when_confidence_equals_accuracy():
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)


@pytest.mark.parametrize("true_temperature", [0.5, 2.0, 3.0])
def test_fit_temperature_recovers_the_generating_temperature(true_temperature):
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, (20_000, 8))
    labels = sample_labels(softmax(logits / true_temperature), rng)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.05)
    # it is the minimum of the NLL, not just near the truth
    nll = negative_log_likelihood(logits, labels, fitted)
    assert nll < negative_log_likelihood(logits, labels, fitted * 1.01)
    assert nll < negative_log_likelihood(logits, labels, fitted / 1.01)
    # temperature scaling lowers ECE on the miscalibrated model
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(apply_temperature(logits, fitted), labels)
    assert after < before / 3


def test_fit_temperature_is_one_on_calibrated_distributions():
    rng = np.random.default_rng(1)
    probs = softmax(rng.normal(0.0, 2.0, (20_000, 8)))  # 8-way distributions like our annotators'
    labels = sample_labels(probs, rng)
    assert fit_temperature(probs_to_logits(probs), labels) == pytest.approx(1.0, abs=0.05)


def test_temperature_on_distributions_matches_the_pipeline_convention():
    from core.vocabulary import EMOTIONS
    from ml.stages.calibration import DEFAULT_EPSILON as PIPELINE_EPSILON
    from ml.stages.calibration import temperature_scale

    assert DEFAULT_EPSILON == PIPELINE_EPSILON
    distribution = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0, 0.0])
    ours = apply_temperature(probs_to_logits(distribution[None]), 1.7)[0]
    theirs = temperature_scale(dict(zip(EMOTIONS, distribution, strict=True)), 1.7)
    assert ours.tolist() == pytest.approx([theirs[e] for e in EMOTIONS], abs=1e-12)


def test_fit_temperature_refuses_an_optimum_beyond_the_bounds():
    logits = np.array([[2.0, 0.0, -1.0], [0.5, 3.0, 0.0], [0.0, 1.0, 4.0]])
    with pytest.raises(UndefinedStatisticError, match="perfectly separated"):
        fit_temperature(logits, logits.argmax(axis=1))
    with pytest.raises(UndefinedStatisticError, match="no information"):
        fit_temperature(logits, logits.argmin(axis=1))


def test_bad_input_errors():
    with pytest.raises(ValueError, match="sum to 1"):
        expected_calibration_error([[0.5, 0.2]], [0])
    with pytest.raises(ValueError, match="labels must lie"):
        expected_calibration_error(HAND_PROBS, [0, 1, 2, 0])
    with pytest.raises(ValueError, match="integer class indices"):
        fit_temperature(HAND_PROBS, [0.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="temperature must be"):
        apply_temperature(HAND_PROBS, 0.0)
    with pytest.raises(ValueError, match="2-D"):
        probs_to_logits([0.5, 0.5])
    with pytest.raises(UndefinedStatisticError):
        expected_calibration_error(np.empty((0, 8)), np.empty(0, dtype=int))
