"""One Protocol per pipeline stage. Backends live in ``ml/stages/backends/<name>.py``.

A backend is constructed once per worker process from keyword options given in
settings (see ``ml/stages/registry.py``); construction loads weights from a local path
or prepares a client for an endpoint and raises
:class:`ml.stages.types.BackendNotConfigured` when something is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from core.alignment import PhraseVectors
from core.triplets import PhraseTriplet
from ml.stages.types import (
    AnnotatorResult,
    Box,
    CalibrationResult,
    CriticResult,
    Detection,
    ImageInput,
    Mask,
)


@runtime_checkable
class Annotator(Protocol):
    """A VLM that labels one image: triplets, CES distribution, rationale."""

    name: str

    def annotate(self, image: ImageInput) -> AnnotatorResult:
        """Raise :class:`ml.stages.types.StageError` on malformed, refused or truncated output."""
        ...


@runtime_checkable
class Calibrator(Protocol):
    def calibrate(
        self,
        image: ImageInput,
        results: Sequence[AnnotatorResult],
        temperatures: Mapping[str, float],
        classifier_distribution: Mapping[str, float] | None = None,
        vectors: PhraseVectors | None = None,
    ) -> CalibrationResult:
        """Apply per-model temperatures (1.0 = identity) and merge the annotators.

        ``classifier_distribution`` is the configured :class:`EmotionClassifier`'s
        answer for this image, blended into the merge when given. ``vectors``: the stored
        embeddings of the annotators' phrases, with which their agreement pairs triplets
        by meaning (:mod:`core.alignment`; by words without them).
        """
        ...


@runtime_checkable
class Critic(Protocol):
    def review(
        self,
        image: ImageInput,
        results: Sequence[AnnotatorResult],
        calibration: CalibrationResult,
        triplets: Sequence[PhraseTriplet] | None = None,
    ) -> CriticResult:
        """Judge every element of ``triplets`` (the candidates that will be stored;
        default: :func:`ml.stages.triplets.merge_triplets` of ``results``) and the label."""
        ...


@runtime_checkable
class Grounder(Protocol):
    def ground(
        self, images: Sequence[ImageInput], phrases: Sequence[Sequence[str]]
    ) -> list[list[Detection]]:
        """Batched: ``phrases[i]`` are grounded in ``images[i]``; one Detection per phrase."""
        ...


@runtime_checkable
class Segmenter(Protocol):
    def segment(
        self, images: Sequence[ImageInput], boxes: Sequence[Sequence[Box]]
    ) -> list[list[Mask]]:
        """Batched: one mask per box, each the size of its image."""
        ...

    def refine(
        self,
        image: ImageInput,
        box: Box | None,
        points: Sequence[tuple[float, float]],
        point_labels: Sequence[int],
    ) -> Mask:
        """Click-to-refine: positive (1) / negative (0) clicks, optional box.

        Reuses the cached image embedding when ``image.key`` was embedded before.
        """
        ...


@runtime_checkable
class DesEncoder(Protocol):
    def encode(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Return an ``(n, 1024)`` float32 array, one DES vector per image."""
        ...


@runtime_checkable
class EmotionClassifier(Protocol):
    """An image classifier over one taxonomy's labels (an EmoViT-style second opinion; Mikels'
    eight unless it says otherwise in ``labels``). The pipeline blends it only into images
    whose dataset has that taxonomy."""

    name: str

    def predict(self, images: Sequence[ImageInput]) -> list[dict[str, float]]:
        """One probability distribution over its labels per image."""
        ...


@runtime_checkable
class PhraseEmbedder(Protocol):
    """A sentence-embedding model for element phrases (all-MiniLM-L6-v2 by default).

    ``name`` keys the stored vectors (``annotations.PhraseEmbedding.model_name``): the web
    process reads them by that name and never loads the model.
    """

    name: str

    def embed(self, phrases: Sequence[str]) -> np.ndarray:
        """``(len(phrases), D)`` float32, one row of unit length per phrase (a dot product is the cosine)."""
        ...
