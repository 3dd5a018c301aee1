"""The pipeline's backends as configured in settings: one registry per process.

Like ``django.contrib.auth.hashers.get_hashers()``: the configuration is read from
settings (``settings.EMOVERSE_ML``, loaded from the JSON file that ``EMOVERSE_ML_CONFIG``
names), the :class:`~ml.stages.registry.Registry` built from it is cached, and each
backend in it is constructed on first use and then reused, so a worker loads each model
once. The stages never read settings: :mod:`ml.stages.registry` takes the configuration
as an argument.

The phrase embedder (``embedder``; on unless the file sets it to ``null``) gets its model
folder from ``EMOVERSE_PHRASE_EMBEDDING_MODEL`` and its name from
:func:`annotations.phrase_embeddings.phrase_model_name`, the name the web process reads
the stored vectors by; its entry may set ``device``, ``batch_size`` and ``queue``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from annotations.phrase_embeddings import phrase_model_name
from ml.stages.registry import DEFAULT_EMBEDDER, Registry
from ml.stages.types import BackendNotConfigured


class UnreadableConfigRegistry(Registry):
    """The registry of a configuration file that could not be read (missing, not JSON, not
    an object): every stage says what is wrong with the file instead of "not configured"."""

    def __init__(self, problem: str):
        super().__init__({})
        self.problem = problem

    def _fail(self) -> BackendNotConfigured:
        return BackendNotConfigured(f"{self.problem}. Fix the file or unset EMOVERSE_ML_CONFIG (see docs/ml-backends.md).")

    @property
    def pipeline_version(self) -> str:
        raise self._fail()

    def annotator_specs(self) -> list:
        raise self._fail()

    def spec(self, stage: str):
        raise self._fail()

    def check(self) -> list[str]:
        return [str(self._fail())]


@functools.lru_cache(maxsize=4)
def _registry_for(key: str) -> Registry:
    return Registry(json.loads(key))


def config_error() -> str:
    """What is wrong with the file ``EMOVERSE_ML_CONFIG`` names (``""``: nothing, or no file)."""
    return getattr(settings, "EMOVERSE_ML_CONFIG_ERROR", "")


def configuration() -> dict[str, Any]:
    """``settings.EMOVERSE_ML`` with the phrase embedder's name and model folder from settings."""
    config = dict(settings.EMOVERSE_ML)
    entry = config.get("embedder", DEFAULT_EMBEDDER)
    if isinstance(entry, Mapping) and isinstance(entry.get("options", {}), Mapping):  # else the registry says what is wrong
        path = getattr(settings, "EMOVERSE_PHRASE_EMBEDDING_MODEL", "")
        config["embedder"] = {**entry, "name": phrase_model_name(), "options": {**entry.get("options", {}), "path": path}}
    return config


def get_registry() -> Registry:
    """The process-wide registry of :func:`configuration` (same configuration, same instances)."""
    if config_error():
        return UnreadableConfigRegistry(config_error())
    return _registry_for(json.dumps(configuration(), sort_keys=True, default=str))


def reset_registry() -> None:
    """Forget every constructed backend (tests, or a changed configuration)."""
    _registry_for.cache_clear()
