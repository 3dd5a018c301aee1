"""QA acceptance and model answer accuracy per category and dimension (no database)."""

from __future__ import annotations

import pytest

from core.qa_agreement import ACCEPTED, EDITED, REJECTED, QaOutcome, QaRate, qa_agreement


def test_wilson_interval_matches_newcombe_1998():
    # Newcombe (1998), Statistics in Medicine 17, 857-872, Table I: 81/263 -> 0.2553 to 0.3662
    rate = QaRate.of(81, 263, 0.95)
    assert (round(rate.low, 4), round(rate.high, 4)) == (0.2553, 0.3662)
    assert QaRate.of(0, 0, 0.95) == QaRate(0, 0, None, None, None)


def test_rates_per_category_dimension_and_cell():
    outcomes = [
        QaOutcome("perception", "intensity", ACCEPTED, True),
        QaOutcome("perception", "intensity", EDITED, False),  # the reviewer fixed the answer
        QaOutcome("perception", "cause", REJECTED, False),  # rejected: wrong answer
        QaOutcome("perception", "cause", REJECTED, None),  # rejected: ambiguous, not scored
        QaOutcome("reasoning", "cause", EDITED, True),  # only the question was edited
        QaOutcome("reasoning", "cause", ACCEPTED, True),
    ]
    result = qa_agreement(outcomes)
    overall = result.overall
    assert (overall.reviewed, overall.accepted, overall.edited, overall.rejected) == (6, 2, 2, 2)
    assert overall.acceptance.rate == pytest.approx(4 / 6) and overall.accuracy.trials == 5
    assert overall.accuracy.rate == pytest.approx(3 / 5)
    assert [(r.category, r.acceptance.rate, r.accuracy.rate) for r in result.by_category] == [
        ("perception", 0.5, pytest.approx(1 / 3)),
        ("reasoning", 1.0, 1.0),
    ]
    assert [(r.dimension, r.reviewed, r.accuracy.successes, r.accuracy.trials) for r in result.by_dimension] == [
        ("cause", 4, 2, 3),
        ("intensity", 2, 1, 2),
    ]
    assert [(r.category, r.dimension) for r in result.by_cell] == [
        ("perception", "cause"),
        ("perception", "intensity"),
        ("reasoning", "cause"),
    ]
    cell = result.by_cell[0]
    assert cell.acceptance.rate == 0.0 and cell.acceptance.low == 0.0 and 0 < cell.acceptance.high < 1
    assert cell.accuracy.trials == 1 and cell.accuracy.rate == 0.0


def test_no_outcomes_and_bad_decision():
    empty = qa_agreement([])
    assert empty.overall.reviewed == 0 and empty.overall.acceptance.rate is None and empty.by_cell == []
    with pytest.raises(ValueError, match="decision"):
        QaOutcome("a", "b", "maybe", None)
    with pytest.raises(ValueError, match="confidence"):
        qa_agreement([], confidence=1.0)
