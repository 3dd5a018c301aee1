"""The QA generation stage without Django: plan, prompts' values, schemas, strict parsing,
option shuffling and the blind self-check.

One image gets ``count`` question *slots* (:func:`plan_slots`): each names a task category,
an analysis dimension and a question type both allow, balanced over the categories and the
dimensions (within an image, and across images through a per-image rotation). A generator
(:class:`QAGenerator`) writes one pair per slot from the image and its B-A-S/CES context;
:func:`parse_generation` keeps the pairs that are exactly what was asked and says why it
dropped the others. :func:`shuffle_options` reorders a multiple-choice pair's options with a
seeded generator (the model tends to put the right answer first). A critic
(:class:`QAAnswerer`) then answers every question *blind* (it never sees the answers);
:func:`critic_agrees` compares: a pair whose answer the critic does not reproduce goes to the
front of the review queue. Open questions are not compared (``None``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from core.alignment import phrase_key
from core.text import is_blank, text_problem
from core.triplets import PhraseTriplet
from core.vocabulary import ROLES
from ml.stages.parsing import check_completion, load_json_object
from ml.stages.types import ImageInput, StageError, Usage

MULTIPLE_CHOICE, YES_NO, OPEN = "multiple_choice", "yes_no", "open"
QUESTION_TYPES = (MULTIPLE_CHOICE, YES_NO, OPEN)
MIN_OPTIONS, MAX_OPTIONS = 3, 6
MAX_QUESTION_CHARS, MAX_TEXT_CHARS = 2000, 5000


@dataclass(frozen=True)
class AxisSpec:
    """A task category or analysis dimension as the prompt and the plan see it."""

    key: str
    name: str
    description: str
    question_types: tuple[str, ...]


@dataclass(frozen=True)
class QASlot:
    index: int
    category: str
    dimension: str
    question_type: str


@dataclass(frozen=True)
class QAContext:
    """What the generator knows besides the pixels: the image's B-A-S triplets (in order, the
    indices a pair's ``elements`` use), its CES label and rationale, the emotion words."""

    triplets: tuple[PhraseTriplet, ...]
    label: str | None
    rationale: str
    emotions: tuple[str, ...]


@dataclass(frozen=True)
class GeneratedPair:
    slot: QASlot
    question: str
    options: tuple[str, ...] | None
    answer_index: int | None
    answer: str  # yes/no: "yes" or "no"; open: the text; multiple choice: ""
    rationale: str
    elements: tuple[tuple[int, str], ...]  # (triplet index, role)


@dataclass(frozen=True)
class QAGenerationResult:
    model: str
    prompt_version: str
    pairs: tuple[GeneratedPair, ...]
    dropped: tuple[str, ...]  # why each left-out pair was left out
    raw_output: str
    usage: Usage = Usage()


@dataclass(frozen=True)
class BlindAnswer:
    index: int  # the pair's position in the list the critic was given
    option: int | None  # multiple choice: the option it chose
    answer: str


@dataclass(frozen=True)
class QACriticResult:
    model: str
    prompt_version: str
    answers: tuple[BlindAnswer, ...]
    raw_output: str
    usage: Usage = Usage()


@runtime_checkable
class QAGenerator(Protocol):
    name: str
    pairs_per_image: int

    def generate(
        self, image: ImageInput, context: QAContext, slots: Sequence[QASlot], axes: Sequence[AxisSpec]
    ) -> QAGenerationResult:
        """One pair per slot (some may be dropped, with reasons); :class:`StageError` when
        the answer is unusable as a whole."""
        ...


@runtime_checkable
class QAAnswerer(Protocol):
    name: str

    def answer(self, image: ImageInput, pairs: Sequence[GeneratedPair]) -> QACriticResult:
        """Answer every question blind: the prompt carries questions and options, never answers."""
        ...


def seeded_random(*parts: object) -> random.Random:
    """A generator seeded by the SHA-256 of ``parts``: the same everywhere, every run."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def plan_slots(
    categories: Sequence[AxisSpec], dimensions: Sequence[AxisSpec], count: int, *, seed: object
) -> list[QASlot]:
    """``count`` slots balanced over the categories and the dimensions.

    Slot ``k`` takes category ``(a + k) mod C``; its dimension is, among those sharing a
    question type with the category, the one used least so far in this image (ties: the
    next in a rotation starting at ``b``); its type, among the types both allow, the one used
    least so far (ties: rotating from ``c``). ``a``, ``b`` and ``c`` come from ``seed`` (the
    image), so across images every category, dimension and type is drawn as often as the
    allowed types permit. Raises ``ValueError`` when a category shares no type with any
    dimension."""
    if not categories or not dimensions:
        raise ValueError("QA generation needs at least one active category and one active dimension")
    rng = seeded_random("plan", seed)
    a, b, c = rng.randrange(len(categories)), rng.randrange(len(dimensions)), rng.randrange(len(QUESTION_TYPES))
    used_dimensions = dict.fromkeys((d.key for d in dimensions), 0)
    used_types = dict.fromkeys(QUESTION_TYPES, 0)
    slots = []
    for k in range(count):
        category = categories[(a + k) % len(categories)]
        rotation = [dimensions[(b + k + step) % len(dimensions)] for step in range(len(dimensions))]
        feasible = [d for d in rotation if set(d.question_types) & set(category.question_types)]
        if not feasible:
            raise ValueError(f"category {category.key!r} shares no question type with any dimension")
        dimension = min(feasible, key=lambda d: used_dimensions[d.key])
        types = [QUESTION_TYPES[(c + k + step) % len(QUESTION_TYPES)] for step in range(len(QUESTION_TYPES))]
        common = [t for t in types if t in category.question_types and t in dimension.question_types]
        question_type = min(common, key=lambda t: used_types[t])
        used_dimensions[dimension.key] += 1
        used_types[question_type] += 1
        slots.append(QASlot(index=k, category=category.key, dimension=dimension.key, question_type=question_type))
    return slots


def shuffle_options(pair: GeneratedPair, *, seed: object) -> GeneratedPair:
    """``pair`` with its options in a seeded random order and the answer index following
    the right option; other question types unchanged."""
    if pair.options is None or pair.answer_index is None:
        return pair
    order = list(range(len(pair.options)))
    seeded_random("shuffle", seed, pair.slot.index).shuffle(order)
    return replace(pair, options=tuple(pair.options[i] for i in order), answer_index=order.index(pair.answer_index))


def critic_agrees(pair: GeneratedPair, answer: BlindAnswer | None) -> bool | None:
    """Whether the critic's blind answer reproduces the pair's: the same option, the same
    yes/no; ``None`` for open questions and when the critic gave no answer."""
    if answer is None or pair.slot.question_type == OPEN:
        return None
    if pair.slot.question_type == MULTIPLE_CHOICE:
        return answer.option == pair.answer_index
    return answer.answer.strip().casefold() == pair.answer


# --- prompts' values -------------------------------------------------------------------------


def context_text(context: QAContext) -> str:
    lines = [
        f"{i}. background: {t.background} | attribute: {t.attribute} | subject: {t.subject}"
        for i, t in enumerate(context.triplets)
    ]
    return "\n".join(lines) or "(none)"


def axes_text(axes: Sequence[AxisSpec]) -> str:
    return "\n".join(f"- {a.key}: {a.name}. {a.description}" for a in axes)


def slots_text(slots: Sequence[QASlot]) -> str:
    return "\n".join(
        f"{s.index}. category {s.category}, dimension {s.dimension}, type {s.question_type}" for s in slots
    )


def questions_text(pairs: Sequence[GeneratedPair]) -> str:
    """The questions for the blind critic: text and options, never an answer."""
    lines = []
    for i, pair in enumerate(pairs):
        line = f"{i}. [{pair.slot.question_type}] {pair.question}"
        if pair.options:
            line += " Options: " + " | ".join(f"{j}) {o}" for j, o in enumerate(pair.options))
        lines.append(line)
    return "\n".join(lines)


# --- schemas and parsing ----------------------------------------------------------------------

_STRING = {"type": "string"}
_INT = {"type": "integer"}
GENERATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "pairs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "slot": _INT,
                    "question": _STRING,
                    "options": {"type": "array", "items": _STRING},
                    "correct_option": _INT,
                    "answer": _STRING,
                    "rationale": _STRING,
                    "elements": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"triplet": _INT, "role": {"type": "string", "enum": list(ROLES)}},
                            "required": ["triplet", "role"],
                            "additionalProperties": False,
                        },
                    },
                },
                "required": ["slot", "question", "options", "correct_option", "answer", "rationale", "elements"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["pairs"],
    "additionalProperties": False,
}
"""JSON schema of a generator answer (strict structured outputs: every key present; a
question that is not multiple choice has ``options`` ``[]`` and ``correct_option`` -1)."""

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"index": _INT, "option": _INT, "answer": _STRING},
                "required": ["index", "option", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["answers"],
    "additionalProperties": False,
}
"""JSON schema of the blind critic's answers (``option`` -1 for questions without options)."""


class _Drop(Exception):
    pass


def _text(value: Any, where: str, limit: int, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise _Drop(f"{where} is not text")
    problem = text_problem(value)
    if problem:
        raise _Drop(f"{where}: {problem}")
    if required and is_blank(value):
        raise _Drop(f"{where} is blank")
    if len(value) > limit:
        raise _Drop(f"{where} is longer than {limit} characters")
    return value.strip()


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pair(item: Any, slot: QASlot, context: QAContext) -> GeneratedPair:
    if not isinstance(item, dict):
        raise _Drop("not an object")
    question = _text(item.get("question"), "question", MAX_QUESTION_CHARS)
    rationale = _text(item.get("rationale", ""), "rationale", MAX_TEXT_CHARS, required=False)
    options, answer_index, answer = None, None, ""
    raw_options, correct = item.get("options"), item.get("correct_option")
    if slot.question_type == MULTIPLE_CHOICE:
        if not isinstance(raw_options, list) or not MIN_OPTIONS <= len(raw_options) <= MAX_OPTIONS:
            raise _Drop(f"multiple choice needs {MIN_OPTIONS} to {MAX_OPTIONS} options")
        options = tuple(_text(o, f"options[{i}]", 500) for i, o in enumerate(raw_options))
        if len({phrase_key(o) for o in options}) != len(options):
            raise _Drop("options repeat")
        if not _int(correct) or not 0 <= correct < len(options):
            raise _Drop(f"correct_option {correct!r} is not an option index")
        answer_index = correct
    else:
        if raw_options not in (None, []) or correct not in (None, -1):
            raise _Drop(f"a {slot.question_type} question has no options")
        answer = _text(item.get("answer"), "answer", MAX_TEXT_CHARS)
        if slot.question_type == YES_NO:
            answer = answer.casefold()
            if answer not in ("yes", "no"):
                raise _Drop(f"yes/no answer {answer!r}")
    elements = []
    for ref in item.get("elements") or ():
        if (
            not isinstance(ref, dict)
            or not _int(ref.get("triplet"))
            or ref.get("role") not in ROLES
            or not 0 <= ref["triplet"] < len(context.triplets)
        ):
            raise _Drop(f"element {ref!r} is not one of the image's triplets' elements")
        elements.append((ref["triplet"], ref["role"]))
    return GeneratedPair(
        slot=slot,
        question=question,
        options=options,
        answer_index=answer_index,
        answer=answer,
        rationale=rationale,
        elements=tuple(sorted(set(elements))),
    )


def parse_generation(
    raw: str,
    *,
    model: str,
    prompt_version: str,
    slots: Sequence[QASlot],
    context: QAContext,
    usage: Usage | None = None,
) -> QAGenerationResult:
    """The pairs of a generator answer, one per slot at most. A pair that is not what its
    slot asked for is dropped with its reason; :class:`StageError` when none is left."""
    data = load_json_object(raw)
    items = data.get("pairs")
    if not isinstance(items, list):
        raise StageError("the answer has no 'pairs' list", raw_output=raw)
    by_index = {slot.index: slot for slot in slots}
    pairs: list[GeneratedPair] = []
    dropped: list[str] = []
    seen: set[int] = set()
    for i, item in enumerate(items):
        slot_index = item.get("slot") if isinstance(item, dict) else None
        if not _int(slot_index) or slot_index not in by_index:
            dropped.append(f"pairs[{i}]: slot {slot_index!r} was not asked for")
            continue
        if slot_index in seen:
            dropped.append(f"pairs[{i}]: a second pair for slot {slot_index}")
            continue
        seen.add(slot_index)
        try:
            pairs.append(_pair(item, by_index[slot_index], context))
        except _Drop as exc:
            dropped.append(f"pairs[{i}] (slot {slot_index}): {exc}")
    dropped.extend(f"slot {s.index}: no pair" for s in slots if s.index not in seen)
    if not pairs:
        raise StageError("no usable QA pair in the answer: " + "; ".join(dropped[:5]), raw_output=raw)
    return QAGenerationResult(
        model=model,
        prompt_version=prompt_version,
        pairs=tuple(pairs),
        dropped=tuple(dropped),
        raw_output=raw,
        usage=usage or Usage(),
    )


def parse_answers(
    raw: str, *, model: str, prompt_version: str, count: int, usage: Usage | None = None
) -> QACriticResult:
    """The blind critic's answers; one per question index at most (the first counts).
    A malformed entry raises :class:`StageError`: a self-check with holes is not a check."""
    data = load_json_object(raw)
    items = data.get("answers")
    if not isinstance(items, list):
        raise StageError("the answer has no 'answers' list", raw_output=raw)
    answers: dict[int, BlindAnswer] = {}
    for i, item in enumerate(items):
        if (
            not isinstance(item, dict)
            or not _int(item.get("index"))
            or not 0 <= item["index"] < count
            or not _int(item.get("option"))
            or not isinstance(item.get("answer"), str)
        ):
            raise StageError(f"answers[{i}] is not {{index, option, answer}} for a question asked", raw_output=raw)
        option = item["option"] if item["option"] >= 0 else None
        answers.setdefault(item["index"], BlindAnswer(index=item["index"], option=option, answer=item["answer"]))
    return QACriticResult(
        model=model,
        prompt_version=prompt_version,
        answers=tuple(answers.values()),
        raw_output=raw,
        usage=usage or Usage(),
    )


def render_values(context: QAContext, slots: Sequence[QASlot], axes: Sequence[AxisSpec]) -> dict[str, str]:
    """The ``$placeholders`` of a generation prompt."""
    return {
        "triplets": context_text(context),
        "label": context.label or "(none)",
        "rationale": context.rationale or "(none)",
        "emotions": ", ".join(context.emotions),
        "axes": axes_text(axes),
        "slots": slots_text(slots),
        "count": str(len(slots)),
    }


__all__ = [
    "ANSWER_SCHEMA",
    "GENERATION_SCHEMA",
    "AxisSpec",
    "BlindAnswer",
    "GeneratedPair",
    "QAAnswerer",
    "QAContext",
    "QACriticResult",
    "QAGenerationResult",
    "QAGenerator",
    "QASlot",
    "check_completion",
    "critic_agrees",
    "parse_answers",
    "parse_generation",
    "plan_slots",
    "questions_text",
    "render_values",
    "shuffle_options",
]
