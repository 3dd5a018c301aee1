"""The report page in Debian's Chromium while a worker computes the report: it says so,
polls, and shows the report by itself once the worker is done."""

from __future__ import annotations

import pytest

from tests.agreement.scenes import build_scene
from tests.browser import BROWSER_MARKS, PASSWORD, launch, log_in, sync_api
from tests.factories import UserFactory

pytestmark = BROWSER_MARKS


@pytest.fixture
def page(live_server, transactional_db):
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(15000)
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        yield page
        context.close()
        browser.close()


def test_report_page_waits_for_the_worker_then_shows_the_report(page, live_server, sent):
    build_scene()
    UserFactory(username="rhea", roles=["researcher"], password=PASSWORD)
    log_in(page, live_server, username="rhea", path="/agreement/study/")
    assert page.get_by_role("status").inner_text().startswith("A worker is computing this report")
    assert page.locator("text=CES labels between reviewers").count() == 0
    polls = []
    page.on("response", lambda r: "/status/" in r.url and polls.append(r.status))
    page.wait_for_timeout(2500)
    assert polls and set(polls) == {200}  # polling, the report not there yet
    assert len(sent) == 1

    sent.work()
    page.locator("text=CES labels between reviewers").wait_for()  # the page reloaded itself
    assert page.get_by_role("status").count() == 0
    assert page.locator("a", has_text="CSV").get_attribute("href") == "/agreement/study/report.csv"
    assert page.errors == []
