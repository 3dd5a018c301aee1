"""Stage backends for ``bench/pipeline_scale.py`` that only sleep for a configured time per
image (per call for the chat stages) and answer a fixed, valid result, so the benchmark
measures the orchestration around them: the real tasks, queues, database writes and sweep.

Workers import this module at start (``celery worker -I bench.scale_backends``): it counts
the SQL statements each worker process sends (a ``connection_created`` hook adds an execute
wrapper) and adds them to the Redis key ``BENCH_QUERY_KEY`` about once a second.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from core.triplets import PhraseTriplet
from core.vocabulary import EMOTIONS
from ml.stages.types import (
    AnnotatorResult,
    Box,
    CriticResult,
    Detection,
    ElementVerdict,
    ImageInput,
    Mask,
    Usage,
)

ROLES = ("background", "attribute", "subject")


def _distribution(peak: str, p: float) -> dict[str, float]:
    rest = (1.0 - p) / (len(EMOTIONS) - 1)
    return {e: (p if e == peak else rest) for e in EMOTIONS}


class SleepAnnotator:
    """A chat annotator whose call takes ``seconds``."""

    def __init__(self, *, name: str, seconds: float, peak: str = "awe"):
        self.name, self.seconds, self.peak = name, float(seconds), peak

    def annotate(self, image: ImageInput) -> AnnotatorResult:
        time.sleep(self.seconds)
        return AnnotatorResult(
            model=self.name, prompt_version="annotate_v1",
            triplets=(PhraseTriplet("quiet harbour", "soft morning light", "small sailing boat"),),
            distribution=_distribution(self.peak, 0.7), rationale=f"{self.name}: the light is calm",
            raw_output='{"simulated": true}', usage=Usage(prompt_tokens=900, completion_tokens=120, cost_usd=0.004),
        )


class SleepCritic:
    def __init__(self, *, name: str = "critic", seconds: float):
        self.name, self.seconds = name, float(seconds)

    def review(self, image, results, calibration, triplets=None) -> CriticResult:
        time.sleep(self.seconds)
        triplets = list(triplets or ())
        return CriticResult(
            model=self.name, prompt_version="critic_v1",
            elements=tuple(ElementVerdict(i, role, "ok", "consistent") for i in range(len(triplets)) for role in ROLES),
            label_verdict="ok", label_reasoning="fits", reasoning="all consistent", raw_output='{"simulated": true}',
            usage=Usage(prompt_tokens=1200, completion_tokens=200, cost_usd=0.006),
        )


class SleepGrounder:
    """Grounding DINO: ``seconds_per_image`` for each image of a batch; one box per phrase."""

    def __init__(self, *, seconds_per_image: float):
        self.seconds = float(seconds_per_image)

    def ground(self, images: Sequence[ImageInput], phrases: Sequence[Sequence[str]]) -> list[list[Detection]]:
        time.sleep(self.seconds * len(images))
        return [
            [Detection(phrase=p, box=Box(float(i), 0.0, float(i) + image.width / 2, image.height / 2, score=0.6))
             for i, p in enumerate(wanted)]
            for image, wanted in zip(images, phrases)
        ]


class SleepSegmenter:
    """SAM: ``seconds_per_image`` to encode an image (once per image: later prompts on it reuse
    the embedding, like the real cache) and ``seconds_per_prompt`` per mask decoded."""

    def __init__(self, *, seconds_per_image: float, seconds_per_prompt: float = 0.0, cache_size: int = 64):
        self.encode_s, self.prompt_s, self.cache_size = float(seconds_per_image), float(seconds_per_prompt), cache_size
        self._cached: dict[str, None] = {}
        self._lock = threading.Lock()

    def _embed(self, image: ImageInput) -> None:
        with self._lock:
            if image.key in self._cached:
                return
        time.sleep(self.encode_s)
        with self._lock:
            self._cached[image.key] = None
            while len(self._cached) > self.cache_size:
                self._cached.pop(next(iter(self._cached)))

    def _mask(self, image: ImageInput, box: Box) -> Mask:
        m = np.zeros((image.height, image.width), dtype=np.uint8, order="F")
        m[int(box.y0) : max(int(box.y1), int(box.y0) + 1), int(box.x0) : max(int(box.x1), int(box.x0) + 1)] = 1
        rle = mask_utils.encode(m)
        return Mask(rle={"size": [image.height, image.width], "counts": rle["counts"].decode()}, score=0.9)

    def segment(self, images: Sequence[ImageInput], boxes: Sequence[Sequence[Box]]) -> list[list[Mask]]:
        out = []
        for image, image_boxes in zip(images, boxes):
            self._embed(image)
            time.sleep(self.prompt_s * len(image_boxes))
            out.append([self._mask(image, b) for b in image_boxes])
        return out

    def refine(self, image: ImageInput, box: Box | None, points, point_labels) -> Mask:
        self._embed(image)
        time.sleep(self.prompt_s)
        return self._mask(image, box or Box(0.0, 0.0, image.width / 2, image.height / 2))


# --- counting a worker's SQL statements ------------------------------------------------------

BENCH_QUERY_KEY = "bench:pipeline_scale:queries"
_count = {"n": 0}
_count_lock = threading.Lock()


def _counting(execute, sql, params, many, context):
    with _count_lock:
        _count["n"] += 1
    return execute(sql, params, many, context)


def _on_connection(sender, connection, **kwargs):
    if _counting not in connection.execute_wrappers:
        connection.execute_wrappers.append(_counting)


def _flush(client) -> None:
    with _count_lock:
        n, _count["n"] = _count["n"], 0
    if n:
        client.incrby(BENCH_QUERY_KEY, n)


def _flusher() -> None:
    import redis

    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    atexit.register(_flush, client)
    while True:
        time.sleep(1.0)
        _flush(client)


def install_query_counter() -> None:
    """Count this process's statements (each worker child calls it when it starts)."""
    from django.db import connections
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection, weak=False)
    for conn in connections.all(initialized_only=True):
        _on_connection(None, conn)
    threading.Thread(target=_flusher, daemon=True, name="bench-query-flush").start()


if os.environ.get("BENCH_COUNT_QUERIES") == "1":
    from celery.signals import worker_process_init, worker_ready

    worker_process_init.connect(lambda **kw: install_query_counter(), weak=False)  # prefork children
    worker_ready.connect(lambda **kw: install_query_counter(), weak=False)  # threads and solo pools
