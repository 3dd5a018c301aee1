"""The QA section of the agreement report: how reviewers received the generated QA pairs.

Per task category, analysis dimension, category x dimension and generating model
(:mod:`core.qa_agreement`): the acceptance rate (kept as generated or after an edit, of
all reviewed pairs), the generating model's answer accuracy against the human answer and
the critic's (its blind answer) the same way, each with a Wilson 95 % interval, and the
rejections by reason. A pair's human answer is its current version's; the model's is the
first version's. Pairs written by a person (not generated) count for acceptance only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from agreement.selectors import QaReviewRow
from core.qa_agreement import REJECTED, QaOutcome, QaRate, QaRow, answer_key, critic_answer_key, qa_agreement
from qa.models import AuthorKind, QAStatus, RejectReason

GENERATED = (AuthorKind.MODEL, AuthorKind.IMPORT)


def outcome(row: QaReviewRow) -> QaOutcome:
    """One reviewed pair as a :class:`QaOutcome` (see the module docstring for the scoring)."""
    generated = row.generated_by in GENERATED
    human = None
    if row.status != QAStatus.REJECTED:
        human = answer_key(row.question_type, row.options, row.answer_index, row.answer)
    model_correct = critic_correct = None
    if generated:
        if row.status == QAStatus.REJECTED:
            model_correct = False if row.reject_reason == RejectReason.WRONG_ANSWER else None
        elif human is not None and row.question_type == row.generated_type:
            model = answer_key(
                row.generated_type, row.generated_options, row.generated_answer_index, row.generated_answer
            )
            model_correct = model == human if model is not None else None
        critic = critic_answer_key(row.generated_type, row.generated_options, row.critic_answer)
        if critic is not None and human is not None and row.question_type == row.generated_type:
            critic_correct = critic == human
    return QaOutcome(
        row.category,
        row.dimension,
        str(row.status),
        model_correct,
        critic_correct,
        reason=row.reject_reason if row.status == REJECTED else "",
        model=row.model if generated else "",
    )


def _rate(rate: QaRate) -> dict[str, Any]:
    if rate.trials == 0:
        return {"value": None, "undefined": "no pair to score", "n": 0, "successes": 0}
    return {"value": rate.rate, "low": rate.low, "high": rate.high, "n": rate.trials, "successes": rate.successes}


def _row(row: QaRow) -> dict[str, Any]:
    return {
        "category": row.category,
        "dimension": row.dimension,
        "model": row.model,
        "reviewed": row.reviewed,
        "accepted": row.accepted,
        "edited": row.edited,
        "rejected": row.rejected,
        "reasons": row.reasons,
        "acceptance": _rate(row.acceptance),
        "model_accuracy": _rate(row.accuracy),
        "critic_accuracy": _rate(row.critic_accuracy),
    }


def _outcomes(rows: Iterable[QaReviewRow]) -> Iterator[QaOutcome]:
    for row in rows:
        yield outcome(row)


def qa_section(
    rows: Iterable[QaReviewRow],
    *,
    status_counts: dict[str, int],
    categories: dict[str, str],
    dimensions: dict[str, str],
    confidence: float,
) -> dict[str, Any]:
    result = qa_agreement(_outcomes(rows), confidence=confidence)
    return {
        "counts": {
            "pairs": sum(status_counts.values()),
            "by_status": dict(sorted(status_counts.items())),
            "reviewed": result.overall.reviewed,
        },
        "categories": categories,
        "dimensions": dimensions,
        "confidence": confidence,
        "overall": _row(result.overall),
        "by_category": [_row(r) for r in result.by_category],
        "by_dimension": [_row(r) for r in result.by_dimension],
        "by_cell": [_row(r) for r in result.by_cell],
        "by_model": [_row(r) for r in result.by_model],
    }
