"""How reviewers received generated QA pairs: acceptance rate and the generating model's
answer accuracy against the human answer, per task category and analysis dimension
(no Django).

Each reviewed pair is one :class:`QaOutcome`. A pair counts as *accepted* when the
reviewer kept it (as generated or after an edit) and *rejected* otherwise. Its model
answer is *scored* when a human answer exists to compare it with: an accepted pair's final
answer (the model's, or the edited one), or a rejection for a wrong answer, which marks
the model's answer wrong. A pair rejected for another reason (ambiguous, not about the
image, ...) says nothing about the answer and is not scored. The caller decides how two
answers compare (option letters, yes/no, normalised open text) and passes the verdict.

Rates carry a Wilson score interval (better than the normal approximation near 0 and 1 and
for small counts; Wilson 1927), computed by scipy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from scipy import stats

__all__ = ["ACCEPTED", "DECISIONS", "EDITED", "REJECTED", "QaAgreement", "QaOutcome", "QaRate", "QaRow", "qa_agreement"]

ACCEPTED, EDITED, REJECTED = "accepted", "edited", "rejected"
DECISIONS = (ACCEPTED, EDITED, REJECTED)
ALL = ""  # the category or dimension of a row that pools all of them


@dataclass(frozen=True)
class QaOutcome:
    """One reviewed QA pair.

    ``model_correct`` is whether the generating model's answer matches the human answer,
    ``None`` when there is no human answer to compare it with (see the module docstring).
    """

    category: str
    dimension: str
    decision: str
    model_correct: bool | None

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {self.decision!r}")


@dataclass(frozen=True)
class QaRate:
    """``successes`` of ``trials`` with a Wilson interval; ``rate`` etc. are ``None`` at 0 trials."""

    successes: int
    trials: int
    rate: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, successes: int, trials: int, confidence: float) -> QaRate:
        if trials == 0:
            return cls(successes, 0, None, None, None)
        ci = stats.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
        return cls(successes, trials, successes / trials, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class QaRow:
    """One category x dimension cell (``""`` for "all" on either side)."""

    category: str
    dimension: str
    reviewed: int
    accepted: int  # as generated
    edited: int
    rejected: int
    acceptance: QaRate  # (accepted + edited) / reviewed
    accuracy: QaRate  # model answers matching the human answer / scored pairs


@dataclass(frozen=True)
class QaAgreement:
    """All pairs (``overall``), each category over all dimensions, each dimension over all
    categories, and each category x dimension cell present in the data, in sorted order."""

    overall: QaRow
    by_category: list[QaRow]
    by_dimension: list[QaRow]
    by_cell: list[QaRow]
    confidence: float


def _row(category: str, dimension: str, outcomes: list[QaOutcome], confidence: float) -> QaRow:
    counts = {d: 0 for d in DECISIONS}
    correct = scored = 0
    for o in outcomes:
        counts[o.decision] += 1
        if o.model_correct is not None:
            scored += 1
            correct += bool(o.model_correct)
    reviewed = len(outcomes)
    kept = counts[ACCEPTED] + counts[EDITED]
    return QaRow(
        category,
        dimension,
        reviewed,
        counts[ACCEPTED],
        counts[EDITED],
        counts[REJECTED],
        QaRate.of(kept, reviewed, confidence),
        QaRate.of(correct, scored, confidence),
    )


def qa_agreement(outcomes: Iterable[QaOutcome], *, confidence: float = 0.95) -> QaAgreement:
    """Acceptance rate and model answer accuracy of reviewed QA pairs, overall, per category,
    per dimension and per category x dimension (one pass over ``outcomes``)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    everything: list[QaOutcome] = []
    by_cat: dict[str, list[QaOutcome]] = defaultdict(list)
    by_dim: dict[str, list[QaOutcome]] = defaultdict(list)
    by_cell: dict[tuple[str, str], list[QaOutcome]] = defaultdict(list)
    for o in outcomes:
        everything.append(o)
        by_cat[o.category].append(o)
        by_dim[o.dimension].append(o)
        by_cell[o.category, o.dimension].append(o)
    return QaAgreement(
        _row(ALL, ALL, everything, confidence),
        [_row(c, ALL, by_cat[c], confidence) for c in sorted(by_cat)],
        [_row(ALL, d, by_dim[d], confidence) for d in sorted(by_dim)],
        [_row(c, d, by_cell[c, d], confidence) for c, d in sorted(by_cell)],
        confidence,
    )
