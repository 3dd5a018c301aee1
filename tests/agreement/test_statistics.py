"""Agreement statistics against published worked examples and the `krippendorff` package.

No database: these are pure functions.
"""

from __future__ import annotations

from functools import partial

import krippendorff
import numpy as np
import pytest

from agreement import statistics
from agreement.similarity import (
    exact_match_rate,
    iou_summary,
    mask_iou,
)
from agreement.statistics import (
    LEVELS,
    UndefinedStatisticError,
    bootstrap_ci,
    cohen_kappa,
    cohen_kappa_per_class,
    confusion_matrix,
    counts_table,
    fleiss_kappa,
    fleiss_kappa_per_category,
    krippendorff_alpha,
    krippendorff_alpha_ci,
    specific_agreement,
)
from core.alignment import PhraseVectors, phrase_key

nan = np.nan

# Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability", Annenberg School
# for Communication, University of Pennsylvania, section C: 4 observers x 12 units with
# missing values. Published: nominal .743, ordinal .815, interval .849, ratio .797.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
)
KRIPPENDORFF_2011_ALPHA = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}

# Fleiss, J. L. (1971). "Measuring nominal scale agreement among many raters",
# Psychological Bulletin 76(5), 378-382, Table 1: 30 patients, 6 raters each, categories
# depression, personality disorder, schizophrenia, neurosis, other. Counts built from the
# rater-level data of R's irr::diagnoses (the same table; also statsmodels' test data).
# Published kappa .430; per-category kappas .245 .245 .520 .471 .566 (Fleiss 1971; also
# printed by irr::kappam.fleiss(diagnoses, detail = TRUE)).
FLEISS_1971 = np.array(
    [
        [0, 0, 0, 6, 0], [0, 3, 0, 0, 3], [0, 1, 4, 0, 1], [0, 0, 0, 0, 6], [0, 3, 0, 3, 0],
        [2, 0, 4, 0, 0], [0, 0, 4, 0, 2], [2, 0, 3, 1, 0], [2, 0, 0, 4, 0], [0, 0, 0, 0, 6],
        [1, 0, 0, 5, 0], [1, 1, 0, 4, 0], [0, 3, 3, 0, 0], [1, 0, 0, 5, 0], [0, 2, 0, 3, 1],
        [0, 0, 5, 0, 1], [3, 0, 0, 1, 2], [5, 1, 0, 0, 0], [0, 2, 0, 4, 0], [1, 0, 2, 0, 3],
        [0, 0, 0, 0, 6], [0, 1, 0, 5, 0], [0, 2, 0, 1, 3], [2, 0, 0, 4, 0], [1, 0, 0, 4, 1],
        [0, 5, 0, 1, 0], [4, 0, 0, 0, 2], [0, 2, 0, 4, 0], [1, 0, 5, 0, 0], [0, 0, 0, 0, 6],
    ]
)

# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories; kappa 0.210.
WIKIPEDIA_FLEISS = np.array(
    [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ]
)


def labels_from_table(table: list[list[int]], categories: list[str]) -> tuple[list[str], list[str]]:
    """Two annotators' label lists reproducing a confusion matrix (rows A, columns B)."""
    a, b = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [categories[i]] * count
            b += [categories[j]] * count
    return a, b


def random_reliability_data(seed: int, raters: int = 5, units: int = 60, values: int = 6, missing: float = 0.3):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, values, units)
    data = np.where(rng.random((raters, units)) < 0.6, truth, rng.integers(0, values, (raters, units))).astype(float)
    data[rng.random(data.shape) < missing] = nan
    return data


# ------------------------------------------------------------------------- alpha


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_reproduces_krippendorff_2011(level):
    alpha = krippendorff_alpha(KRIPPENDORFF_2011, level)
    assert round(alpha, 3) == KRIPPENDORFF_2011_ALPHA[level]
    reference = krippendorff.alpha(reliability_data=KRIPPENDORFF_2011, level_of_measurement=level)
    assert alpha == pytest.approx(reference, abs=1e-12)


@pytest.mark.parametrize("dense_counts", [True, False], ids=["dense-counts", "sparse-counts"])
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(4))
def test_alpha_matches_krippendorff_package_with_missing_values(level, seed, dense_counts, monkeypatch):
    if not dense_counts:  # the path large value sets take
        monkeypatch.setattr(statistics, "DENSE_COUNTS_CELLS", 0)
    data = random_reliability_data(seed) * 2.5 + 0.5  # non-integer, unequally spaced after rounding below
    data = np.round(data**1.3, 2)
    reference = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert krippendorff_alpha(data, level) == pytest.approx(reference, abs=1e-10)


def test_interval_and_ratio_alpha_accept_continuous_values():
    rng = np.random.default_rng(7)
    truth = rng.normal(0, 3, 80)
    data = truth + rng.normal(0, 1, (3, 80))
    data[rng.random(data.shape) < 0.2] = nan
    reference = krippendorff.alpha(reliability_data=data, level_of_measurement="interval")
    assert krippendorff_alpha(data, "interval") == pytest.approx(reference, abs=1e-10)
    positive = np.exp(data / 3)  # ~190 distinct values on a ratio scale
    reference = krippendorff.alpha(reliability_data=positive, level_of_measurement="ratio")
    assert krippendorff_alpha(positive, "ratio") == pytest.approx(reference, abs=1e-10)


def test_units_with_fewer_than_two_values_are_dropped():
    with_singletons = np.hstack([KRIPPENDORFF_2011, [[7.0, nan], [nan, nan], [nan, nan], [nan, nan]]])
    for level in LEVELS:
        assert krippendorff_alpha(with_singletons, level) == pytest.approx(krippendorff_alpha(KRIPPENDORFF_2011, level))


def test_alpha_is_one_for_perfect_agreement_with_variation():
    data = np.array([[1, 2, 3, nan], [1, 2, 3, 4], [nan, 2, 3, 4]])
    assert krippendorff_alpha(data, "nominal") == pytest.approx(1.0)
    assert krippendorff_alpha(data, "interval") == pytest.approx(1.0)


@pytest.mark.parametrize(
    "data, message",
    [
        (np.full((3, 5), 2.0), "all pairable values are equal"),
        (np.array([[1.0, nan, 2.0], [nan, 3.0, nan]]), "no unit has two or more values"),
        (np.empty((3, 0)), "no unit has two or more values"),
    ],
)
def test_alpha_undefined_raises_instead_of_a_made_up_value(data, message):
    with pytest.raises(UndefinedStatisticError, match=message):
        krippendorff_alpha(data, "nominal")


def test_alpha_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        krippendorff_alpha([1, 2, 3])
    with pytest.raises(ValueError, match="level must be one of"):
        krippendorff_alpha(KRIPPENDORFF_2011, "cardinal")
    with pytest.raises(ValueError, match="non-negative"):
        krippendorff_alpha(np.array([[-1.0, 2.0], [1.0, 2.0]]), "ratio")
    with pytest.raises(ValueError, match="numeric"):
        krippendorff_alpha([["joy", "awe"], ["joy", "awe"]])
    assert issubclass(UndefinedStatisticError, ValueError)


# ------------------------------------------------------------------------- Fleiss


def test_fleiss_kappa_reproduces_fleiss_1971():
    assert FLEISS_1971.sum(axis=1).tolist() == [6] * 30
    assert round(fleiss_kappa(FLEISS_1971), 3) == 0.430
    per_category = fleiss_kappa_per_category(FLEISS_1971)
    assert np.round(per_category, 3).tolist() == [0.245, 0.245, 0.520, 0.471, 0.566]


def test_fleiss_kappa_reproduces_wikipedia_example():
    assert round(fleiss_kappa(WIKIPEDIA_FLEISS), 3) == 0.210


def test_fleiss_kappa_is_alpha_without_the_small_sample_correction():
    # On complete data Do is the same and De(alpha) = De(kappa) * T / (T - 1), T = all ratings,
    # so kappa = 1 - (1 - alpha) * T / (T - 1) exactly.
    data = random_reliability_data(3, raters=4, units=50, missing=0.0)
    table, _ = counts_table(data)
    total = data.size
    alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert fleiss_kappa(table) == pytest.approx(1 - (1 - alpha) * total / (total - 1), abs=1e-12)


def test_fleiss_kappa_requires_equal_raters_per_unit():
    with pytest.raises(ValueError, match="same number of ratings"):
        fleiss_kappa([[2, 1], [1, 1]])
    with pytest.raises(ValueError, match="whole counts"):
        fleiss_kappa([[1.5, 1.5]])
    with pytest.raises(UndefinedStatisticError, match="same category"):
        fleiss_kappa([[3, 0], [3, 0]])


def test_counts_table_skips_missing_values():
    table, categories = counts_table([[1, 2, nan], [1, 3, 3], [2, nan, 3]])
    assert categories.tolist() == [1.0, 2.0, 3.0]
    assert table.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 2]]


# -------------------------------------------------------------------------- Cohen

# Wikipedia, "Cohen's kappa", simple example: 50 grant proposals, readers A and B;
# yes/yes 20, A yes B no 5, A no B yes 10, no/no 15 -> po .70, pe .50, kappa .40.
WIKIPEDIA_COHEN = [[20, 5], [10, 15]]


def test_cohen_kappa_reproduces_wikipedia_example():
    a, b = labels_from_table(WIKIPEDIA_COHEN, ["yes", "no"])
    assert confusion_matrix(a, b, ["yes", "no"]).tolist() == WIKIPEDIA_COHEN
    assert cohen_kappa(a, b) == pytest.approx(0.4)


# Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
# Psychological Measurement 20(1), 37-46, Table 1: two judges, 200 items, 3 categories;
# rows judge A, columns judge B. p_o = .70, p_c = .41, kappa = .492.
COHEN_1960_TABLE_1 = [[88, 14, 18], [10, 40, 10], [2, 6, 12]]


def test_cohen_kappa_reproduces_cohen_1960_table_1():
    categories = ["1", "2", "3"]
    a, b = labels_from_table(COHEN_1960_TABLE_1, categories)
    assert len(a) == 200
    assert confusion_matrix(a, b, categories).tolist() == COHEN_1960_TABLE_1
    assert round(float(np.mean(np.array(a) == np.array(b))), 2) == 0.70  # p_o
    p_c = sum((a.count(c) / 200) * (b.count(c) / 200) for c in categories)
    assert round(p_c, 2) == 0.41
    assert round(cohen_kappa(a, b), 3) == 0.492


@pytest.mark.parametrize(
    "table, kappa",  # Wikipedia, "Cohen's kappa", "same percentages but different numbers"
    [([[45, 15], [25, 15]], 0.1304), ([[25, 35], [5, 35]], 0.2593)],
)
def test_cohen_kappa_same_agreement_different_kappa(table, kappa):
    a, b = labels_from_table(table, ["yes", "no"])
    assert round(cohen_kappa(a, b), 4) == kappa


def test_cohen_kappa_matches_scikit_learn_on_random_labels():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(11)
    a = rng.integers(0, 8, 500)
    b = np.where(rng.random(500) < 0.5, a, rng.integers(0, 8, 500))
    assert cohen_kappa(a, b) == pytest.approx(sklearn_metrics.cohen_kappa_score(a, b), abs=1e-12)


def test_cohen_kappa_per_class_one_vs_rest():
    a, b = labels_from_table(WIKIPEDIA_COHEN, ["yes", "no"])
    # With two categories each one-vs-rest table is the full table: both equal kappa.
    assert cohen_kappa_per_class(a, b, ["yes", "no"]).tolist() == pytest.approx([0.4, 0.4])
    per_class = cohen_kappa_per_class(a, b, ["yes", "no", "maybe"])
    assert per_class[:2].tolist() == pytest.approx([0.4, 0.4])
    assert np.isnan(per_class[2])  # nobody used "maybe": undefined, not 1.0


def test_specific_agreement_two_raters_is_2a_over_2a_b_c():
    a, b = labels_from_table(WIKIPEDIA_COHEN, ["yes", "no"])
    codes = np.array([[x == "yes" for x in a], [x == "yes" for x in b]], dtype=float)
    table, categories = counts_table(codes)
    assert categories.tolist() == [0.0, 1.0]  # no, yes
    assert specific_agreement(table).tolist() == pytest.approx([2 * 15 / (30 + 15), 2 * 20 / (40 + 15)])


def test_cohen_kappa_errors():
    with pytest.raises(UndefinedStatisticError, match="one and the same category"):
        cohen_kappa(["joy"] * 4, ["joy"] * 4)
    with pytest.raises(ValueError, match="differ in length"):
        cohen_kappa(["joy", "awe"], ["joy"])
    with pytest.raises(ValueError, match="not in categories"):
        confusion_matrix(["joy", "bliss"], ["joy", "awe"], ["joy", "awe"])
    with pytest.raises(UndefinedStatisticError):
        cohen_kappa([], [], ["joy", "awe"])


# ----------------------------------------------------------------------- bootstrap


def test_bootstrap_is_reproducible_and_contains_the_estimate():
    data = random_reliability_data(5, units=80)
    first = krippendorff_alpha_ci(data, "nominal", n_resamples=300, seed=42)
    again = krippendorff_alpha_ci(data, "nominal", n_resamples=300, seed=42)
    other = krippendorff_alpha_ci(data, "nominal", n_resamples=300, seed=43)
    assert first == again
    assert (first.low, first.high) != (other.low, other.high)
    assert first.low < first.estimate < first.high
    assert first.estimate == pytest.approx(krippendorff_alpha(data, "nominal"))
    assert first.n_resamples == 300 and first.n_undefined == 0


@pytest.mark.parametrize("level", LEVELS)
def test_fast_alpha_bootstrap_equals_recomputing_every_resample(level):
    data = random_reliability_data(9, units=40) + 1.0
    fast = krippendorff_alpha_ci(data, level, n_resamples=60, seed=1)
    slow = bootstrap_ci(partial(krippendorff_alpha, level=level), data, n_resamples=60, seed=1, axis=1)
    assert (fast.estimate, fast.low, fast.high) == pytest.approx((slow.estimate, slow.low, slow.high), abs=1e-12)


def test_bootstrap_resamples_paired_labels_together():
    a, b = labels_from_table(WIKIPEDIA_COHEN, ["yes", "no"])
    estimate, low, high = bootstrap_ci(cohen_kappa, (np.array(a), np.array(b)), n_resamples=400, seed=0)
    assert estimate == pytest.approx(0.4)
    assert 0.1 < low < 0.4 < high < 0.7
    wider = bootstrap_ci(cohen_kappa, (np.array(a), np.array(b)), n_resamples=400, seed=0, confidence=0.99)
    assert wider.low <= low and wider.high >= high


def test_bootstrap_leaves_out_undefined_resamples_and_counts_them():
    a = np.array(["joy"] * 9 + ["awe"])
    result = bootstrap_ci(cohen_kappa, (a, a.copy()), n_resamples=200, seed=0)
    assert result.estimate == 1.0  # perfect agreement with variation is defined
    assert 0 < result.n_undefined < 200  # resamples without "awe" have no kappa


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(fleiss_kappa, FLEISS_1971, n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        krippendorff_alpha_ci(KRIPPENDORFF_2011, confidence=1.0)
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_ci(cohen_kappa, (np.arange(3), np.arange(4)))


# ----------------------------------------------------------------------------- IoU


def test_mask_iou_batched():
    a = np.zeros((2, 4, 4), dtype=bool)
    b = np.zeros((2, 4, 4), dtype=bool)
    a[0, :2, :] = True  # 8 pixels
    b[0, :, :2] = True  # 8 pixels, 4 shared
    iou = mask_iou(a, b)
    assert iou[0] == pytest.approx(4 / 12)
    assert np.isnan(iou[1])
    with pytest.raises(ValueError, match="share one shape"):
        mask_iou(a, b[0])


def test_iou_summary():
    summary = iou_summary([0.05, 0.5, 0.9, 0.95, nan], bins=4)
    assert summary["count"] == 4 and summary["n_undefined"] == 1
    assert summary["mean"] == pytest.approx(0.6)
    assert summary["median"] == pytest.approx(0.7)
    assert summary["histogram"] == {"edges": [0.0, 0.25, 0.5, 0.75, 1.0], "counts": [1, 0, 1, 2]}
    with pytest.raises(UndefinedStatisticError):
        iou_summary([nan])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        iou_summary([1.5])


# ------------------------------------------------------------------------- phrases


def test_phrase_exact_match_normalises_case_and_whitespace():
    assert phrase_key("  Dark\tCLOUDS \n") == "dark clouds"
    rate = exact_match_rate(["Dark clouds", "stormy sea", "a dog"], ["dark  clouds", "Stormy Sea", "a cat"])
    assert rate == pytest.approx(2 / 3)
    with pytest.raises(UndefinedStatisticError):
        exact_match_rate([], [])
    with pytest.raises(ValueError, match="differ in length"):
        exact_match_rate(["a"], [])


def test_phrase_cosines_come_from_the_one_alignment_module():
    """Semantic phrase agreement reads cosines through core.alignment.PhraseVectors (unit rows)."""
    vectors = PhraseVectors({"a": [1, 0], "b": [1, 1], "c": [-1, -1]})
    assert vectors.cosine("a", "b") == pytest.approx(np.sqrt(0.5)) and vectors.cosine("b", "c") == pytest.approx(-1.0)
    assert PhraseVectors({"zero": [0, 0]}).cosine("zero", "zero") is None


def test_calibration_statistics_are_importable_from_statistics():
    """The issue names ``agreement.statistics`` as their home; they live in ``ml.stages.calibration``."""
    from agreement.statistics import expected_calibration_error, fit_temperature
    from ml.stages import calibration

    assert expected_calibration_error is calibration.expected_calibration_error
    assert fit_temperature is calibration.fit_temperature
    assert {"expected_calibration_error", "fit_temperature"} <= set(statistics.__all__)
    assert calibration.UndefinedStatisticError is UndefinedStatisticError
    probs = np.array([[0.9, 0.1], [0.8, 0.2]])
    assert expected_calibration_error(probs, np.array([0, 1])) == pytest.approx(abs(0.9 - 1) / 2 + abs(0.8 - 0) / 2)
