"""How reviewers received generated QA pairs: acceptance rate and the generating model's
answer accuracy against the human answer, per task category and analysis dimension
(no Django).

Each reviewed pair is one :class:`QaOutcome`. A pair counts as *accepted* when the
reviewer kept it (as generated or after an edit) and *rejected* otherwise. Its model
answer is *scored* when a human answer exists to compare it with: an accepted pair's final
answer (the model's, or the edited one), or a rejection for a wrong answer, which marks
the model's answer wrong. A pair rejected for another reason (ambiguous, not about the
image, ...) says nothing about the answer and is not scored. The critic's blind answer is
scored the same way against the human answer, where the pair has one. Answers compare by
:func:`answer_key`: the text of the correct option for multiple choice (so a reordering of
the options is no disagreement), ``yes``/``no``, or the normalised open answer (an open
answer reworded by the reviewer counts as a different answer).

Rates carry a Wilson score interval (better than the normal approximation near 0 and 1 and
for small counts; Wilson 1927), computed by scipy.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from scipy import stats

from core.alignment import phrase_key

__all__ = [
    "ACCEPTED",
    "DECISIONS",
    "EDITED",
    "REJECTED",
    "QaAgreement",
    "QaOutcome",
    "QaRate",
    "QaRow",
    "answer_key",
    "critic_answer_key",
    "qa_agreement",
]

ACCEPTED, EDITED, REJECTED = "accepted", "edited", "rejected"
DECISIONS = (ACCEPTED, EDITED, REJECTED)
ALL = ""  # the category, dimension or model of a row that pools all of them
MULTIPLE_CHOICE, YES_NO, OPEN = "multiple_choice", "yes_no", "open"
# Option texts and short answers repeat across pairs (emotion words, yes/no): normalise each once.
_key = lru_cache(maxsize=1 << 16)(phrase_key)


def answer_key(question_type: str, options: Sequence[str] | None, answer_index: int | None, answer: str) -> str | None:
    """What an answer is, comparably: the normalised text of the correct option (multiple
    choice), ``yes``/``no``, or the normalised open answer (:func:`core.alignment.phrase_key`).
    ``None`` when there is no answer (an index outside the options, empty text)."""
    if question_type == MULTIPLE_CHOICE:
        if answer_index is None or not options or not 0 <= answer_index < len(options):
            return None
        return _key(options[answer_index]) or None
    return _key(answer) or None


def critic_answer_key(question_type: str, options: Sequence[str] | None, critic_answer: str) -> str | None:
    """:func:`answer_key` of a critic's blind answer to the pair as generated: for multiple
    choice an option index (``"2"``) or letter (``"C"``) into ``options``, or the option's text."""
    text = (critic_answer or "").strip()
    if question_type != MULTIPLE_CHOICE:
        return _key(text) or None
    if not options or not text:
        return None
    if text.isdigit():
        return answer_key(question_type, options, int(text), "")
    if len(text) == 1 and text.isalpha():
        return answer_key(question_type, options, ord(text.upper()) - ord("A"), "")
    key = _key(text)
    return key if key in {_key(o) for o in options} else None


@dataclass(frozen=True)
class QaOutcome:
    """One reviewed QA pair.

    ``model_correct`` is whether the generating model's answer matches the human answer,
    ``None`` when there is no human answer to compare it with (see the module docstring);
    ``critic_correct`` the same for the critic's blind answer (``None`` also without one).
    ``reason`` is a rejection's reason; ``model`` the generating model.
    """

    category: str
    dimension: str
    decision: str
    model_correct: bool | None
    critic_correct: bool | None = None
    reason: str = ""
    model: str = ""

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
    """One category x dimension cell, or one generating model (``""`` for "all")."""

    category: str
    dimension: str
    reviewed: int
    accepted: int  # as generated
    edited: int
    rejected: int
    reasons: dict[str, int]  # rejections by reason
    acceptance: QaRate  # (accepted + edited) / reviewed
    accuracy: QaRate  # model answers matching the human answer / scored pairs
    critic_accuracy: QaRate  # critic's blind answers matching the human answer / scored pairs
    model: str = ""


@dataclass(frozen=True)
class QaAgreement:
    """All pairs (``overall``), each category over all dimensions, each dimension over all
    categories, each category x dimension cell present in the data and each generating
    model, in sorted order."""

    overall: QaRow
    by_category: list[QaRow]
    by_dimension: list[QaRow]
    by_cell: list[QaRow]
    by_model: list[QaRow]
    confidence: float


class _Tally:
    """Counts of one group of outcomes (memory per group, not per pair)."""

    def __init__(self) -> None:
        self.decisions: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.model = [0, 0]  # correct, scored
        self.critic = [0, 0]

    def add(self, decision: str, reason: str, model_correct: bool | None, critic_correct: bool | None, n: int) -> None:
        """Count ``n`` outcomes that share these values."""
        self.decisions[decision] += n
        if decision == REJECTED:
            self.reasons[reason or "unspecified"] += n
        for verdict, tally in ((model_correct, self.model), (critic_correct, self.critic)):
            if verdict is not None:
                tally[0] += n * bool(verdict)
                tally[1] += n

    def row(self, category: str, dimension: str, confidence: float, model: str = "") -> QaRow:
        d = self.decisions
        reviewed = sum(d.values())
        return QaRow(
            category,
            dimension,
            reviewed,
            d[ACCEPTED],
            d[EDITED],
            d[REJECTED],
            dict(sorted(self.reasons.items())),
            QaRate.of(d[ACCEPTED] + d[EDITED], reviewed, confidence),
            QaRate.of(*self.model, confidence),
            QaRate.of(*self.critic, confidence),
            model,
        )


def qa_agreement(outcomes: Iterable[QaOutcome], *, confidence: float = 0.95) -> QaAgreement:
    """Acceptance rate and model (and critic) answer accuracy of reviewed QA pairs, overall,
    per category, per dimension, per category x dimension and per generating model (one
    pass over ``outcomes``, which may be a generator; memory grows with the groups only)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    overall = _Tally()
    by_cat: dict[str, _Tally] = defaultdict(_Tally)
    by_dim: dict[str, _Tally] = defaultdict(_Tally)
    by_cell: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    by_model: dict[str, _Tally] = defaultdict(_Tally)
    # One dict increment per pair; the groups are then filled from the distinct combinations.
    combinations = Counter(
        (o.category, o.dimension, o.model, o.decision, o.reason, o.model_correct, o.critic_correct) for o in outcomes
    )
    for (category, dimension, model, *values), n in combinations.items():
        for tally in (overall, by_cat[category], by_dim[dimension], by_cell[category, dimension], by_model[model]):
            tally.add(*values, n)
    return QaAgreement(
        overall.row(ALL, ALL, confidence),
        [by_cat[c].row(c, ALL, confidence) for c in sorted(by_cat)],
        [by_dim[d].row(ALL, d, confidence) for d in sorted(by_dim)],
        [by_cell[c, d].row(c, d, confidence) for c, d in sorted(by_cell)],
        [by_model[m].row(ALL, ALL, confidence, model=m) for m in sorted(by_model)],
        confidence,
    )
