"""Which phrases this process asked a worker to embed, and when: a submit whose new phrases
were all asked for a moment ago sends no second request.

A popular new phrase ("rough open water") reaches the review API from many reviewers before
the embedder's worker has stored it; each of those submits would queue a task that embeds the
same phrase (the task embeds only what is still missing, so the later ones find nothing to do).
Sending costs the web process a broker round trip and Celery's message building, about as much
as the rest of the submit's Python. :class:`RecentRequests` remembers the normalised phrases
sent in the last ``ttl`` seconds; a request whose phrases are all among them is not sent again.

Nothing can be lost by it: a phrase is remembered only once its request was handed to the
broker, and only for ``ttl`` seconds, so a request lost with a killed worker is sent again by
the first submit after that; ``manage.py embed_phrases`` fills in anything still missing.
Until a phrase is embedded, triplets with it are paired by words, as they would be anyway
while its request waits in the queue. Per process and in memory: several web processes may
each send one request for a phrase, which the task tolerates (it stores a phrase once).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable


class RecentRequests:
    """Phrases asked for in the last ``ttl`` seconds (at most ``limit`` of them, the oldest
    forgotten first). Thread-safe (gunicorn's threaded workers share a process)."""

    def __init__(self, *, ttl: float, limit: int = 10_000, clock=time.monotonic):
        self.ttl, self.limit, self.clock = ttl, limit, clock
        self._sent: OrderedDict[str, float] = OrderedDict()  # phrase -> when its request was sent, oldest first
        self._lock = threading.Lock()

    def all_recent(self, phrases: Iterable[str]) -> bool:
        """Whether every one of ``phrases`` was asked for less than ``ttl`` seconds ago (an
        empty set: yes)."""
        now = self.clock()
        with self._lock:
            for p in phrases:
                when = self._sent.get(p)
                if when is None or now - when >= self.ttl:
                    return False
        return True

    def sent(self, phrases: Iterable[str]) -> None:
        """Remember that a request for ``phrases`` was handed to the broker now."""
        now = self.clock()
        with self._lock:
            for p in phrases:
                self._sent.pop(p, None)
                self._sent[p] = now
            while self._sent:
                oldest, when = next(iter(self._sent.items()))
                if len(self._sent) <= self.limit and now - when < self.ttl:
                    break
                del self._sent[oldest]

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()

    def __len__(self) -> int:
        return len(self._sent)
