"""The pipeline's backends as configured in settings: one registry per process.

Like ``django.contrib.auth.hashers.get_hashers()``: the configuration is read from
settings (``settings.EMOVERSE_ML``, loaded from the JSON file that ``EMOVERSE_ML_CONFIG``
names), the :class:`~ml.stages.registry.Registry` built from it is cached, and each
backend in it is constructed on first use and then reused, so a worker loads each model
once. The stages never read settings: :mod:`ml.stages.registry` takes the configuration
as an argument.
"""

from __future__ import annotations

import functools
import json

from django.conf import settings

from ml.stages.registry import Registry


@functools.lru_cache(maxsize=4)
def _registry_for(key: str) -> Registry:
    return Registry(json.loads(key))


def get_registry() -> Registry:
    """The process-wide registry of ``settings.EMOVERSE_ML`` (same configuration, same instances)."""
    return _registry_for(json.dumps(settings.EMOVERSE_ML, sort_keys=True, default=str))


def reset_registry() -> None:
    """Forget every constructed backend (tests, or a changed configuration)."""
    _registry_for.cache_clear()
