"""What the browser tests share: Debian's Chromium (never a downloaded browser), its
flags, the marks that skip the tests where it is missing, logging in, and the ``browser``
and ``pages`` fixtures (tests/conftest.py makes them available to every test).

A test opens its pages through ``pages``; when it ends, every page stops sending, the
requests it has in flight are answered, then its context closes — all before the live
server's gate closes and the database is flushed (tests/live_server.py). The pages carry
the test's token for that gate, so nothing they send after the test reaches the server.

Run the browser tests with ``pytest -m browser`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import os

import pytest

from tests.live_server import COOKIE

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "pw-for-tests-123"
# How long a page step may take before it fails: a safety net on a loaded machine, not a
# synchronisation (every step waits for a condition: a selector, a function, a response).
TIMEOUT_MS = 60_000
try:
    from playwright import sync_api
except ImportError:  # requirements-dev.txt has it; without it the browser tests are skipped
    sync_api = None
BROWSER_MARKS = [
    pytest.mark.browser,
    # One worker runs the browser tests, one after the other, under pytest-xdist.
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's Chromium at {CHROMIUM}"),
    pytest.mark.skipif(sync_api is None, reason="needs playwright (requirements-dev.txt)"),
]


def launch(playwright):
    """Chromium for a test. Playwright's sync API runs an event loop in this thread; the
    ORM calls tests make between browser steps are plain synchronous ones."""
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def log_in(page, live_server, *, username: str, path: str) -> None:
    """Log in through the login page and land on ``path``."""
    page.goto(f"{live_server.url}/accounts/login/?next={path}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}{path}")


def wait_laid_out(page) -> None:
    """Until the page's fonts and images are in and two frames have been drawn since."""
    page.wait_for_function("() => document.fonts.status === 'loaded' && [...document.images].every((i) => i.complete)")
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


class Pages:
    """The browser contexts (and their pages) one test opens. Each carries the test's
    token for the live server's gate (tests/live_server.py); :meth:`close` stops a context
    sending, waits until its requests in flight are answered, then closes it."""

    def __init__(self, browser, live_server):
        self.browser = browser
        self.live_server = live_server
        self._opened: list[tuple[object, set]] = []

    def new_context(self, *, width: int = 1280, height: int = 800):
        """A context whose requests are followed; pages opened in it wait for up to TIMEOUT_MS."""
        context = self.browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        context.add_cookies([{"name": COOKIE, "value": self.live_server.gate.token, "url": self.live_server.url}])
        in_flight: set = set()
        context.on("request", lambda request: in_flight.add(request))
        context.on("requestfinished", lambda request: in_flight.discard(request))
        context.on("requestfailed", lambda request: in_flight.discard(request))
        self._opened.append((context, in_flight))
        return context

    def new_page(self, *, width: int = 1280, height: int = 800):
        """A page in a context of its own; ``page.errors`` collects its uncaught script errors."""
        page = self.new_context(width=width, height=height).new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    def close(self, context=None) -> None:
        """Quiet and close ``context``, or every context still open."""
        for opened in [o for o in self._opened if context in (None, o[0])]:
            self._opened.remove(opened)
            _quiet_and_close(*opened)


def _quiet_and_close(context, in_flight: set) -> None:
    # Nothing new leaves the pages (timers, polls, heartbeats) ...
    context.route("**/*", _refuse)
    # ... and what was sent before is answered.
    for request in list(in_flight):
        _answered(request)
    # Closing runs the pages' "pagehide": the review page then saves its draft with
    # ``keepalive``, a request that no route sees and that Chromium may deliver after the
    # context is gone. It carries this test's token: the gate drains it, or turns it away.
    context.close()


def _refuse(route) -> None:
    try:
        route.abort()
    except sync_api.Error:
        pass  # the page closed meanwhile: nothing was sent


def _answered(request) -> None:
    """Wait until ``request`` has its whole answer, or has failed."""
    try:
        response = request.response()
        if response is not None:
            response.finished()
    except sync_api.Error:
        pass  # failed or cancelled: it is not in flight any more


@pytest.fixture
def pages(browser, live_server):
    """Open pages with ``pages.new_page()``; they are quiet and closed before the test's
    database teardown (this fixture is set up after the live server's gate opened)."""
    opened = Pages(browser, live_server)
    yield opened
    opened.close()
