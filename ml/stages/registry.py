"""Pipeline backends chosen in configuration, constructed once per process.

Modelled on ``django.contrib.auth.hashers.get_hashers()``: each backend is named
by a dotted path, imported with :func:`import_string`, constructed with its
keyword ``options`` the first time it is needed, and cached in its
:class:`Registry`, so a worker loads each model once. No Django here: the caller
passes a plain mapping (``ml.config.get_registry()`` passes ``settings.EMOVERSE_ML``
and keeps one registry per process).

Configuration shape (see docs/ml-backends.md)::

    {
      "pipeline_version": "v1",
      "gpu_batch_size": 8,
      "annotators": [{"name": "gpt-4o", "backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator", "options": {...}}, ...],
      "calibrator": {"backend": "ml.stages.backends.temperature_calibrator.TemperatureCalibrator", "options": {}},
      "classifier": null | {"name": ..., "backend": ..., "options": {...}},
      "critic": {"name": "critic", "backend": "ml.stages.backends.openai_critic.OpenAICritic", "options": {...}},
      "grounder": {"backend": ..., "options": {...}},
      "segmenter": {"backend": ..., "options": {...}},
      "des": null | {"backend": ..., "options": {...}},
      "embedder": null | {"backend": ..., "options": {...}},
      "qa_generator": null | {"name": ..., "backend": "ml.stages.backends.openai_qa.OpenAIQAGenerator", "options": {...}},
      "qa_critic": null | {"name": ..., "backend": "ml.stages.backends.openai_qa.OpenAIQACritic", "options": {...}},
      "qa_version": "qa-v1"
    }

An annotator's or the critic's task goes to the Celery queue named by the entry's
``"queue"`` (``"io"`` or ``"gpu"``); without one, to the ``default_queue`` its backend
class declares (``QwenVLAnnotator`` and ``QwenVLCritic``: ``"gpu"``, they run a local
model), else ``io``. Reading that attribute imports the backend module in the web
process, so a backend module must not import torch at module level if it declares one.

Only stages that are used are constructed: a web process that never asks for the
grounder never imports torch.

The phrase embedder (``embedder``) is on unless the configuration sets it to ``null``:
without an entry it is :data:`DEFAULT_EMBEDDER` (the bundled all-MiniLM-L6-v2 through
sentence-transformers, on the ``gpu`` queue). ``ml.config`` gives it its ``name`` and model
folder from settings, so the stored vectors carry the name the web process reads them by.

The backends were in ``ml.stages.backends`` before they moved to ``ml.stages.backends``;
configuration files written then keep working: a path under the old package is read
as the same path under the new one (:data:`MOVED_PACKAGES`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml.stages.types import BackendNotConfigured

CONFIG_HINT = (
    "Put the backend configuration in a JSON file and point the EMOVERSE_ML_CONFIG "
    "environment variable at it (see docs/ml-backends.md)."
)
REQUIRED_STAGES = ("calibrator", "critic", "grounder", "segmenter")
OPTIONAL_STAGES = ("classifier", "des", "embedder", "qa_generator", "qa_critic")
DEFAULT_CALIBRATOR = {"backend": "ml.stages.backends.temperature_calibrator.TemperatureCalibrator", "options": {}}
DEFAULT_EMBEDDER = {"backend": "ml.stages.backends.sentence_embedder.SentenceEmbedder", "options": {}}
# Stages whose backend gets a ``name`` option (used as model name in provenance and calibration,
# and as the name phrase embeddings are stored under).
NAMED_STAGES = ("annotators", "classifier", "critic", "embedder", "qa_generator", "qa_critic")
QUEUES = ("io", "gpu")
# Old package prefix -> new one, for configuration files written before the backends moved.
MOVED_PACKAGES = {"ml.stages.backends.": "ml.stages.backends."}


def current_path(dotted_path: str) -> str:
    """``dotted_path`` with a moved package prefix replaced by where it lives now."""
    for old, new in MOVED_PACKAGES.items():
        if dotted_path.startswith(old):
            return new + dotted_path.removeprefix(old)
    return dotted_path


def import_string(dotted_path: str) -> Any:
    """Import ``package.module.Attribute``; :class:`BackendNotConfigured` when it fails."""
    module_path, _, attribute = dotted_path.rpartition(".")
    if not module_path:
        raise BackendNotConfigured(f"{dotted_path!r} is not a dotted path like 'ml.stages.backends.openai_vlm.OpenAIAnnotator'")
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise BackendNotConfigured(f"cannot import {module_path!r} for backend {dotted_path!r}: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise BackendNotConfigured(f"module {module_path!r} has no {attribute!r}") from exc


@dataclass(frozen=True)
class BackendSpec:
    stage: str
    backend: str
    options: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    queue: str | None = None  # Celery queue of the stage's task, see task_queue()

    @classmethod
    def parse(cls, stage: str, entry: Any) -> BackendSpec:
        where = f"EMOVERSE_ML[{stage!r}]"
        if not isinstance(entry, Mapping):
            raise BackendNotConfigured(f"{where} must be an object with 'backend' and 'options', got {entry!r}")
        unknown = sorted(set(entry) - {"backend", "options", "name", "queue"})
        if unknown:
            raise BackendNotConfigured(f"{where} has unknown key(s) {unknown}; allowed: backend, options, name, queue")
        queue = entry.get("queue")
        if queue not in (None, *QUEUES):
            raise BackendNotConfigured(f"{where}['queue'] must be one of {QUEUES}, got {queue!r}")
        backend = entry.get("backend")
        if not isinstance(backend, str) or not backend:
            raise BackendNotConfigured(f"{where} needs 'backend': a dotted path to the backend class")
        options = entry.get("options", {})
        if not isinstance(options, Mapping):
            raise BackendNotConfigured(f"{where}['options'] must be an object of keyword options")
        name = entry.get("name")
        if stage.startswith("annotators") and not name:
            raise BackendNotConfigured(f"{where} needs a 'name' (e.g. 'gpt-4o'): it keys calibration and provenance")
        return cls(stage=stage, backend=current_path(backend), options=dict(options), name=name, queue=queue)

    def task_queue(self) -> str:
        """The Celery queue of this stage's task: the entry's ``queue``, else the
        ``default_queue`` the backend class declares, else ``io``."""
        if self.queue is not None:
            return self.queue
        declared = getattr(import_string(self.backend), "default_queue", None)
        if declared is None:
            return "io"
        if declared not in QUEUES:
            raise BackendNotConfigured(f"{self.backend}.default_queue must be one of {QUEUES}, got {declared!r}")
        return declared

    def build(self) -> Any:
        """Construct the backend; a ``TypeError`` or ``ValueError`` from its constructor
        (an unknown option, a value out of range) is a configuration error."""
        factory = import_string(self.backend)
        kwargs = dict(self.options)
        if self.name is not None and self.stage.split("[")[0] in NAMED_STAGES:
            kwargs["name"] = self.name
        try:
            return factory(**kwargs)
        except (TypeError, ValueError) as exc:
            raise BackendNotConfigured(f"EMOVERSE_ML[{self.stage!r}]: bad options for {self.backend}: {exc}") from exc


class Registry:
    """The configured backends of one process; each built on first use, then reused."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = dict(config)
        self._instances: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.config.get("annotators"))

    @property
    def pipeline_version(self) -> str:
        version = self.config.get("pipeline_version") or "v1"
        if not isinstance(version, str) or len(version) > 64:
            raise BackendNotConfigured("EMOVERSE_ML['pipeline_version'] must be a string of at most 64 characters")
        return version

    @property
    def gpu_batch_size(self) -> int:
        size = self.config.get("gpu_batch_size", 8)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise BackendNotConfigured(f"EMOVERSE_ML['gpu_batch_size'] must be an integer >= 1, got {size!r}")
        return size

    def annotator_specs(self) -> list[BackendSpec]:
        entries = self.config.get("annotators")
        if not entries:
            raise BackendNotConfigured(
                "no annotators configured: EMOVERSE_ML['annotators'] needs one or two entries like "
                '{"name": "gpt-4o", "backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator", '
                '"options": {"model": "gpt-4o", "api_key_env": "OPENAI_API_KEY"}}. ' + CONFIG_HINT
            )
        if not isinstance(entries, list):
            raise BackendNotConfigured("EMOVERSE_ML['annotators'] must be a list")
        specs = [BackendSpec.parse(f"annotators[{i}]", e) for i, e in enumerate(entries)]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise BackendNotConfigured(f"annotator names must be distinct, got {names}")
        return specs

    def spec(self, stage: str) -> BackendSpec | None:
        """The spec of a single-backend stage; ``None`` for an optional stage set to null/absent."""
        if stage not in REQUIRED_STAGES + OPTIONAL_STAGES:
            raise KeyError(stage)
        entry = self.config.get(stage)
        if entry is None and stage == "calibrator":
            entry = DEFAULT_CALIBRATOR
        if stage == "embedder" and stage not in self.config:
            entry = DEFAULT_EMBEDDER
        if entry is None:
            if stage in OPTIONAL_STAGES:
                return None
            raise BackendNotConfigured(
                f"no {stage} configured: set EMOVERSE_ML[{stage!r}] to "
                '{"backend": "<dotted path>", "options": {...}}. ' + CONFIG_HINT
            )
        return BackendSpec.parse(stage, entry)

    def _get(self, key: str, spec: BackendSpec) -> Any:
        with self._lock:
            if key not in self._instances:
                self._instances[key] = spec.build()
            return self._instances[key]

    def is_loaded(self, key: str) -> bool:
        return key in self._instances

    def annotators(self) -> list[Any]:
        return [self._get(spec.stage, spec) for spec in self.annotator_specs()]

    def annotator(self, name: str) -> Any:
        """The annotator configured under ``name``."""
        for spec in self.annotator_specs():
            if spec.name == name:
                return self._get(spec.stage, spec)
        raise BackendNotConfigured(f"no annotator named {name!r} in EMOVERSE_ML['annotators']")

    def stage(self, stage: str) -> Any:
        """The backend of ``stage``, or ``None`` for an unconfigured optional stage."""
        spec = self.spec(stage)
        return None if spec is None else self._get(stage, spec)

    def calibrator(self) -> Any:
        return self.stage("calibrator")

    def classifier(self) -> Any | None:
        return self.stage("classifier")

    def critic(self) -> Any:
        return self.stage("critic")

    def grounder(self) -> Any:
        return self.stage("grounder")

    def segmenter(self) -> Any:
        return self.stage("segmenter")

    def des(self) -> Any | None:
        return self.stage("des")

    def qa_generator(self) -> Any | None:
        """The QA pair generator (``qa`` app); ``None`` when not configured."""
        return self.stage("qa_generator")

    def qa_critic(self) -> Any | None:
        """The blind answerer of the QA self-check; ``None`` when not configured (no self-check)."""
        return self.stage("qa_critic")

    @property
    def qa_version(self) -> str:
        """The identity of QA generation (one generation per image and version)."""
        version = self.config.get("qa_version") or "qa-v1"
        if not isinstance(version, str) or len(version) > 64:
            raise BackendNotConfigured("EMOVERSE_ML['qa_version'] must be a string of at most 64 characters")
        return version

    def embedder(self) -> Any | None:
        """The phrase embedder; ``None`` when the configuration turns it off (``"embedder": null``)."""
        return self.stage("embedder")

    def require_complete(self) -> Registry:
        """This registry, or :class:`BackendNotConfigured` listing everything :meth:`check` finds."""
        problems = self.check()
        if problems:
            raise BackendNotConfigured("The pre-annotation pipeline is not configured:\n- " + "\n- ".join(problems))
        return self

    def check(self) -> list[str]:
        """Everything that is missing or malformed in the configuration (empty when complete)."""
        problems: list[str] = []
        try:
            self.pipeline_version, self.gpu_batch_size  # noqa: B018 - validation only
        except BackendNotConfigured as exc:
            problems.append(str(exc))
        try:
            self.annotator_specs()
        except BackendNotConfigured as exc:
            problems.append(str(exc))
        for stage in REQUIRED_STAGES + OPTIONAL_STAGES:
            try:
                self.spec(stage)
            except BackendNotConfigured as exc:
                problems.append(str(exc))
        return problems
