"""Every agreement test starts with an empty cache (reports are cached by data stamp).
``sent``: background report mode with the broker replaced by a list."""

import pytest
from django.core.cache import cache

from agreement import tasks


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


class SentTasks(list):
    """The ``compute_agreement_report`` tasks sent to the broker (``delay``); :meth:`work`
    runs them as a worker would."""

    def __init__(self, task):
        super().__init__()
        self.task = task

    def delay(self, *args) -> None:
        self.append(args)

    def work(self) -> None:
        while self:
            self.task(*self.pop(0))


@pytest.fixture
def sent(settings, monkeypatch, redis_url) -> SentTasks:
    """Background mode (a broker, a shared Redis cache as with ``CACHE_URL``); returns the tasks sent.
    The cache is this test process's own Redis database (``redis_url``): no other test empties it.
    The module's task is replaced, not the task's ``delay``: the task is a proxy that each
    thread (the live server's too) resolves through its own current Celery app."""
    settings.EMOVERSE_AGREEMENT_RESAMPLES = 50
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    cache.clear()
    calls = SentTasks(tasks.compute_agreement_report)
    monkeypatch.setattr(tasks, "compute_agreement_report", calls)
    yield calls
    cache.clear()
