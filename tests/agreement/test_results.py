"""Report intervals: the multinomial shortcuts agree with resampling items one by one."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from agreement.results import ReportOptions, fleiss_result, kappa_result
from agreement.statistics import bootstrap_ci, cohen_kappa, counts_table, fleiss_kappa

OPTIONS = ReportOptions(n_resamples=3000, seed=11)
CATS = np.arange(4)


def _noisy_copy(rng, truth, p_same):
    return np.where(rng.random(len(truth)) < p_same, truth, rng.integers(0, 4, len(truth)))


def test_kappa_interval_matches_item_bootstrap():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, 300)
    b = _noisy_copy(rng, a, 0.7)
    fast = kappa_result(a, b, CATS, OPTIONS)
    slow = bootstrap_ci(partial(cohen_kappa, categories=CATS), (a, b), n_resamples=3000, seed=5)
    assert fast["value"] == pytest.approx(cohen_kappa(a, b, CATS))
    assert fast["n"] == 300 and fast["undefined_resamples"] == 0
    assert fast["low"] == pytest.approx(slow.low, abs=0.015) and fast["high"] == pytest.approx(slow.high, abs=0.015)


def test_fleiss_interval_matches_item_bootstrap():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 4, 250)
    data = np.array([_noisy_copy(rng, truth, 0.6) for _ in range(3)], dtype=float)
    fast = fleiss_result(data, CATS, OPTIONS)
    table, _ = counts_table(data, categories=CATS)
    slow = bootstrap_ci(fleiss_kappa, table, n_resamples=3000, seed=5)
    assert fast["raters"] == 3 and fast["n"] == 250
    assert fast["value"] == pytest.approx(fleiss_kappa(table))
    assert fast["low"] == pytest.approx(slow.low, abs=0.015) and fast["high"] == pytest.approx(slow.high, abs=0.015)


def test_one_category_only_is_undefined_not_one():
    same = np.zeros(20, dtype=int)
    result = kappa_result(same, same, CATS, OPTIONS)
    assert result["value"] is None and "one and the same category" in result["undefined"]
    fleiss = fleiss_result(np.zeros((3, 20)), CATS, OPTIONS)
    assert fleiss["value"] is None and fleiss["raters"] == 3


def test_fleiss_uses_the_most_common_number_of_raters():
    data = np.array([[0, 1, 2, 3, 0, 1], [0, 1, 2, 3, 1, 1], [0, 1, np.nan, np.nan, np.nan, np.nan]])
    result = fleiss_result(data, CATS, ReportOptions(n_resamples=50))
    assert result["raters"] == 2 and result["n"] == 4  # four items with two ratings, two with three
