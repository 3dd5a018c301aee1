"""``ml_check``: load every configured backend, run it once, say what happened (no Django).

Prints, per stage, which backend loaded, from where and in how long, then runs the
stages on one image and prints how long each took — or exactly what is missing.
Any exception of a stage is reported on its ``FAILED`` line and the check goes on
with the stages that do not depend on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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


class Checker:
    def __init__(self, registry: Registry, out: TextIO):
        self.registry, self.out = registry, out
        self.ok = True

    def line(self, text: str) -> None:
        self.out.write(text + "\n")

    def timed(self, label: str, fn: Callable[[], Any]) -> Any:
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
        if "critic" in loaded:
            verdict = self.timed("critic", lambda: pipeline.critique(loaded["critic"], image, results, calibration, triplets))
            if verdict is not None:
                self.line(f"           label verdict {verdict.label_verdict}; {sum(e.verdict == 'ok' for e in verdict.elements)}/{len(verdict.elements)} elements ok")
        boxes = None
        if "grounder" in loaded:
            boxes = self.timed("ground", lambda: pipeline.ground(loaded["grounder"], [image], [triplets]))
            if boxes is not None:
                self.line(f"           {len(boxes[0])}/{len(pipeline.unique_phrases(triplets))} phrase(s) found")
        if boxes is not None and "segmenter" in loaded:
            masks = self.timed("segment", lambda: pipeline.segment(loaded["segmenter"], [image], boxes))
            if masks is not None:
                self.line(f"           {len(masks[0])} mask(s)")
        if "des" in loaded:
            vectors = self.timed("des", lambda: pipeline.encode_des(loaded["des"], [image]))
            if vectors is not None:
                self.line(f"           {vectors.shape} {vectors.dtype}")


def check(registry: Registry, image: ImageInput | None, out: TextIO) -> bool:
    """Load and run everything; ``True`` when every configured stage worked."""
    checker = Checker(registry, out)
    try:
        checker.line(f"Pipeline version {registry.pipeline_version}, GPU batch size {registry.gpu_batch_size}")
    except BackendNotConfigured as exc:
        checker.ok = False
        checker.line(f"  MISSING  {exc}")
    loaded = checker.load()
    if image is not None and loaded:
        checker.run(image, loaded)
    checker.line("All configured stages work." if checker.ok else "Some stages are missing or failed (see above).")
    return checker.ok
