"""Explicit checks and the critic's suggestion on the review page, in Debian's Chromium against
a live server: the count of unchecked elements beside Approve, Approve refused on a dataset
that requires every element checked, Shift+A, the critic's label with C, and the annotators of
earlier pipeline runs behind a toggle.

Run: ``pytest -m browser tests/review/test_checks_browser.py`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import pytest

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, AnnotationKind, ImageStatus
from review.models import ElementDecision
from tests.browser import BROWSER_MARKS, PASSWORD, log_in
from tests.factories import DatasetFactory, UserFactory, make_annotation
from tests.review.scenes import CRITIC, review_item
from tests.review.test_browser import wait_ready

pytestmark = BROWSER_MARKS


@pytest.fixture
def strict_item(transactional_db):
    """A storm scene (6 elements) in a dataset that approves only checked items; the critic calls
    the label wrong and suggests sadness; an annotator of an earlier run is still current."""
    dataset = DatasetFactory(slug="strict", require_all_checked=True)
    image = review_item(dataset, seed=3)
    Annotation.objects.filter(image=image, author_name=PIPELINE_AUTHOR).update(
        critic={**CRITIC, "label_verdict": "wrong", "suggested_label": "sadness"})
    make_annotation(image, author_name="llava-1.5", pipeline_version="import-2024")
    UserFactory(username="rita", roles=["reviewer"], password=PASSWORD)
    return image


def unchecked(page) -> str:
    return page.get_attribute("#unchecked-count", "data-count")


def review_strictly(pages, live_server) -> list[str]:
    """The reviewer's keys on the strict item, up to its submit; returns the page's script errors."""
    page = pages.new_page(width=1280, height=800)
    errors = page.errors
    log_in(page, live_server, username="rita", path="/review/strict/")
    wait_ready(page)

    # Beside Approve: how many elements nobody decided yet, live.
    assert unchecked(page) == "6" and "Approve (6 unchecked)" in page.inner_text("#approve")
    page.keyboard.press("a")  # accept the first element; the selection moves on
    assert unchecked(page) == "5" and "(5 unchecked)" in page.inner_text("#approve")

    # Approve is refused and explained; the first unchecked element is selected for the keys.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#submit-error:not([hidden])")
    assert "5 elements are not checked yet" in page.text_content("#submit-error")
    assert "dark, churning waves" in page.text_content(".element.selected")

    # The critic's suggested label, shown with its key, and taken with C.
    assert "critic suggests sadness" in page.text_content(".critic-suggestion")
    assert page.locator(".critic-suggestion kbd", has_text="C").count() == 1
    page.keyboard.press("c")
    assert page.get_attribute(".label-panel .current", "data-label") == "sadness"

    # Only the latest run's annotators; an earlier run's behind the toggle.
    assert page.locator("table.annotators th", has_text="llava-1.5").count() == 0
    page.click(".earlier-toggle")
    assert page.locator(".earlier-runs table.annotators th", has_text="llava-1.5").count() == 1

    # Shift+A: every element left is accepted, as one explicit act; Approve goes through.
    page.keyboard.press("Shift+A")
    assert unchecked(page) == "0" and page.inner_text("#approve").startswith("Approve Enter")
    assert page.locator("#submit-error").is_hidden()  # the refusal no longer holds
    page.screenshot(path="/tmp/review-checks.png")
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-done:not([hidden])")
    page.wait_for_selector("#review-empty:not([hidden])")  # the next request answered: nothing left
    page.wait_for_function("() => /done/.test(document.querySelector('#progress-text').textContent)")
    return errors


def test_unchecked_count_refused_approve_shift_a_and_the_critics_label(strict_item, pages, live_server):
    errors = review_strictly(pages, live_server)
    pages.close()
    assert errors == []
    # One human version: the refused Approve wrote nothing.
    version = Annotation.objects.get(image=strict_item, kind=AnnotationKind.HUMAN)
    assert version.ces_label == "sadness"
    assert {e.status for t in version.triplets.all() for e in t.elements.all()} == {"accepted"}
    actions = sorted(ElementDecision.objects.filter(annotation=version).values_list("action", flat=True))
    assert actions == ["accept"] + ["accept_all"] * 5
    strict_item.refresh_from_db()
    assert strict_item.status == ImageStatus.APPROVED
