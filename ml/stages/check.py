"""``ml_check``: load every configured backend, run it once, say what happened (no Django).

Prints, per stage, which backend loaded, from where and in how long, then runs the
stages on one image and prints how long each took — or exactly what is missing.
Any exception of a stage is reported on its ``FAILED`` line and the check goes on
with the stages that do not depend on it. Then (``throughput`` > 0) each stage runs
again on that many copies of the image, as a worker would run them: the model stages
in one batched call (their ``batch_size``), the API stages with their calls in flight
together (up to the endpoint's ``max_concurrency``), and prints images/s per stage.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from core.alignment import PhraseVectors
from ml.stages import pipeline
from ml.stages.registry import REQUIRED_STAGES, Registry
from ml.stages.types import BackendNotConfigured, ImageInput, StageError

SECRET_WORDS = ("key", "token", "secret", "password")


def _where(backend: Any, options: dict[str, Any]) -> str:
    describe = getattr(backend, "describe", None)
    if callable(describe):
        return describe()
    shown = {k: ("***" if any(w in k.lower() for w in SECRET_WORDS) else v) for k, v in options.items()}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "(no options)"


def copies(image: ImageInput, n: int) -> list[ImageInput]:
    """``n`` copies of ``image`` under keys of their own (no embedding cache hit between them)."""
    return [dataclasses.replace(image, key=f"{image.key}#throughput-{i}") for i in range(n)]


def _each(backend: Any, fn: Callable[[ImageInput], Any], images: Sequence[ImageInput]) -> list[Any]:
    """``fn`` per image: together through the backend's endpoint (API stages), else one after another."""
    endpoint = getattr(backend, "endpoint", None)
    if endpoint is not None and callable(getattr(endpoint, "map", None)):
        answers = endpoint.map(fn, images)
        failed = [a for a in answers if isinstance(a, StageError)]
        if failed:
            raise failed[0]
        return answers
    return [fn(image) for image in images]


class Checker:
    def __init__(self, registry: Registry, out: TextIO):
        self.registry, self.out = registry, out
        self.ok = True
        self.done: dict[str, Any] = {}  # what the one-image run produced, for the throughput pass

    def rate(self, label: str, n: int, fn: Callable[[], Any], note: str = "") -> None:
        """Run ``fn`` (``n`` images' work) and print images/s; a failure is reported like :meth:`timed`'s."""
        start = time.perf_counter()
        value = self.timed(f"{label} x{n}", fn, quiet=True)
        seconds = time.perf_counter() - start
        if value is not None:
            self.line(f"  speed    {label}: {n} images in {seconds:.2f}s = {n / seconds:.2f} images/s{note}")

    def line(self, text: str) -> None:
        self.out.write(text + "\n")

    def timed(self, label: str, fn: Callable[[], Any], *, quiet: bool = False) -> Any:
        start = time.perf_counter()
        try:
            value = fn()
        except BackendNotConfigured as exc:
            self.ok = False
            self.line(f"  MISSING  {label}: {exc}")
            return None
        except StageError as exc:
            self.ok = False
            self.line(f"  FAILED   {label} after {time.perf_counter() - start:.2f}s: {exc.reason}")
            if exc.raw_output:
                self.line(f"           raw output: {exc.raw_output[:300]!r}")
            return None
        except Exception as exc:  # a corrupt weights file, CUDA out of memory, a bug: say which, go on
            self.ok = False
            self.line(f"  FAILED   {label} after {time.perf_counter() - start:.2f}s: {type(exc).__name__}: {exc}")
            return None
        if not quiet:
            self.line(f"  ok       {label}: {time.perf_counter() - start:.2f}s")
        return value

    def load(self) -> dict[str, Any]:
        self.line("Loading backends")
        loaded: dict[str, Any] = {}
        try:
            specs = self.registry.annotator_specs()
        except BackendNotConfigured as exc:
            self.ok = False
            self.line(f"  MISSING  annotators: {exc}")
            specs = []
        for spec in specs:
            backend = self.timed(f"load annotator {spec.name} ({spec.backend})", lambda s=spec: self.registry.annotator(s.name))
            if backend is not None:
                self.line(f"           from {_where(backend, dict(spec.options))}")
                loaded[f"annotator:{spec.name}"] = backend
        for stage in (*REQUIRED_STAGES, "classifier", "des", "embedder"):
            try:
                spec = self.registry.spec(stage)
            except BackendNotConfigured as exc:
                self.ok = False
                self.line(f"  MISSING  {stage}: {exc}")
                continue
            if spec is None:
                self.line(f"  -        {stage}: not configured (optional)")
                continue
            backend = self.timed(f"load {stage} ({spec.backend})", lambda s=stage: self.registry.stage(s))
            if backend is not None:
                self.line(f"           from {_where(backend, dict(spec.options))}")
                loaded[stage] = backend
        return loaded

    def run(self, image: ImageInput, loaded: dict[str, Any]) -> None:
        self.line(f"Running on image {image.key} ({image.width}x{image.height}, {len(image.data)} bytes)")
        annotators = [b for k, b in loaded.items() if k.startswith("annotator:")]
        results = [r for a in annotators if (r := self.timed(f"annotate {a.name}", lambda a=a: a.annotate(image)))]
        self.done["results"] = results
        for r in results:
            self.line(f"           {r.model}: {r.label} ({r.distribution[r.label]:.2f}), {len(r.triplets)} triplet(s), ${r.usage.cost_usd:.4f}")
        if not results or "calibrator" not in loaded:
            self.line("  skipped  the later stages (they need an annotation and a calibrator)")
            return
        vectors = None
        if "embedder" in loaded:
            phrases = sorted({p for r in results for t in r.triplets for p in t.phrases().values() if p})
            embedded = self.timed("embed phrases", lambda: loaded["embedder"].embed(phrases))
            if embedded is not None:
                vectors = PhraseVectors(dict(zip(phrases, embedded)), model=loaded["embedder"].name)
                self.line(f"           {len(phrases)} phrase(s), {embedded.shape[1]} dimensions")
        calibration = self.timed(
            "calibrate",
            lambda: pipeline.calibrate(loaded["calibrator"], image, results, {}, loaded.get("classifier"), vectors=vectors),
        )
        if calibration is None:
            return
        self.line(f"           label {calibration.label}, confidence {calibration.confidence:.2f}")
        triplets = pipeline.candidate_triplets(results, calibration, vectors=vectors)
        self.done.update(calibration=calibration, triplets=triplets)
        if "critic" in loaded:
            verdict = self.timed("critic", lambda: pipeline.critique(loaded["critic"], image, results, calibration, triplets))
            if verdict is not None:
                self.line(f"           label verdict {verdict.label_verdict}; {sum(e.verdict == 'ok' for e in verdict.elements)}/{len(verdict.elements)} elements ok")
        boxes = None
        if "grounder" in loaded:
            boxes = self.timed("ground", lambda: pipeline.ground(loaded["grounder"], [image], [triplets]))
            if boxes is not None:
                self.done["boxes"] = boxes[0]
                self.line(f"           {len(boxes[0])}/{len(pipeline.unique_phrases(triplets))} phrase(s) found")
        if boxes is not None and "segmenter" in loaded:
            masks = self.timed("segment", lambda: pipeline.segment(loaded["segmenter"], [image], boxes))
            if masks is not None:
                self.line(f"           {len(masks[0])} mask(s)")
        if "des" in loaded:
            vectors = self.timed("des", lambda: pipeline.encode_des(loaded["des"], [image]))
            if vectors is not None:
                self.line(f"           {vectors.shape} {vectors.dtype}")


    def throughput(self, image: ImageInput, loaded: dict[str, Any], n: int) -> None:
        """Every stage that worked on one image, again on ``n`` copies of it: images/s per stage."""
        images = copies(image, n)
        self.line(f"Throughput on {n} copies of the image (model stages batched, API calls in flight together)")
        answered = {r.model for r in self.done.get("results", [])}
        for key, annotator in loaded.items():
            if key.startswith("annotator:") and annotator.name in answered:  # one that failed once is not timed
                endpoint = getattr(annotator, "endpoint", None)
                note = f" ({endpoint.limiter.max_concurrency or 'unlimited'} calls at once)" if endpoint else ""
                self.rate(f"annotate {annotator.name}", n, lambda a=annotator: _each(a, a.annotate, images), note)
        results, calibration, triplets = (self.done.get(k) for k in ("results", "calibration", "triplets"))
        if "critic" in loaded and calibration is not None:
            critic = loaded["critic"]
            endpoint = getattr(critic, "endpoint", None)
            note = f" ({endpoint.limiter.max_concurrency or 'unlimited'} calls at once)" if endpoint else ""
            self.rate("critic", n, lambda: _each(
                critic, lambda im: pipeline.critique(critic, im, results, calibration, triplets), images), note)
        if "grounder" in loaded and triplets is not None:
            grounder = loaded["grounder"]
            note = f" (batch size {getattr(grounder, 'batch_size', '?')})"
            self.rate("ground", n, lambda: pipeline.ground(grounder, images, [triplets] * n), note)
        if "segmenter" in loaded and self.done.get("boxes"):
            segmenter = loaded["segmenter"]
            note = f" (batch size {getattr(segmenter, 'batch_size', '?')})"
            self.rate("segment", n, lambda: pipeline.segment(segmenter, images, [self.done["boxes"]] * n), note)
        if "des" in loaded:
            self.rate("des", n, lambda: pipeline.encode_des(loaded["des"], images))


def check(registry: Registry, image: ImageInput | None, out: TextIO, *, throughput: int = 0) -> bool:
    """Load and run everything; ``True`` when every configured stage worked. With ``throughput``,
    each stage then runs on that many copies of the image and its images/s is printed."""
    checker = Checker(registry, out)
    try:
        checker.line(f"Pipeline version {registry.pipeline_version}, GPU batch size {registry.gpu_batch_size}")
    except BackendNotConfigured as exc:
        checker.ok = False
        checker.line(f"  MISSING  {exc}")
    loaded = checker.load()
    if image is not None and loaded:
        checker.run(image, loaded)
        if throughput > 0:
            checker.throughput(image, loaded, throughput)
    checker.line("All configured stages work." if checker.ok else "Some stages are missing or failed (see above).")
    return checker.ok
