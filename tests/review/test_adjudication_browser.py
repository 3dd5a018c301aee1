"""The adjudication page in Debian's Chromium against a live server: an adjudicator
picks the label with the keyboard, drops an element, submits with Ctrl+Enter.

Run: ``pytest -m browser tests/review/test_adjudication_browser.py`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import pytest

from annotations.models import Annotation, AnnotationKind, ImageStatus
from review import queue, selectors, services
from review.models import Disagreement
from tests.browser import BROWSER_MARKS, PASSWORD, log_in
from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import human_answer, image_in_review

pytestmark = BROWSER_MARKS


@pytest.fixture
def disputed(transactional_db):
    dataset = DatasetFactory(slug="pairs", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset)
    for name, label in (("ann", "awe"), ("bob", "fear")):
        reviewer = UserFactory(username=name, roles=["reviewer"])
        lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
        payload = selectors.lease_payload(lease)
        services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                               annotation=human_answer(payload, label=label))
    UserFactory(username="ada", roles=["adjudicator"], password=PASSWORD)
    return image


def test_adjudicate_with_the_keyboard(disputed, pages, live_server):
    page = pages.new_page(width=1024, height=768)
    path = f"/review/adjudication/{disputed.pk}/"
    log_in(page, live_server, username="ada", path=path)
    page.wait_for_selector("#adj-final .adj-labels button")
    assert page.locator(".adj-col h3").all_inner_texts()[-2:] == ["Review 1 · ann", "Review 2 · bob"]
    page.click("[data-start-from='1']")          # start from bob's answer
    page.click("h1")
    page.keyboard.press("8")                      # sadness
    assert page.locator("#adj-final button[aria-pressed=true]").inner_text().startswith("8 sadness")
    # The overlay draws the kept subject's mask (a rectangle over the image's second quarter).
    w, h = disputed.width, disputed.height
    centre = f"() => Array.from(document.getElementById('adj-overlay').getContext('2d').getImageData({w * 3 // 8}, {h * 3 // 8}, 1, 1).data)"
    assert page.evaluate(centre) == [215, 48, 31, 90]
    page.uncheck("input[aria-label='keep subject of triplet 1']")
    assert page.evaluate(centre)[3] == 0
    page.check("input[aria-label='keep subject of triplet 1']")
    assert page.evaluate(centre) == [215, 48, 31, 90]
    page.uncheck("input[aria-label='keep attribute of triplet 1']")
    page.screenshot(path="/tmp/adjudication.png", full_page=True)
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"{live_server.url}/review/adjudication/")
    assert page.errors == []
    final = Annotation.objects.get(image=disputed, kind=AnnotationKind.ADJUDICATION)
    assert (final.ces_label, final.author_name) == ("sadness", "ada")
    assert final.triplets.get().elements.get(role="attribute").status == "rejected"
    disputed.refresh_from_db()
    assert (disputed.status, disputed.label) == (ImageStatus.APPROVED, "sadness")
    assert Disagreement.objects.filter(annotation=final, field="element_rejected", role="attribute").count() == 3
