"""Versioned prompt templates. A prompt's version is its file name without ``.txt``.

Templates use :class:`string.Template` placeholders (``$name``) so the JSON
examples inside them need no escaping. A changed prompt is a new file
(``annotate_v2.txt``), never an edit of a released one: the version is stored
with every model annotation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from core.triplets import PhraseTriplet
from ml.stages.triplets import merge_triplets
from ml.stages.types import (
    AnnotatorResult,
    BackendNotConfigured,
    CalibrationResult,
)

PROMPT_DIR = Path(__file__).resolve().parent
_VERSION = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class Prompt:
    version: str
    text: str

    def render(self, **values: str) -> str:
        """Substitute ``$name`` placeholders; a missing value raises ``KeyError``."""
        return Template(self.text).substitute(**values)


def load_prompt(version: str) -> Prompt:
    """Load ``ml/stages/prompts/<version>.txt``."""
    if not _VERSION.match(version):
        raise BackendNotConfigured(f"Prompt version {version!r} is not a valid name (lowercase letters, digits, _).")
    path = PROMPT_DIR / f"{version}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in PROMPT_DIR.glob("*.txt"))
        raise BackendNotConfigured(f"Prompt {version!r} not found at {path}; available: {', '.join(available)}.")
    return Prompt(version=version, text=path.read_text(encoding="utf-8").strip())


def critic_prompt_values(
    results: Sequence[AnnotatorResult],
    calibration: CalibrationResult,
    triplets: Sequence[PhraseTriplet],
) -> dict[str, str]:
    """The ``$placeholders`` of a critic prompt, as compact readable text."""
    lines = [f"{i}. background: {t.background} | attribute: {t.attribute} | subject: {t.subject}" for i, t in enumerate(triplets)]
    answers = [
        json.dumps(
            {
                "annotator": r.model,
                "triplets": [t.phrases() for t in r.triplets],
                "distribution": {k: round(v, 4) for k, v in r.distribution.items()},
                "rationale": r.rationale,
            },
            ensure_ascii=False,
        )
        for r in results
    ]
    return {
        "triplets": "\n".join(lines),
        "label": calibration.label,
        "confidence": f"{calibration.confidence:.3f}",
        "distribution": json.dumps({k: round(v, 4) for k, v in calibration.merged.items()}),
        "annotations": "\n".join(answers),
    }


def render_critic(
    prompt: Prompt,
    results: Sequence[AnnotatorResult],
    calibration: CalibrationResult,
    triplets: Sequence[PhraseTriplet] | None,
) -> tuple[tuple[PhraseTriplet, ...], str]:
    """The candidate triplets to judge (default: merged from ``results``) and the prompt text."""
    candidates = tuple(triplets) if triplets is not None else merge_triplets(results, calibration)
    return candidates, prompt.render(**critic_prompt_values(results, calibration, candidates))
