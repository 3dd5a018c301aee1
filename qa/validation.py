"""Validation of a QA pair's values, shared by the importer, the API and the generation stage's
save: the same rules and the same words wherever a pair comes from (``docs/qa-jsonl.md``).

Text follows ``core.text``'s policy (no NUL, no unpaired surrogate; blank refused where a
value is required). No database access: the caller passes the dataset's configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.alignment import phrase_key
from core.text import TextPolicyError, check_text, is_blank
from qa.defaults import MULTIPLE_CHOICE, OPEN, QUESTION_TYPES, YES_NO
from qa.errors import InvalidPair
from qa.text import pair_content_hash

MAX_QUESTION = 2000
MAX_OPTION = 500
MAX_ANSWER = 5000
MAX_RATIONALE = 5000
MIN_OPTIONS, MAX_OPTIONS = 2, 8
YES_NO_WORDS = {"yes": "yes", "no": "no", "true": "yes", "false": "no"}


@dataclass(frozen=True)
class AxisConfig:
    """A category or dimension as validation sees it: its key and allowed question types."""

    key: str
    question_types: frozenset[str]


@dataclass(frozen=True)
class PairInput:
    category: str
    dimension: str
    question_type: str
    question: str
    options: tuple[str, ...] | None
    answer_index: int | None
    answer: str
    rationale: str
    content_hash: str


def _text(value: Any, field: str, *, limit: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    try:
        text = check_text(value, field=field)
    except TextPolicyError as exc:
        raise InvalidPair(field, exc.detail) from None
    if required and is_blank(text):
        raise InvalidPair(field, "must not be blank")
    if len(text) > limit:
        raise InvalidPair(field, f"is longer than {limit} characters")
    return text.strip()


def _axis(value: Any, field: str, axes: Mapping[str, AxisConfig]) -> AxisConfig:
    if not isinstance(value, str) or value not in axes:
        known = ", ".join(sorted(axes)) or "none configured"
        raise InvalidPair(field, f"unknown {field} {value!r}; this dataset has: {known}")
    return axes[value]


def _options(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not MIN_OPTIONS <= len(value) <= MAX_OPTIONS:
        raise InvalidPair("options", f"multiple choice needs a list of {MIN_OPTIONS} to {MAX_OPTIONS} option texts")
    options = tuple(_text(o, f"options[{i}]", limit=MAX_OPTION) for i, o in enumerate(value))
    seen: dict[str, int] = {}
    for i, option in enumerate(options):
        key = phrase_key(option)
        if key in seen:
            raise InvalidPair(f"options[{i}]", f"repeats option {seen[key]}")
        seen[key] = i
    return options


def _answer(question_type: str, value: Any, options: tuple[str, ...] | None) -> tuple[int | None, str]:
    if question_type == MULTIPLE_CHOICE:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(options or ()):
            raise InvalidPair(
                "answer", f"multiple choice: the index of the correct option, 0 to {len(options or ()) - 1}"
            )
        return value, ""
    if question_type == YES_NO:
        word = YES_NO_WORDS.get(value.strip().casefold()) if isinstance(value, str) else None
        if isinstance(value, bool):
            word = "yes" if value else "no"
        if word is None:
            raise InvalidPair("answer", 'yes/no: "yes" or "no"')
        return None, word
    return None, _text(value, "answer", limit=MAX_ANSWER)


def validate_pair(
    value: Mapping[str, Any], *, categories: Mapping[str, AxisConfig], dimensions: Mapping[str, AxisConfig]
) -> PairInput:
    """The checked values of one pair (keys ``category``, ``dimension``, ``type``,
    ``question``, ``options``, ``answer``, ``rationale``). Raises :class:`InvalidPair`."""
    if not isinstance(value, Mapping):
        raise InvalidPair("", "a pair is a JSON object")
    category = _axis(value.get("category"), "category", categories)
    dimension = _axis(value.get("dimension"), "dimension", dimensions)
    question_type = value.get("type")
    if question_type not in QUESTION_TYPES:
        raise InvalidPair("type", f"must be one of {', '.join(QUESTION_TYPES)}")
    for axis, name in ((category, "category"), (dimension, "dimension")):
        if question_type not in axis.question_types:
            raise InvalidPair("type", f"{name} {axis.key!r} does not allow {question_type} questions")
    question = _text(value.get("question"), "question", limit=MAX_QUESTION)
    options = None
    if question_type == MULTIPLE_CHOICE:
        options = _options(value.get("options"))
    elif value.get("options") not in (None, []):
        raise InvalidPair("options", f"only multiple choice has options, not {question_type}")
    answer_index, answer = _answer(question_type, value.get("answer"), options)
    rationale = _text(value.get("rationale"), "rationale", limit=MAX_RATIONALE, required=False)
    return PairInput(
        category=category.key,
        dimension=dimension.key,
        question_type=question_type,
        question=question,
        options=options,
        answer_index=answer_index,
        answer=answer,
        rationale=rationale,
        content_hash=pair_content_hash(question_type, question, options),
    )


def check_rating_value(value: Any, *, minimum: float, maximum: float, step: float) -> float:
    """``value`` as a float when it is a finite number within ``[minimum, maximum]`` on the
    scale's grid ``minimum + k * step``. Raises :class:`InvalidPair` (field ``value``)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != value
        or value in (float("inf"), float("-inf"))
    ):
        raise InvalidPair("value", "must be a finite number")
    value = float(value)
    if not minimum <= value <= maximum:
        raise InvalidPair("value", f"must be between {minimum:g} and {maximum:g}")
    k = (value - minimum) / step
    if abs(k - round(k)) > 1e-6:
        raise InvalidPair("value", f"must be on the scale's steps of {step:g} from {minimum:g}")
    return value


__all__: Sequence[str] = ("AxisConfig", "PairInput", "validate_pair", "check_rating_value", "OPEN")
