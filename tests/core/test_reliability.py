"""Intraclass correlations and correlations against published worked examples (no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from core.errors import UndefinedStatisticError
from core.reliability import complete_block, correlate, icc, rater_vs_mean

nan = np.nan

# Shrout, P. E. & Fleiss, J. L. (1979), Psychological Bulletin 86(2), Table 2: 6 targets
# rated by 4 judges. Their Table 4 gives ICC(1,1) .17, ICC(2,1) .29, ICC(3,1) .71,
# ICC(1,4) .44, ICC(2,4) .62, ICC(3,4) .91 from BMS 11.24, WMS 6.26, JMS 32.49, EMS 1.02.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
SF_ICC = {"ICC1": 0.166, "ICC2": 0.290, "ICC3": 0.715, "ICC1k": 0.443, "ICC2k": 0.620, "ICC3k": 0.909}
# R psych::ICC(sf) on the same data (psych's documented example): F, df and 95 % bounds,
# lower bounds printed to 3 decimals, upper bounds to 2.
PSYCH_SF = {
    "ICC1": (1.8, 5, 18, 0.16477, -0.133, 0.72),
    "ICC2": (11.0, 5, 15, 0.00013, 0.019, 0.76),
    "ICC3": (11.0, 5, 15, 0.00013, 0.342, 0.95),
    "ICC1k": (1.8, 5, 18, 0.16477, -0.884, 0.91),
    "ICC2k": (11.0, 5, 15, 0.00013, 0.071, 0.93),
    "ICC3k": (11.0, 5, 15, 0.00013, 0.676, 0.99),
}


def test_icc_reproduces_shrout_fleiss_1979():
    table = icc(SHROUT_FLEISS)
    assert (table.n_targets, table.n_raters, table.n_dropped) == (6, 4, 0)
    assert [round(x, 2) for x in (table.ms_targets, table.ms_within, table.ms_raters, table.ms_error)] == [
        11.24,
        6.26,
        32.49,
        1.02,
    ]
    assert {form: round(table[form].value, 3) for form in SF_ICC} == SF_ICC
    assert table.agreement_single is table["ICC2"] and table.agreement_single.name == "ICC(A,1)"
    assert table.agreement_average is table["ICC2k"] and table.agreement_average.name == "ICC(A,k)"


@pytest.mark.parametrize("form", sorted(PSYCH_SF))
def test_icc_f_tests_and_intervals_match_psych(form):
    f, df1, df2, p, low, high = PSYCH_SF[form]
    got = icc(SHROUT_FLEISS)[form]
    assert (round(got.f, 1), got.df1, got.df2, round(got.p_value, 5)) == (f, df1, df2, p)
    assert round(got.low, 3) == low and round(got.high, 2) == high
    assert got.low < got.value < got.high and got.confidence == 0.95


def test_icc_agreement_interval_is_mcgraw_wong_satterthwaite():
    """ICC(A,1)'s bounds by McGraw & Wong's (1996) Table 7 written out once more, independently."""
    x = SHROUT_FLEISS.astype(float)
    n, k = x.shape
    g = x.mean()
    bms = k * ((x.mean(1) - g) ** 2).sum() / (n - 1)
    jms = n * ((x.mean(0) - g) ** 2).sum() / (k - 1)
    ems = (((x - x.mean(1, keepdims=True) - x.mean(0) + g) ** 2).sum()) / ((n - 1) * (k - 1))
    rho = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    fj = jms / ems
    v = (
        (k - 1)
        * (n - 1)
        * (k * rho * fj + n * (1 + (k - 1) * rho) - k * rho) ** 2
        / ((n - 1) * k**2 * rho**2 * fj**2 + (n * (1 + (k - 1) * rho) - k * rho) ** 2)
    )  # Shrout & Fleiss eq.
    fs, fs2 = stats.f.ppf(0.975, n - 1, v), stats.f.ppf(0.975, v, n - 1)
    low = n * (bms - fs * ems) / (fs * (k * jms + (k * n - k - n) * ems) + n * bms)
    high = n * (fs2 * bms - ems) / (k * jms + (k * n - k - n) * ems + n * fs2 * bms)
    got = icc(x)["ICC2"]
    assert (got.low, got.high) == pytest.approx((low, high), abs=1e-12)
    wider = icc(x, confidence=0.99)["ICC2"]
    assert wider.low < got.low and wider.high > got.high


def test_icc_consistency_ignores_rater_offsets_agreement_does_not():
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 2, 30)
    x = truth[:, None] + rng.normal(0, 1, (30, 5))
    shifted = x + np.array([0, 3, -2, 5, 1])
    assert icc(shifted)["ICC3"].value == pytest.approx(icc(x)["ICC3"].value)
    assert icc(shifted)["ICC2"].value < icc(x)["ICC2"].value - 0.2
    assert icc(x + 100)["ICC2"].value == pytest.approx(icc(x)["ICC2"].value)  # location-free


def test_icc_agreement_interval_covers_the_true_value():
    """Under the two-way random model, the 95 % interval of ICC(A,1) covers the true ICC
    about 95 % of the time (300 simulated studies: 20 targets, 4 raters)."""
    rng = np.random.default_rng(11)
    s_target, s_rater, s_error = 1.0, 0.5, 0.7
    true = s_target**2 / (s_target**2 + s_rater**2 + s_error**2)
    covered = 0
    for _ in range(300):
        x = rng.normal(0, s_target, (20, 1)) + rng.normal(0, s_rater, (1, 4)) + rng.normal(0, s_error, (20, 4))
        got = icc(x)["ICC2"]
        covered += got.low <= true <= got.high
    assert 0.90 <= covered / 300 <= 0.99


def test_icc_drops_targets_with_a_missing_rating():
    x = np.vstack([SHROUT_FLEISS, [[5, nan, 3, 4], [nan, nan, nan, nan]]])
    table = icc(x)
    assert (table.n_targets, table.n_dropped) == (6, 2)
    assert table["ICC2"].value == icc(SHROUT_FLEISS)["ICC2"].value


def test_icc_of_identical_raters_is_one():
    x = np.repeat(np.array([[1.0], [4.0], [2.0], [5.0]]), 3, axis=1)
    table = icc(x)
    for form in table:
        assert (form.value, form.low, form.high) == (1.0, 1.0, 1.0), form.form
        assert form.p_value == 0.0 if form.form != "ICC1" else True


@pytest.mark.parametrize(
    "data, message",
    [
        ([[1, 2, 3]], "two targets"),
        ([[1], [2], [3]], "two raters"),
        ([[1, nan], [2, 3], [nan, 1]], "two targets"),
        ([[2, 2], [2, 2], [2, 2]], "every rating is the same"),
    ],
)
def test_icc_undefined_inputs_raise(data, message):
    with pytest.raises(UndefinedStatisticError, match=message):
        icc(data)


@pytest.mark.parametrize("data", [[1, 2, 3], [[1, np.inf], [2, 3]], [["a", "b"], ["c", "d"]]])
def test_icc_rejects_malformed_input(data):
    with pytest.raises(ValueError):
        icc(data)


def test_icc_undefined_form_is_nan_not_a_number():
    # every target has the same mean and the raters differ only by offsets: BMS = EMS = 0
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    table = icc(x)
    assert not table["ICC3"].defined and math.isnan(table["ICC3"].low)
    assert table["ICC2"].value == 0.0


def test_complete_block_picks_raters_who_share_most_targets():
    # raters 0-2 rated targets 0-5; rater 3 only targets 0-1; rater 4 only target 6
    x = np.full((7, 5), nan)
    x[:6, :3] = 1.0
    x[:2, 3] = 1.0
    x[6, 4] = 1.0
    rows, cols = complete_block(x)
    assert rows.tolist() == [0, 1, 2, 3, 4, 5] and cols.tolist() == [0, 1, 2]
    nobody_shares = np.array([[1.0, nan], [nan, 2.0], [3.0, nan]])
    rows, cols = complete_block(nobody_shares)
    assert rows.size == 0 and cols.size == 0


# -------------------------------------------------------------------------- correlations


def test_pearson_interval_is_fisher_z_as_scipy():
    rng = np.random.default_rng(5)
    x = rng.normal(size=40)
    y = 0.6 * x + rng.normal(size=40)
    got = correlate(x, y, method="pearson")
    ref = stats.pearsonr(x, y)
    ci = ref.confidence_interval(0.95)
    assert (got.r, got.p_value, got.n) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue), 40)
    assert (got.low, got.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_spearman_ranks_ties_by_mid_rank_and_uses_bonett_wright_interval():
    x = [1, 2, 2, 3, 4, 4, 4, 5, 6, 7]
    y = [2, 1, 3, 3, 5, 4, 6, 6, 7, 9]
    got = correlate(x, y, method="spearman")
    ref = stats.spearmanr(x, y)
    assert got.r == pytest.approx(ref.statistic) and got.p_value == pytest.approx(ref.pvalue)
    assert got.r == pytest.approx(stats.pearsonr(stats.rankdata(x), stats.rankdata(y)).statistic)
    se = math.sqrt((1 + got.r**2 / 2) / (10 - 3))
    z = stats.norm.ppf(0.975)
    assert got.low == pytest.approx(math.tanh(math.atanh(got.r) - z * se))
    assert got.high == pytest.approx(math.tanh(math.atanh(got.r) + z * se))


def test_correlation_edge_cases():
    with pytest.raises(UndefinedStatisticError, match="at least three pairs"):
        correlate([1, 2, nan], [1, 2, 3])
    three = correlate([1, 2, 3], [1, 3, 2])
    assert three.n == 3 and three.r == pytest.approx(0.5) and three.low is None and three.high is None
    with pytest.raises(UndefinedStatisticError, match="y has one value only"):
        correlate([1, 2, 3, 4], [5, 5, 5, 5], method="spearman")
    perfect = correlate([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    assert (perfect.r, perfect.low, perfect.high) == (1.0, 1.0, 1.0)
    dropped = correlate([1, 2, nan, 4, 5, 6], [1, 3, 9, nan, 4, 7])
    assert dropped.n == 4 and dropped.r == pytest.approx(stats.pearsonr([1, 2, 5, 6], [1, 3, 4, 7]).statistic)
    with pytest.raises(ValueError, match="method"):
        correlate([1, 2, 3], [1, 2, 3], method="kendall")
    with pytest.raises(ValueError, match="one length"):
        correlate([1, 2, 3], [1, 2])


def test_rater_vs_mean_leaves_the_rater_out():
    data = SHROUT_FLEISS.T.astype(float)  # (raters, units)
    data[1, 0] = nan  # rater 1 skipped target 0
    rows = rater_vs_mean(data)
    assert [r.rater for r in rows] == [0, 1, 2, 3]
    others = np.nanmean(np.delete(data, 0, axis=0), axis=0)
    assert rows[0].n == 6
    assert rows[0].pearson.r == pytest.approx(stats.pearsonr(data[0], others).statistic)
    assert rows[0].spearman.r == pytest.approx(stats.spearmanr(data[0], others).statistic)
    assert rows[1].n == 5  # its missing unit is not counted


def test_rater_vs_mean_says_why_when_undefined():
    data = np.array([[1.0, 2.0, 3.0, 4.0], [3.0, 3.0, 3.0, 3.0], [1.0, nan, nan, 2.0]])
    rows = rater_vs_mean(data)
    assert rows[1].pearson is None and "x has one value only" in rows[1].reason
    assert rows[2].n == 2 and rows[2].spearman is None and "at least three pairs" in rows[2].reason
    assert rows[0].pearson is not None and rows[0].reason == ""


def test_complete_block_finds_a_panel_among_many_raters_who_share_the_work():
    """40 raters, each image rated by 3 random ones, and a panel of 3 who rated the first 20
    images: the block is the panel (dropping raters one at a time from all 40 loses it)."""
    rng = np.random.default_rng(2)
    x = np.full((400, 40), nan)
    x[:20, [5, 17, 31]] = 1.0
    for i in range(20, 400):
        x[i, rng.choice(40, 3, replace=False)] = 1.0
    rows, cols = complete_block(x)
    assert cols.tolist() == [5, 17, 31] and rows.tolist() == list(range(20))
