"""Every agreement test starts with an empty cache (reports are cached by data stamp).
``sent``: background report mode with the broker replaced by a list."""

import socket

import pytest
from django.core.cache import cache

from agreement import tasks

REDIS_CACHE = "redis://127.0.0.1:6379/14"


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


class SentTasks(list):
    """The ``compute_agreement_report`` tasks sent to the broker; :meth:`work` runs them as a worker would."""

    def work(self) -> None:
        while self:
            tasks.compute_agreement_report(*self.pop(0))


@pytest.fixture
def sent(settings, monkeypatch) -> SentTasks:
    """Background mode (a broker, a shared Redis cache as with ``CACHE_URL``); returns the tasks sent."""
    if not _redis_reachable():
        pytest.skip("needs a Redis server on 127.0.0.1:6379")
    settings.EMOVERSE_AGREEMENT_RESAMPLES = 50
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_CACHE}}
    cache.clear()
    calls = SentTasks()
    monkeypatch.setattr(tasks.compute_agreement_report, "delay", lambda *args: calls.append(args))
    yield calls
    cache.clear()
