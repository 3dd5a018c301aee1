"""Issue 12, item 9 ("a page that tells the truth") in Debian's Chromium: the header follows
every submit, the 409 box for an item already submitted, warnings read whole, Refine off
without a segmenter, handles of a box on the image's edge, double-click edits a phrase,
one "current" version on the image page, and /api/docs/ logged out leads to the login page.

Run: ``pytest -m browser tests/review/test_page_truth_browser.py`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import pytest

from review import selectors, services
from review.models import Draft, Lease, LeaseState
from tests.browser import BROWSER_MARKS, PASSWORD
from tests.browser import log_in as browser_log_in
from tests.factories import DatasetFactory, UserFactory, make_annotation
from tests.review.conftest import human_answer
from tests.review.scenes import HEIGHT, WIDTH, review_item
from tests.review.test_browser import wait_draft_saved, wait_ready

pytestmark = BROWSER_MARKS

HANDLE_PX = 7  # half-size of a box handle (static/review/editor/tools/box.js)


@pytest.fixture
def rita(transactional_db):
    return UserFactory(username="rita", roles=["reviewer"], password=PASSWORD)


@pytest.fixture
def open_page(pages, live_server, transactional_db):
    """``open_page(path, user=, width=, height=)``: a page (logged in as ``user`` unless None),
    quiet and closed before the database goes away (``tests.browser.pages``)."""

    def open_(path, *, user="rita", width=1280, height=800):
        page = pages.new_page(width=width, height=height)
        if user:
            browser_log_in(page, live_server, username=user, path=path)
        else:
            page.goto(f"{live_server.url}{path}")
        return page

    return open_


def review_page(open_page, slug="storms", **kw):
    page = open_page(f"/review/{slug}/", **kw)
    wait_ready(page)
    return page


def wait_progress(page, text):
    page.wait_for_function("(t) => document.querySelector('#progress-text').textContent.includes(t)", arg=text)


def test_header_follows_every_submit(open_page, rita):
    dataset = DatasetFactory(slug="storms", reviews_per_item=2, overlap_fraction=1.0)  # every item waits for a 2nd review
    for seed in range(3):
        review_item(dataset, seed=seed, priority=seed / 10)
    page = review_page(open_page)
    wait_progress(page, "you: 0 reviewed · 2 left")
    for n in (1, 2):
        page.keyboard.press("Enter")
        page.wait_for_selector("#review-done:not([hidden])")
        wait_progress(page, f"you: {n} reviewed")
    assert "· 0 left" in page.text_content("#progress-text")
    assert page.errors == []


def test_409_for_an_item_already_submitted_says_what_happened_and_offers_the_next_item(open_page, rita):
    dataset = DatasetFactory(slug="storms")
    review_item(dataset, seed=1)
    review_item(dataset, seed=2, priority=2.0)
    page = review_page(open_page)
    page.keyboard.press("8")
    wait_draft_saved(page)
    # the same lease is submitted elsewhere (another tab)
    lease = Lease.objects.get(reviewer=rita, state=LeaseState.ACTIVE)
    item = selectors.lease_payload(lease)
    services.review_submit(lease=lease, reviewer=rita, expected_version=item["version"], decision="approved",
                           annotation=human_answer(item))
    page.keyboard.press("Enter")
    page.wait_for_selector(".conflict")
    text = page.text_content(".conflict")
    assert "already submitted" in text
    assert "saved as a draft" not in text.replace("NOT saved as a draft", "")  # no claim the save contradicts
    assert "NOT saved" in page.text_content("#save-state")
    assert page.locator(".conflict [data-action=keep]").count() == 0
    page.click(".conflict [data-action=next]")
    page.wait_for_function(f"() => document.querySelector('[data-review]').dataset.leaseId !== '{lease.pk}'")
    assert page.errors == []


def test_a_stale_draft_warning_is_read_whole(open_page, rita):
    dataset = DatasetFactory(slug="storms")
    image = review_item(dataset, seed=1)
    page = review_page(open_page, width=1024, height=768)
    page.keyboard.press("8")
    wait_draft_saved(page)
    make_annotation(image, author_name="gpt-4o")  # the item changes meanwhile
    page.reload()
    wait_ready(page)
    page.wait_for_function("() => document.querySelector('#review-status').dataset.level === 'error'")
    status = page.locator("#review-status")
    assert "submitting will show what changed" in status.text_content()
    fits = page.evaluate("() => { const el = document.querySelector('#review-status');"
                         " return el.scrollWidth <= el.clientWidth + 1 && el.scrollHeight <= el.clientHeight + 1; }")
    assert fits, "the warning is cut off"
    assert page.errors == []


def test_refine_is_off_without_a_segmenter(open_page, rita, settings):
    settings.EMOVERSE_ML = {}
    dataset = DatasetFactory(slug="storms")
    review_item(dataset, seed=1)
    page = review_page(open_page)
    button = page.locator('[data-tool="refine"]')
    assert button.is_disabled()
    assert button.get_attribute("title") == "Click-to-refine is not set up on this server"
    page.keyboard.press("s")
    page.wait_for_function("() => document.querySelector('#review-status').textContent"
                           " === 'Click-to-refine is not set up on this server.'")
    assert page.evaluate("() => reviewPage.editor.tool") != "refine"
    assert "EMOVERSE_ML" not in page.text_content("body")
    assert page.errors == []


def test_handles_of_a_full_image_box_lie_on_the_canvas_and_can_be_dragged(open_page, rita):
    dataset = DatasetFactory(slug="storms")
    review_item(dataset, seed=1)
    page = review_page(open_page)
    page.evaluate(f"() => {{ const id = reviewPage.selected; reviewPage.editor.setBox(id, [0, 0, {WIDTH}, {HEIGHT}]);"
                  " reviewPage.editor.setTool('box'); reviewPage.editor.fit(); }")
    geo = page.evaluate(f"() => {{ const e = reviewPage.editor, r = e.canvas.getBoundingClientRect();"
                        f" return {{left: r.left, top: r.top, w: r.width, h: r.height,"
                        f" nw: e.view.toScreen([0, 0]), se: e.view.toScreen([{WIDTH}, {HEIGHT}])}}; }}")
    for x, y in (geo["nw"], geo["se"]):
        assert HANDLE_PX <= x <= geo["w"] - HANDLE_PX and HANDLE_PX <= y <= geo["h"] - HANDLE_PX, geo
    x, y = geo["left"] + geo["nw"][0], geo["top"] + geo["nw"][1]
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y + 30, steps=6)
    page.mouse.up()
    box = page.evaluate("() => reviewPage.editor.getBox(reviewPage.selected)")
    assert box[0] > 10 and box[1] > 10 and box[2] == WIDTH and box[3] == HEIGHT, box
    assert page.errors == []


def test_double_click_on_a_phrase_selects_and_edits_it(open_page, rita):
    dataset = DatasetFactory(slug="storms")
    review_item(dataset, seed=1)
    page = review_page(open_page)
    rows = page.locator("#panels .element")
    target = rows.nth(2)
    target_id = target.get_attribute("data-id")
    assert page.evaluate("() => reviewPage.selected") != target_id
    target.locator(".phrase").dblclick()
    page.wait_for_selector(f'.phrase-input[data-id="{target_id}"]')
    assert page.evaluate("() => reviewPage.selected") == target_id
    assert page.evaluate("() => document.activeElement.classList.contains('phrase-input')")
    assert page.errors == []


def test_image_page_labels_one_version_current(open_page, rita):
    dataset = DatasetFactory(slug="storms")
    image = review_item(dataset, seed=1)
    page = review_page(open_page)
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-done:not([hidden])")
    page.goto(page.url.split("/review/")[0] + f"/review/images/{image.pk}/")
    page.wait_for_selector(".versions tbody tr")
    assert page.locator(".versions .badge.current").count() == 1
    assert page.locator(".versions tr[data-state=current] .badge.current").text_content() == "current"
    assert page.locator(".versions .badge.superseded").count() >= 1
    assert page.errors == []


def test_api_docs_logged_out_lead_to_the_login_page_and_back(open_page, live_server, rita):
    page = open_page("/api/docs/", user=None)
    page.wait_for_url(f"{live_server.url}/accounts/login/?next=/api/docs/")
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui")
    assert page.errors == []


def test_an_oversize_draft_from_before_the_limit_is_not_loaded_and_the_page_says_so(open_page, rita, settings):
    """A draft stored before EMOVERSE_MAX_DRAFT_BYTES existed and larger than it: the page opens the
    current version, its status line says why the draft was not loaded, and the next edit saves a
    draft that replaces it."""
    dataset = DatasetFactory(slug="storms")
    image = review_item(dataset, seed=1)
    Draft.objects.create(image=image, reviewer=rita, payload={"image_id": image.pk, "note": "x" * 300_000})
    settings.EMOVERSE_MAX_DRAFT_BYTES = 200_000  # room for the page's own drafts, not for the old one
    page = review_page(open_page)
    page.wait_for_function("() => document.querySelector('#review-status').dataset.level === 'error'")
    status = page.locator("#review-status").text_content()
    assert "larger than the draft limit of 200,000 bytes" in status and "not loaded" in status
    page.keyboard.press("8")
    wait_draft_saved(page)
    assert "x" * 100 not in str(Draft.objects.get(image=image, reviewer=rita).payload)
    assert page.errors == []
