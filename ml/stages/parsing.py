"""Strict parsing of model answers into stage results (no Django).

Model output is untrusted. Anything that is not exactly what the prompt asked
for raises :class:`ml.stages.types.StageError` with the raw text and a reason that
says what was wrong; nothing is guessed, clipped or filled in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from core.triplets import PhraseTriplet
from core.vocabulary import EMOTIONS, ROLES
from ml.stages.types import (
    AnnotatorResult,
    CriticResult,
    ElementVerdict,
    StageError,
    Usage,
)

SUM_TOLERANCE = 1e-3
MAX_PHRASE_CHARS = 300
VERDICTS: tuple[str, ...] = ("ok", "doubtful", "wrong")

_STRING = {"type": "string"}


def annotation_schema(labels: Sequence[str] = EMOTIONS) -> dict[str, Any]:
    """JSON schema of an annotator answer over the taxonomy ``labels`` (OpenAI structured outputs, strict mode)."""
    return {
        "type": "object",
        "properties": {
            "triplets": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {role: _STRING for role in ROLES},
                    "required": list(ROLES),
                    "additionalProperties": False,
                },
            },
            "distribution": {
                "type": "object",
                "properties": {e: {"type": "number"} for e in labels},
                "required": list(labels),
                "additionalProperties": False,
            },
            "rationale": _STRING,
        },
        "required": ["triplets", "distribution", "rationale"],
        "additionalProperties": False,
    }


def critic_schema(labels: Sequence[str] = EMOTIONS) -> dict[str, Any]:
    """JSON schema of a critic answer, its suggested label one of ``labels`` (OpenAI structured outputs, strict mode)."""
    return {
        "type": "object",
        "properties": {
            "reasoning": _STRING,
            "elements": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "triplet_index": {"type": "integer"},
                        "role": {"type": "string", "enum": list(ROLES)},
                        "verdict": {"type": "string", "enum": list(VERDICTS)},
                        "reasoning": _STRING,
                    },
                    "required": ["triplet_index", "role", "verdict", "reasoning"],
                    "additionalProperties": False,
                },
            },
            "label_verdict": {"type": "string", "enum": list(VERDICTS)},
            "label_reasoning": _STRING,
            "suggested_label": {"type": ["string", "null"], "enum": [*labels, None]},
        },
        "required": ["reasoning", "elements", "label_verdict", "label_reasoning", "suggested_label"],
        "additionalProperties": False,
    }


ANNOTATION_SCHEMA: dict[str, Any] = annotation_schema(EMOTIONS)
"""The annotator schema for Mikels' eight (the default taxonomy)."""

CRITIC_SCHEMA: dict[str, Any] = critic_schema(EMOTIONS)
"""The critic schema for Mikels' eight (the default taxonomy)."""

_FENCED = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)


def check_completion(content: str | None, *, finish_reason: str | None, refusal: str | None = None) -> str:
    """Reject refusals, truncated and empty answers before parsing; return the text."""
    raw = content or ""
    if refusal:
        raise StageError(f"the model refused: {refusal}", raw_output=raw or refusal)
    if finish_reason == "length":
        raise StageError("the answer was truncated (finish_reason=length); raise max_tokens", raw_output=raw)
    if finish_reason == "content_filter":
        raise StageError("the answer was withheld by the endpoint's content filter", raw_output=raw)
    if not raw.strip():
        raise StageError(f"the model returned an empty answer (finish_reason={finish_reason})", raw_output=raw)
    return raw


def load_json_object(raw: str) -> dict[str, Any]:
    """Parse the whole answer as one JSON object (one surrounding ```json fence allowed)."""
    text = raw.strip()
    fenced = _FENCED.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StageError(f"malformed JSON: {exc}", raw_output=raw) from exc
    if not isinstance(value, dict):
        raise StageError(f"expected a JSON object, got {type(value).__name__}", raw_output=raw)
    return value


def _check_keys(obj: Mapping[str, Any], required: Sequence[str], where: str, raw: str) -> None:
    missing = [k for k in required if k not in obj]
    if missing:
        raise StageError(f"{where}: missing field(s) {', '.join(missing)}", raw_output=raw)
    extra = sorted(set(obj) - set(required))
    if extra:
        raise StageError(f"{where}: unexpected field(s) {', '.join(extra)}", raw_output=raw)


def _text(value: Any, where: str, raw: str, *, max_chars: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StageError(f"{where}: expected a non-empty string, got {value!r}", raw_output=raw)
    text = value.strip()
    if max_chars is not None and len(text) > max_chars:
        raise StageError(f"{where}: longer than {max_chars} characters", raw_output=raw)
    return text


def parse_distribution(value: Any, raw: str, where: str = "distribution", labels: Sequence[str] = EMOTIONS) -> dict[str, float]:
    """Exactly the taxonomy's ``labels`` (default Mikels' eight), finite numbers in [0, 1] summing to 1 (±1e-3)."""
    if not isinstance(value, dict):
        raise StageError(f"{where}: expected an object of {len(labels)} emotions, got {type(value).__name__}", raw_output=raw)
    unknown = sorted(set(value) - set(labels))
    if unknown:
        raise StageError(f"{where}: unknown emotion(s) {', '.join(map(repr, unknown))}", raw_output=raw)
    missing = [e for e in labels if e not in value]
    if missing:
        raise StageError(f"{where}: missing emotion(s) {', '.join(missing)}", raw_output=raw)
    out: dict[str, float] = {}
    for emotion in labels:
        p = value[emotion]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p):
            raise StageError(f"{where}: {emotion} is not a number ({p!r})", raw_output=raw)
        if not 0.0 <= p <= 1.0:
            raise StageError(f"{where}: {emotion}={p} is outside [0, 1]", raw_output=raw)
        out[emotion] = float(p)
    total = sum(out.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise StageError(f"{where}: probabilities sum to {total:.6f}, not 1 (±{SUM_TOLERANCE})", raw_output=raw)
    return out


def parse_annotation(raw: str, *, model: str, prompt_version: str, usage: Usage | None = None,
                     labels: Sequence[str] = EMOTIONS) -> AnnotatorResult:
    """Validate an annotator answer (see :func:`annotation_schema`) over the taxonomy's ``labels``."""
    obj = load_json_object(raw)
    _check_keys(obj, ("triplets", "distribution", "rationale"), "answer", raw)
    items = obj["triplets"]
    if not isinstance(items, list) or not items:
        raise StageError("triplets: expected a non-empty list", raw_output=raw)
    triplets = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise StageError(f"triplets[{i}]: expected an object", raw_output=raw)
        _check_keys(item, ROLES, f"triplets[{i}]", raw)
        phrases = {r: _text(item[r], f"triplets[{i}].{r}", raw, max_chars=MAX_PHRASE_CHARS) for r in ROLES}
        triplets.append(PhraseTriplet(**phrases))
    return AnnotatorResult(
        model=model,
        prompt_version=prompt_version,
        triplets=tuple(triplets),
        distribution=parse_distribution(obj["distribution"], raw, labels=labels),
        rationale=_text(obj["rationale"], "rationale", raw),
        raw_output=raw,
        usage=usage or Usage(),
    )


def _verdict(value: Any, where: str, raw: str) -> str:
    if value not in VERDICTS:
        raise StageError(f"{where}: verdict must be one of {', '.join(VERDICTS)}, got {value!r}", raw_output=raw)
    return value


def parse_critic(
    raw: str,
    *,
    model: str,
    prompt_version: str,
    triplets: Sequence[PhraseTriplet],
    usage: Usage | None = None,
    labels: Sequence[str] = EMOTIONS,
) -> CriticResult:
    """Validate a critic answer: one verdict for every element of every candidate triplet;
    a suggested label is one of the taxonomy's ``labels``."""
    obj = load_json_object(raw)
    required = ("reasoning", "elements", "label_verdict", "label_reasoning", "suggested_label")
    _check_keys(obj, required, "answer", raw)
    items = obj["elements"]
    if not isinstance(items, list):
        raise StageError("elements: expected a list", raw_output=raw)
    seen: dict[tuple[int, str], ElementVerdict] = {}
    for i, item in enumerate(items):
        where = f"elements[{i}]"
        if not isinstance(item, dict):
            raise StageError(f"{where}: expected an object", raw_output=raw)
        _check_keys(item, ("triplet_index", "role", "verdict", "reasoning"), where, raw)
        index, role = item["triplet_index"], item["role"]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(triplets):
            raise StageError(f"{where}: triplet_index {index!r} is not in 0..{len(triplets) - 1}", raw_output=raw)
        if role not in ROLES:
            raise StageError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}", raw_output=raw)
        if (index, role) in seen:
            raise StageError(f"{where}: a second verdict for triplet {index} {role}", raw_output=raw)
        seen[(index, role)] = ElementVerdict(
            triplet_index=index,
            role=role,
            verdict=_verdict(item["verdict"], where, raw),
            reasoning=_text(item["reasoning"], f"{where}.reasoning", raw),
        )
    missing = [f"{t} {r}" for t in range(len(triplets)) for r in ROLES if (t, r) not in seen]
    if missing:
        raise StageError(f"elements: no verdict for {', '.join(missing)}", raw_output=raw)
    suggested = obj["suggested_label"]
    if suggested is not None and suggested not in labels:
        raise StageError(f"suggested_label: unknown emotion {suggested!r}", raw_output=raw)
    return CriticResult(
        model=model,
        prompt_version=prompt_version,
        elements=tuple(seen[(t, r)] for t in range(len(triplets)) for r in ROLES),
        label_verdict=_verdict(obj["label_verdict"], "label_verdict", raw),
        label_reasoning=_text(obj["label_reasoning"], "label_reasoning", raw),
        reasoning=_text(obj["reasoning"], "reasoning", raw),
        raw_output=raw,
        suggested_label=suggested,
        usage=usage or Usage(),
    )
