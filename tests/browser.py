"""What the browser tests share: Debian's Chromium (never a downloaded browser), its
flags, the marks that skip the tests where it is missing, and logging in.

Run the browser tests with ``pytest -m browser`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "pw-for-tests-123"
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's Chromium at {CHROMIUM}"),
]

sync_api = pytest.importorskip("playwright.sync_api")


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
