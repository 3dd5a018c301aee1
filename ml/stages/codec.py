"""JSON round-trip of stage results, so tasks can store them and hand them on (no Django).

``dump`` gives plain JSON-able dicts; ``load_*`` rebuild the frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from core.priority import AnnotatorAgreement
from core.triplets import PhraseTriplet
from ml.stages.types import (
    AnnotatorResult,
    Box,
    CalibrationResult,
    CriticResult,
    ElementVerdict,
    GroundedElement,
    GroundedTriplet,
    Mask,
    Usage,
)


def dump(obj: Any) -> Any:
    """A dataclass (or a list of them) as JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: dump(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): dump(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [dump(v) for v in obj]
    return obj


def load_usage(d: Mapping[str, Any] | None) -> Usage:
    return Usage(**d) if d else Usage()


def load_annotator_result(d: Mapping[str, Any]) -> AnnotatorResult:
    return AnnotatorResult(
        model=d["model"],
        prompt_version=d["prompt_version"],
        triplets=tuple(PhraseTriplet(**t) for t in d["triplets"]),
        distribution=dict(d["distribution"]),
        rationale=d["rationale"],
        raw_output=d["raw_output"],
        usage=load_usage(d.get("usage")),
    )


def load_calibration(d: Mapping[str, Any]) -> CalibrationResult:
    agreement = d.get("agreement")
    return CalibrationResult(
        raw={k: dict(v) for k, v in d["raw"].items()},
        calibrated={k: dict(v) for k, v in d["calibrated"].items()},
        merged=dict(d["merged"]),
        label=d["label"],
        confidence=d["confidence"],
        agreement=AnnotatorAgreement(**agreement) if agreement else None,
        classifier=dict(d["classifier"]) if d.get("classifier") is not None else None,
    )


def load_critic(d: Mapping[str, Any]) -> CriticResult:
    return CriticResult(
        model=d["model"],
        prompt_version=d["prompt_version"],
        elements=tuple(ElementVerdict(**e) for e in d["elements"]),
        label_verdict=d["label_verdict"],
        label_reasoning=d["label_reasoning"],
        reasoning=d["reasoning"],
        raw_output=d["raw_output"],
        suggested_label=d.get("suggested_label"),
        usage=load_usage(d.get("usage")),
    )


def load_triplets(items: list[Mapping[str, Any]]) -> tuple[PhraseTriplet, ...]:
    return tuple(PhraseTriplet(**t) for t in items)


def load_grounded_triplet(d: Mapping[str, Any]) -> GroundedTriplet:
    elements = []
    for e in d["elements"]:
        box = Box(**e["box"]) if e.get("box") else None
        mask = Mask(rle=dict(e["mask"]["rle"]), score=e["mask"]["score"]) if e.get("mask") else None
        elements.append(GroundedElement(role=e["role"], phrase=e["phrase"], box=box, mask=mask))
    return GroundedTriplet(elements=tuple(elements))
