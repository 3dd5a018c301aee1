"""QA acceptance and model answer accuracy per category and dimension (no database)."""

from __future__ import annotations

import pytest

from core.qa_agreement import (
    ACCEPTED,
    EDITED,
    REJECTED,
    QaOutcome,
    QaRate,
    answer_key,
    critic_answer_key,
    qa_agreement,
)


def test_wilson_interval_matches_newcombe_1998():
    # Newcombe (1998), Statistics in Medicine 17, 857-872, Table I: 81/263 -> 0.2553 to 0.3662
    rate = QaRate.of(81, 263, 0.95)
    assert (round(rate.low, 4), round(rate.high, 4)) == (0.2553, 0.3662)
    assert QaRate.of(0, 0, 0.95) == QaRate(0, 0, None, None, None)


def test_rates_per_category_dimension_and_cell():
    outcomes = [
        QaOutcome("perception", "intensity", ACCEPTED, True, critic_correct=True, model="m1"),
        QaOutcome("perception", "intensity", EDITED, False, critic_correct=True, model="m1"),  # answer fixed
        QaOutcome("perception", "cause", REJECTED, False, reason="wrong_answer", model="m1"),
        QaOutcome("perception", "cause", REJECTED, None, reason="ambiguous", model="m2"),  # not scored
        QaOutcome("reasoning", "cause", EDITED, True, critic_correct=False, model="m2"),  # question edited
        QaOutcome("reasoning", "cause", ACCEPTED, True, model="m2"),  # no critic answer
    ]
    result = qa_agreement(outcomes)
    overall = result.overall
    assert (overall.reviewed, overall.accepted, overall.edited, overall.rejected) == (6, 2, 2, 2)
    assert overall.acceptance.rate == pytest.approx(4 / 6) and overall.accuracy.trials == 5
    assert overall.accuracy.rate == pytest.approx(3 / 5)
    assert (overall.critic_accuracy.successes, overall.critic_accuracy.trials) == (2, 3)
    assert overall.reasons == {"ambiguous": 1, "wrong_answer": 1}
    assert [(r.model, r.reviewed, r.accuracy.successes, r.accuracy.trials) for r in result.by_model] == [
        ("m1", 3, 1, 3),
        ("m2", 3, 2, 2),
    ]
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


def test_answers_compare_by_option_text_yes_no_and_normalised_text():
    options = ["Fear", "Awe", "Joy"]
    assert answer_key("multiple_choice", options, 1, "") == "awe"
    # the same answer after the reviewer reordered the options
    assert answer_key("multiple_choice", ["joy", " AWE ", "fear"], 1, "") == answer_key(
        "multiple_choice", options, 1, ""
    )
    assert answer_key("multiple_choice", options, 3, "") is None and answer_key("multiple_choice", None, 0, "") is None
    assert answer_key("yes_no", None, None, "Yes") == "yes"
    assert answer_key("open", None, None, "  The  dark\nclouds ") == "the dark clouds"
    assert answer_key("open", None, None, "   ") is None
    assert critic_answer_key("multiple_choice", options, "2") == "joy"
    assert critic_answer_key("multiple_choice", options, "b") == "awe"
    assert critic_answer_key("multiple_choice", options, "fear") == "fear"
    assert critic_answer_key("multiple_choice", options, "anger") is None
    assert critic_answer_key("multiple_choice", options, "7") is None
    assert critic_answer_key("yes_no", None, " NO") == "no" and critic_answer_key("open", None, "") is None
