"""Deterministic stand-ins for the stage protocols, for orchestration tests.

The backends themselves are tested with tiny real models; these fakes make the
pipeline's bookkeeping (which phrase got which box, which box which mask)
checkable by eye.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from core.triplets import PhraseTriplet
from core.vocabulary import DES_DIM, EMOTIONS
from ml.stages.types import (
    AnnotatorResult,
    BackendNotConfigured,
    Box,
    Detection,
    ImageInput,
    Mask,
    StageError,
)
from demo.chat_server import distribution


class FakeAnnotator:
    def __init__(self, name: str, peak: str = "fear", p: float = 0.7, triplets=None, error: StageError | None = None):
        self.name, self.peak, self.p, self.error = name, peak, p, error
        self.triplets = triplets or (PhraseTriplet("stormy beach", "dark clouds", "lone fisherman"),)
        self.calls: list[str] = []

    def annotate(self, image: ImageInput) -> AnnotatorResult:
        self.calls.append(image.key)
        if self.error is not None:
            raise self.error
        return AnnotatorResult(
            model=self.name, prompt_version="annotate_v1", triplets=tuple(self.triplets),
            distribution=distribution(self.peak, self.p), rationale=f"{self.name}: {self.peak}", raw_output="{}",
        )


class FakeGrounder:
    """Finds every phrase except those containing 'invisible'; box i of an image is a
    distinct rectangle so masks can be traced back."""

    def __init__(self):
        self.batches: list[int] = []

    def ground(self, images: Sequence[ImageInput], phrases: Sequence[Sequence[str]]) -> list[list[Detection]]:
        self.batches.append(len(images))
        out = []
        for image, wanted in zip(images, phrases):
            dets = []
            for i, phrase in enumerate(wanted):
                if "invisible" in phrase:
                    dets.append(Detection(phrase=phrase, box=None))
                else:
                    x0 = float(i % max(1, image.width - 4))
                    dets.append(Detection(phrase=phrase, box=Box(x0, 0.0, x0 + 4.0, float(image.height), score=0.5)))
            out.append(dets)
        return out


class FakeSegmenter:
    def __init__(self):
        self.batches: list[list[int]] = []

    def segment(self, images: Sequence[ImageInput], boxes: Sequence[Sequence[Box]]) -> list[list[Mask]]:
        self.batches.append([len(b) for b in boxes])
        out = []
        for image, image_boxes in zip(images, boxes):
            masks = []
            for box in image_boxes:
                m = np.zeros((image.height, image.width), dtype=np.uint8)
                m[int(box.y0):int(box.y1), int(box.x0):int(box.x1)] = 1
                rle = mask_utils.encode(np.asfortranarray(m))
                masks.append(Mask(rle={"size": [image.height, image.width], "counts": rle["counts"].decode()}, score=0.9))
            out.append(masks)
        return out

    def refine(self, image, box, points, point_labels):  # pragma: no cover - not used by the pipeline
        raise NotImplementedError


class FakeDes:
    def encode(self, images: Sequence[ImageInput]) -> np.ndarray:
        return np.stack([np.full(DES_DIM, float(i), dtype=np.float32) for i, _ in enumerate(images)])


class FakeClassifier:
    name = "emovit"

    def __init__(self, peak: str = "awe"):
        self.peak = peak

    def predict(self, images: Sequence[ImageInput]) -> list[dict[str, float]]:
        return [{e: (1.0 if e == self.peak else 0.0) for e in EMOTIONS} for _ in images]


class WaitingGrounder(FakeGrounder):
    """Says it has started a batch (creates the file ``started``), then grounds like
    :class:`FakeGrounder` once the file ``release`` exists: a test kills the worker while
    it waits, in the middle of a batch, and then releases the batch delivered again."""

    def __init__(self, started: str, release: str):
        super().__init__()
        self.started, self.release = Path(started), Path(release)

    def ground(self, images: Sequence[ImageInput], phrases: Sequence[Sequence[str]]) -> list[list[Detection]]:
        self.started.touch()
        while not self.release.exists():
            time.sleep(0.05)
        return super().ground(images, phrases)


class FailingGrounder(FakeGrounder):
    """Fails its first ``times`` calls, then grounds like :class:`FakeGrounder`.

    ``kind``: ``"transient"`` (a :class:`StageError` worth retrying, like an HTTP 503)
    or ``"oom"`` (an unexpected ``RuntimeError``, as CUDA raises when out of memory).
    """

    def __init__(self, kind: str = "transient", times: int = 1):
        super().__init__()
        self.kind, self.left = kind, times
        self.calls: list[int] = []

    def ground(self, images: Sequence[ImageInput], phrases: Sequence[Sequence[str]]) -> list[list[Detection]]:
        self.calls.append(len(images))
        if self.left > 0:
            self.left -= 1
            if self.kind == "transient":
                raise StageError("grounder: HTTP 503 from the model server", transient=True)
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().ground(images, phrases)


class CorruptWeightsGrounder:
    """Loading a damaged weights file raises ``OSError`` (as safetensors and torch do)."""

    def __init__(self, model_path: str = "/models/grounding-dino"):
        raise OSError(f"Unable to load weights from {model_path}/model.safetensors: header too large")


def api_pipeline_config(base_url: str, key_env: str, *, version: str, critic_model: str = "fake-critic",
                        max_retries: int = 0, timeout: float | None = None, **stages) -> dict:
    """An ``EMOVERSE_ML`` configuration: two annotators (``model-a``, ``model-b``) and a
    critic on the OpenAI-compatible server at ``base_url``, and the fake vision stages
    above; ``stages`` adds or replaces entries (``grounder={...}``, ``gpu_batch_size=4``)."""
    endpoint = {"base_url": base_url, "api_key_env": key_env, "max_retries": max_retries}
    if timeout is not None:
        endpoint["timeout"] = timeout
    return {
        "pipeline_version": version,
        "annotators": [
            {"name": "model-a", "backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator", "options": {"model": "fake-a", **endpoint}},
            {"name": "model-b", "backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator", "options": {"model": "fake-b", **endpoint}},
        ],
        "critic": {"backend": "ml.stages.backends.openai_critic.OpenAICritic", "options": {"model": critic_model, **endpoint}},
        "grounder": {"backend": "tests.ml.stage_fakes.FakeGrounder"},
        "segmenter": {"backend": "tests.ml.stage_fakes.FakeSegmenter"},
        "embedder": None,
        **stages,
    }


class FakeEmbedder:
    """A phrase embedder without a model: the phrases of one of ``groups`` share a direction
    (cosine 1); every other phrase gets a random direction of its own, seeded by the phrase
    (cosine near 0 with the rest, in 1024 dimensions). Records its calls."""

    default_queue = "gpu"
    calls: list[list[str]] = []  # every instance's calls, for the test to read

    def __init__(self, *, name: str = "fake-embedder", path: str = "", groups: Sequence[Sequence[str]] = ()):
        self.name = name
        self.group = {phrase: f"group {i}" for i, phrases in enumerate(groups) for phrase in phrases}

    def embed(self, phrases: Sequence[str]) -> np.ndarray:
        FakeEmbedder.calls.append(list(phrases))
        rows = [np.random.default_rng(zlib.crc32(self.group.get(p, p).encode())).normal(size=1024) for p in phrases]
        vectors = np.array(rows, dtype=np.float32).reshape(len(phrases), 1024)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-9)


class UnavailableEmbedder:
    """What a worker without sentence-transformers reports."""

    def __init__(self, *, name: str = "", path: str = ""):
        raise BackendNotConfigured("phrase embeddings are unavailable in this environment: sentence-transformers is "
                                   "not installed")
