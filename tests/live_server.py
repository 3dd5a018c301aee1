"""The live server's door: requests reach Django only while the test they belong to runs.

pytest-django runs one live server for the whole session but flushes the database after
every test that used it (pytest-django issue 454). A request still being served then (a
page's draft save on its way out) deadlocks with the flush; one that arrives between two
tests finds the database blocked ("Database access not allowed"); one that arrives during
the next test writes into that test's rows. A page sends such a request by itself: the
review page saves its draft with ``keepalive`` when it is closed, and Chromium delivers
that request after the page, and even its context, are gone.

:class:`RequestGate` wraps the server's WSGI application. The ``live_server`` fixtures
(tests/conftest.py) open it when a test starts, with a fresh token that the test's
browser contexts carry as a cookie (tests/browser.py), and close it in the test's
teardown before the flush: :meth:`RequestGate.close` turns new requests away and waits
until those already inside have been answered. A request that arrives while the gate is
closed, or that carries another test's token, gets a 503 and never reaches Django.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from http.cookies import CookieError, SimpleCookie
from typing import Any

COOKIE = "live-server-test"
# A request still inside after this long is stuck (a bug in the test or the page): the
# teardown fails loudly rather than flushing the database under it. Never a synchronisation.
DRAIN_SECONDS = 120


class RequestGate:
    """A WSGI application around ``app`` that lets requests through only while open."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app
        self.token: str | None = None  # the running test's; None while closed
        self._inside: Counter[str] = Counter()  # path -> requests being served
        self._changed = threading.Condition()

    @classmethod
    def install(cls, live_server: Any) -> RequestGate:
        """Put a closed gate in front of a pytest-django ``LiveServer``'s application."""
        httpd = live_server.thread.httpd
        gate = cls(httpd.get_app())
        httpd.set_app(gate)
        return gate

    def open(self) -> str:
        """Let requests in, for a new test; returns its token (the value of the ``COOKIE``)."""
        with self._changed:
            self.token = uuid.uuid4().hex
            return self.token

    def close(self) -> None:
        """Turn new requests away, then wait until every request inside has been answered."""
        with self._changed:
            self.token = None
            if not self._changed.wait_for(lambda: not self._inside, timeout=DRAIN_SECONDS):
                raise RuntimeError(f"the live server was still serving {dict(self._inside)} {DRAIN_SECONDS} s after the test")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        sent = _cookie(environ.get("HTTP_COOKIE", ""))
        with self._changed:
            if self.token is None or sent not in (None, self.token):
                start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"This request's test is over: the live server turns it away.\n"]
            self._inside[path] += 1
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self._leave(path)
            raise
        return _Answer(result, lambda: self._leave(path))

    def _leave(self, path: str) -> None:
        with self._changed:
            self._inside[path] -= 1
            if not self._inside[path]:
                del self._inside[path]
            self._changed.notify_all()


def _cookie(header: str) -> str | None:
    try:
        morsel = SimpleCookie(header).get(COOKIE)
    except CookieError:
        return None
    return morsel.value if morsel is not None else None


class _Answer:
    """A response body that tells the gate when the server has closed it (sent, or given up):
    Django's end of the request (``request_finished``, closing its connections) is over then."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]):
        self._body = body
        self._done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            done, self._done = self._done, None
            if done is not None:
                done()
