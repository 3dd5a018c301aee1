"""Versioned prompt templates. A prompt's version is its file name without ``.txt``.

Templates use :class:`string.Template` placeholders (``$name``) so the JSON
examples inside them need no escaping. A changed prompt is a new file
(``annotate_v2.txt``), never an edit of a released one: the version is stored
with every model annotation.

``annotate_v1``/``critic_v1`` name Mikels' eight emotions in their text; ``annotate_v2``/
``critic_v2`` list the labels of the image's taxonomy (``$emotions``, ``$count``,
``$taxonomy``, ``$example``). A backend without a ``prompt`` option uses v1 for a
Mikels dataset (as before taxonomies) and v2 for any other (:class:`PromptChoice`); a
prompt written for Mikels is refused for another taxonomy, never sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from core.triplets import PhraseTriplet
from core.vocabulary import EMOTIONS, MIKELS, Taxonomy
from ml.stages.triplets import merge_triplets
from ml.stages.types import (
    AnnotatorResult,
    BackendNotConfigured,
    CalibrationResult,
    StageError,
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

    @property
    def lists_labels(self) -> bool:
        """Whether the template takes the taxonomy's labels (``$emotions``) rather than naming Mikels' in its text."""
        return "emotions" in Template(self.text).get_identifiers()

    def check_taxonomy(self, taxonomy: Taxonomy) -> None:
        """Refuse (:class:`StageError`, not retried) a prompt that names Mikels' emotions for another taxonomy."""
        if not self.lists_labels and tuple(taxonomy.labels) != EMOTIONS:
            raise StageError(f"prompt {self.version} names Mikels' eight emotions; the dataset's taxonomy is "
                             f"{taxonomy.name!r} ({', '.join(taxonomy.labels)}): configure a prompt that lists "
                             f"the taxonomy's labels (annotate_v2, critic_v2) or leave the prompt option out")


_COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


def taxonomy_values(taxonomy: Taxonomy) -> dict[str, str]:
    """The taxonomy's ``$placeholders``: ``$emotions`` (comma-separated labels, in order),
    ``$count`` (their number in words), ``$taxonomy`` (its name) and ``$example`` (the
    distribution object of the answer form, every label at 0.0)."""
    n = len(taxonomy.labels)
    return {
        "emotions": ", ".join(taxonomy.labels),
        "count": _COUNT_WORDS[n] if n < len(_COUNT_WORDS) else str(n),
        "taxonomy": taxonomy.name.capitalize(),
        "example": json.dumps({label: 0.0 for label in taxonomy.labels}),
    }


class PromptChoice:
    """The prompt a backend sends for an image: the configured ``version`` for every
    taxonomy, or without one ``mikels_default`` for Mikels' eight and ``any_default``
    (which lists the labels) for any other taxonomy."""

    def __init__(self, version: str | None, *, mikels_default: str, any_default: str):
        self.fixed = load_prompt(version) if version else None
        self.mikels = self.fixed or load_prompt(mikels_default)
        self.any = self.fixed or load_prompt(any_default)

    @property
    def version(self) -> str:
        return self.fixed.version if self.fixed else f"{self.mikels.version} (Mikels) / {self.any.version}"

    def for_taxonomy(self, taxonomy: Taxonomy) -> Prompt:
        prompt = self.mikels if tuple(taxonomy.labels) == EMOTIONS else self.any
        prompt.check_taxonomy(taxonomy)
        return prompt


def render_annotate(prompt: Prompt, taxonomy: Taxonomy) -> str:
    """An annotator prompt's text for an image of ``taxonomy``."""
    prompt.check_taxonomy(taxonomy)
    return prompt.render(**taxonomy_values(taxonomy)) if prompt.lists_labels else prompt.text


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
    taxonomy: Taxonomy | None = None,
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
        **(taxonomy_values(taxonomy) if taxonomy is not None else {}),
    }


def render_critic(
    prompt: Prompt,
    results: Sequence[AnnotatorResult],
    calibration: CalibrationResult,
    triplets: Sequence[PhraseTriplet] | None,
    taxonomy: Taxonomy = MIKELS,
) -> tuple[tuple[PhraseTriplet, ...], str]:
    """The candidate triplets to judge (default: merged from ``results``) and the prompt text,
    for an image of ``taxonomy`` (default Mikels')."""
    candidates = tuple(triplets) if triplets is not None else merge_triplets(results, calibration)
    prompt.check_taxonomy(taxonomy)
    values = critic_prompt_values(results, calibration, candidates, taxonomy if prompt.lists_labels else None)
    return candidates, prompt.render(**values)
