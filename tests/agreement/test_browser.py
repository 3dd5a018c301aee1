"""The report page in Debian's Chromium while a worker computes the report: it says so,
polls, and shows the report by itself once the worker is done."""

from __future__ import annotations

from tests.agreement.scenes import build_scene
from tests.browser import BROWSER_MARKS, PASSWORD, log_in
from tests.factories import UserFactory

pytestmark = BROWSER_MARKS


def is_poll(response) -> bool:
    return "/agreement/study/status/" in response.url


def test_report_page_waits_for_the_worker_then_shows_the_report(pages, live_server, sent):
    build_scene()
    UserFactory(username="rhea", roles=["researcher"], password=PASSWORD)
    page = pages.new_page()
    log_in(page, live_server, username="rhea", path="/agreement/study/")
    assert page.get_by_role("status").inner_text().startswith("A worker is computing this report")
    assert page.locator("text=CES labels between reviewers").count() == 0
    for _ in range(2):  # polling, the report not there yet
        with page.expect_response(is_poll) as poll:
            pass
        assert poll.value.status == 200 and poll.value.json()["status"] == "computing"
    assert len(sent) == 1

    sent.work()
    page.locator("text=CES labels between reviewers").wait_for()  # the page reloaded itself
    assert page.get_by_role("status").count() == 0
    assert page.locator("a", has_text="CSV").get_attribute("href") == "/agreement/study/report.csv"
    assert page.errors == []
