"""The review page in Debian's Chromium (Playwright, sync API) against a live server.

The whole flow (log in, next item, brush a mask, pick the label with the keyboard,
submit, then the new version and the disagreement rows in the database and on the
image page), the 409 path, a reload restoring the draft, a keyboard-only review,
and the 1024x768 layout. Screenshots go to /tmp/review*.png.

Run: ``pytest -m browser tests/review/test_browser.py``. Needs /usr/bin/chromium;
Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from pycocotools import mask as mask_utils

from annotations.models import Annotation, AnnotationKind, Decision
from review import queue
from review.models import Disagreement, Draft, ElementDecision, Lease
from tests.browser import BROWSER_MARKS, PASSWORD, wait_laid_out
from tests.browser import log_in as browser_log_in
from tests.factories import (
    DatasetFactory,
    UserFactory,
    annotation_payload,
    make_annotation,
    rect_mask_rle,
)
from tests.review.scenes import BOAT, HEIGHT, WIDTH, review_item

pytestmark = BROWSER_MARKS


@pytest.fixture
def storms(transactional_db):
    dataset = DatasetFactory(slug="storms", name="Storms at sea, photographs from the EmoSet sample")
    return dataset, review_item(dataset, seed=1, priority=0.1)


@pytest.fixture
def reviewer_user(transactional_db):
    return UserFactory(username="rita", roles=["reviewer"], password=PASSWORD)


@pytest.fixture
def start(pages, live_server):
    """``start(width=, height=)``: a logged-in reviewer on the storms review page, its first
    item loaded. ``pages`` quiets and closes it before the database goes away, so no page
    (heartbeats, the save on page hide) calls the server after the test."""

    def start_review(*, width=1280, height=800):
        page = pages.new_page(width=width, height=height)
        log_in(page, live_server)
        wait_ready(page)
        return page

    return start_review


def log_in(page, live_server, path="/review/storms/"):
    browser_log_in(page, live_server, username="rita", path=path)


def wait_ready(page):
    page.wait_for_function(
        "() => window.reviewPage && reviewPage.editor && reviewPage.editor.image.naturalWidth > 0"
        " && document.querySelector('#panels .element')"
    )


def wait_draft_saved(page):
    page.wait_for_function(
        "() => !reviewPage.dirty && !reviewPage.savePromise"
        " && document.querySelector('#save-state').dataset.state === 'saved'"
    )


def image_to_screen(page, x, y):
    v = page.evaluate(
        "() => { const e = reviewPage.editor, r = e.canvas.getBoundingClientRect();"
        " return {left: r.left, top: r.top, scale: e.view.scale, ox: e.view.ox, oy: e.view.oy}; }"
    )
    return v["left"] + v["ox"] + x * v["scale"], v["top"] + v["oy"] + y * v["scale"]


def select_element(page, label_text):
    """Tab until the selected element's row contains ``label_text`` (keyboard only)."""
    for _ in range(12):
        if label_text in (page.text_content(".element.selected") or ""):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"no element with {label_text!r}")


def brush_stroke(page, points):
    """Drag the mouse along image-coordinate ``points``."""
    page.keyboard.press("b")
    first = image_to_screen(page, *points[0])
    page.mouse.move(*first)
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*image_to_screen(page, x, y), steps=8)
    page.mouse.up()


def selected_mask_area(page):
    return page.evaluate("() => { const m = reviewPage.editor.getMask(reviewPage.selected); return m ? m.reduce((a, b) => a + b, 0) : 0; }")


def rle_area(element):
    rle = {"size": [element.mask_height, element.mask_width], "counts": element.mask_counts.encode("ascii")}
    return int(mask_utils.decode(rle).sum())


def human_version(image):
    return Annotation.objects.filter(image=image, kind=AnnotationKind.HUMAN).order_by("-version").first()


def test_brush_a_mask_pick_the_label_by_keyboard_and_submit(start, pages, live_server, storms, reviewer_user):
    dataset, image = storms
    page = start()
    assert page.text_content("#image-name") == image.original_name
    # model text is shown as text, never as markup
    assert page.locator(".rationale-panel .rationale b").count() == 0
    assert "<b>dark</b>" in page.text_content(".rationale-panel .rationale")
    # the two annotators disagree on the label and the subject phrase: those rows are marked
    assert page.locator("table.annotators tr.disagree").count() >= 2
    # no phrase embeddings are stored here: the panel says its rows were paired by words
    assert page.text_content(".annotators-panel .alignment-note").startswith("paired by words: no embeddings yet for")

    select_element(page, "small boat")
    before_area = selected_mask_area(page)
    assert before_area == (BOAT[2] - BOAT[0]) * (BOAT[3] - BOAT[1])
    # paint a stroke to the right of the boat
    brush_stroke(page, [(300, 180), (360, 190), (400, 200)])
    after_area = selected_mask_area(page)
    assert after_area > before_area + 200
    wait_draft_saved(page)
    page.mouse.move(*image_to_screen(page, 330, 250))
    page.screenshot(path="/tmp/review-edit.png")

    # click-to-refine without a segmenter is off: S says so in one short line, the tool stays
    page.keyboard.press("s")
    page.wait_for_function("() => /not set up on this server/.test(document.querySelector('#review-status').textContent)")
    assert page.evaluate("() => reviewPage.editor.tool") == "brush"
    page.keyboard.press("v")

    page.keyboard.press("3")  # contentment
    assert page.get_attribute(".label-panel .current", "data-label") == "contentment"
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-done:not([hidden])")
    done = page.text_content("#review-done")
    assert "Submitted (approved)" in done

    version = human_version(image)
    assert version is not None and version.author_name == "rita" and version.decision == Decision.APPROVED
    assert version.ces_label == "contentment"
    boat = version.triplets.get(index=0).elements.get(role="subject")
    assert boat.status == "edited" and rle_area(boat) == after_area
    fields = set(Disagreement.objects.filter(annotation=version).values_list("field", flat=True))
    assert {"ces_label", "mask"} <= fields
    assert f"{Disagreement.objects.filter(annotation=version).count()} disagreement" in done
    actions = set(ElementDecision.objects.filter(annotation=version).values_list("action", flat=True))
    assert "edit_mask" in actions
    assert not Draft.objects.filter(image=image).exists()
    # the queue is empty now: the editor and the last item's name and lease are gone
    page.wait_for_selector("#review-empty:not([hidden])")
    assert not page.locator("#review-workspace").is_visible()
    assert page.locator("#image-name").inner_text() == "" and page.locator("#lease-until").inner_text() == ""

    # the image page lists the new version with its label
    page.goto(f"{live_server.url}/review/images/{image.pk}/")
    page.wait_for_function("() => window.imageEditor && imageEditor.image.naturalWidth > 0")
    page.screenshot(path="/tmp/image-page.png")
    row = page.locator(".versions tbody tr").first
    assert f"v{version.version}" in row.text_content() and "contentment" in row.text_content()
    assert "rita" in page.text_content(".annotation-card[data-annotation='%d']" % version.pk)
    assert page.errors == []

    # a researcher sees the disagreement rows in the log
    UserFactory(username="rhea", roles=["researcher"], password=PASSWORD)
    log_page = pages.new_page()
    browser_log_in(log_page, live_server, username="rhea", path="/review/disagreements/")
    log_page.goto(f"{live_server.url}/review/disagreements/?dataset=storms&reviewer=rita")
    rows = log_page.locator("table.disagreements tbody tr")
    assert rows.count() == Disagreement.objects.filter(annotation=version).count()
    label_row = rows.filter(has_text="CES label").first
    assert "contentment" in label_row.text_content() and "rita" in label_row.text_content()
    mask_rows = rows.filter(has=log_page.locator(".badge", has_text=re.compile(r"^Mask$")))
    expected = sorted(f"{iou:.2f}" for iou in Disagreement.objects.filter(annotation=version, field="mask")
                      .values_list("mask_iou", flat=True))
    shown = sorted(r.locator("td").nth(10).text_content() for r in mask_rows.all())
    assert shown == expected and expected


def test_conflict_keeps_the_work_and_reloads_it_on_request(start, live_server, storms, reviewer_user):
    dataset, image = storms
    page = start()
    opened = int(page.get_attribute("[data-review]", "data-version"))
    page.keyboard.press("8")  # sadness
    select_element(page, "sail")
    page.keyboard.press("r")  # reject the sail
    wait_draft_saved(page)

    # meanwhile someone else edits the item: a new version of the image
    make_annotation(image, author_name="gpt-4o", payload=annotation_payload(image.width, image.height, label="awe"))

    page.keyboard.press("Enter")
    page.wait_for_selector(".conflict")
    text = page.text_content(".conflict")
    assert f"You opened version {opened}" in text and "gpt-4o" in text
    assert human_version(image) is None
    page.screenshot(path="/tmp/review-conflict.png")
    # nothing lost: on screen and in the draft
    assert page.get_attribute(".label-panel .current", "data-label") == "sadness"
    assert page.locator(".element.rejected").count() == 1
    draft = Draft.objects.get(image=image, reviewer=reviewer_user)
    assert draft.payload["label"] == "sadness"

    page.click(".conflict [data-action=keep]")
    page.wait_for_function(f"() => document.querySelector('[data-review]').dataset.version === '{opened + 1}'")
    assert page.get_attribute(".label-panel .current", "data-label") == "sadness"
    assert page.locator(".element.rejected").count() == 1
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-done:not([hidden])")
    version = human_version(image)
    assert version.ces_label == "sadness"
    sail = version.triplets.get(index=1).elements.get(role="subject")
    assert sail.status == "rejected"
    assert page.errors == []


def test_reload_restores_the_draft(start, live_server, storms, reviewer_user):
    dataset, image = storms
    page = start()
    select_element(page, "small boat")
    brush_stroke(page, [(120, 100), (170, 110)])
    painted = selected_mask_area(page)
    page.keyboard.press("x")  # the eraser takes part of the stroke back
    page.mouse.move(*image_to_screen(page, 165, 100))
    page.mouse.down()
    page.mouse.move(*image_to_screen(page, 175, 115), steps=4)
    page.mouse.up()
    area = selected_mask_area(page)
    assert 0 < painted - area < painted - (BOAT[2] - BOAT[0]) * (BOAT[3] - BOAT[1])
    page.keyboard.press("2")  # awe
    page.keyboard.press("Tab")
    page.keyboard.press("e")
    page.fill(".phrase-input", "grey storm clouds")
    page.keyboard.press("Enter")
    wait_draft_saved(page)

    page.reload()
    wait_ready(page)
    assert "draft" in page.text_content("#review-status")
    assert page.get_attribute(".label-panel .current", "data-label") == "awe"
    assert page.locator(".element .phrase", has_text="grey storm clouds").count() == 1
    select_element(page, "small boat")
    assert selected_mask_area(page) == area
    # undo history does not survive a reload, the edits do; and submitting still works
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-done:not([hidden])")
    version = human_version(image)
    assert version.ces_label == "awe"
    assert rle_area(version.triplets.get(index=0).elements.get(role="subject")) == area
    assert page.errors == []


def test_keyboard_only_review(start, live_server, storms, reviewer_user):
    dataset, first = storms
    second = review_item(dataset, seed=2, priority=0.2)
    page = start()
    # item 1: accept the first element, reject the second, undo that, reject the third, pick anger, submit
    assert page.get_attribute("[data-review]", "data-image-id") == str(first.pk)
    page.keyboard.press("a")  # accept background (moves on to attribute)
    page.keyboard.press("r")  # reject attribute (moves on to subject)
    page.keyboard.press("z")  # undo the rejection
    assert page.locator(".element.rejected").count() == 0
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("r")
    page.keyboard.press("5")  # anger
    page.keyboard.press("Shift+Digit4")  # sure (0.8)
    assert page.get_attribute(".confidence button[aria-pressed=true]", "data-confidence") == "0.8"
    page.keyboard.press("?")
    assert page.locator(".keys-overlay").is_visible()
    page.keyboard.press("Escape")
    assert page.locator(".keys-overlay").count() == 0
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelector('[data-review]').dataset.imageId === '{second.pk}'")
    wait_ready(page)
    assert page.locator("#save-state").inner_text() == ""  # not the first item's "draft saved"

    v1 = human_version(first)
    assert v1.ces_label == "anger" and v1.decision == Decision.APPROVED and v1.ces_confidence == 0.8
    statuses = {e.role: e.status for e in v1.triplets.get(index=0).elements.all()}
    assert statuses == {"background": "accepted", "attribute": "rejected", "subject": "accepted_unchecked"}
    actions = sorted(ElementDecision.objects.filter(annotation=v1).values_list("role", "action"))
    assert actions == [("attribute", "reject"), ("background", "accept")]

    # item 2: reject the whole item with a reason, keyboard only
    page.keyboard.press("Shift+R")
    page.wait_for_selector("#reason-row:not([hidden])")
    page.keyboard.type("Image is a duplicate of another one")
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-empty:not([hidden])")
    v2 = human_version(second)
    assert v2.decision == Decision.REJECTED and v2.decision_reason == "Image is a duplicate of another one"
    assert page.errors == []


def drag(page, start, end):
    page.mouse.move(*image_to_screen(page, *start))
    page.mouse.down()
    page.mouse.move(*image_to_screen(page, *end), steps=6)
    page.mouse.up()


def selected_box(page):
    return page.evaluate("() => reviewPage.editor.getBox(reviewPage.selected)")


def assert_box(actual, expected):
    assert actual is not None and all(abs(a - e) <= 1.0 for a, e in zip(actual, expected)), (actual, expected)


def test_box_drag_polygon_undo_redo_and_an_added_triplet(start, live_server, storms, reviewer_user):
    dataset, image = storms
    page = start()
    select_element(page, "small boat")
    page.keyboard.press("v")
    drag(page, (280, 215), (300, 230))  # the bottom-right corner
    assert_box(selected_box(page), [200, 170, 300, 230])
    drag(page, (200, 190), (190, 190))  # the left edge
    assert_box(selected_box(page), [190, 170, 300, 230])

    area = selected_mask_area(page)
    page.keyboard.press("p")
    for point in [(300, 100), (340, 100), (320, 140)]:
        page.mouse.click(*image_to_screen(page, *point))
    page.keyboard.press("Enter")
    assert selected_mask_area(page) > area + 300

    page.keyboard.press("z")  # the polygon
    assert selected_mask_area(page) == area
    page.keyboard.press("z")  # the edge
    assert_box(selected_box(page), [200, 170, 300, 230])
    page.keyboard.press("Shift+Z")
    assert_box(selected_box(page), [190, 170, 300, 230])

    page.keyboard.press("n")  # a missing triplet: type its subject, then draw its box
    page.keyboard.type("seagull")
    page.keyboard.press("Enter")
    assert "seagull" in page.text_content(".element.selected")
    page.keyboard.press("v")
    drag(page, (40, 40), (90, 80))
    assert_box(selected_box(page), [40, 40, 90, 80])
    wait_draft_saved(page)
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-done:not([hidden])")

    version = human_version(image)
    boat = version.triplets.get(index=0).elements.get(role="subject")
    assert boat.status == "edited"
    assert_box(boat.box, [190, 170, 300, 230])
    assert rle_area(boat) == area
    gull = version.triplets.get(index=2).elements.get()
    assert (gull.role, gull.phrase, gull.status) == ("subject", "seagull", "added")
    assert_box(gull.box, [40, 40, 90, 80])
    actions = set(ElementDecision.objects.filter(annotation=version).values_list("action", flat=True))
    assert {"edit_box", "add"} <= actions and "edit_mask" not in actions
    assert set(Disagreement.objects.filter(annotation=version).values_list("field", flat=True)) >= {"box", "element_added"}
    assert page.errors == []


def test_refine_with_a_segmenter_replaces_the_mask_and_undo_restores_it(start, storms, reviewer_user, settings):
    settings.EMOVERSE_ML = {"segmenter": {"backend": "sam"}}  # set up (the GPU worker's answer is faked below)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_RESULT_BACKEND = "redis://127.0.0.1:6379/0"
    page = start()
    select_element(page, "small boat")
    area = selected_mask_area(page)
    requests = []

    def segmenter(route):
        requests.append(json.loads(route.request.post_data))
        mask = rect_mask_rle(WIDTH, HEIGHT, (210, 180, 270, 210))
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"mask": mask, "score": 0.93}))

    page.route("**/api/review/refine/", segmenter)
    page.keyboard.press("s")
    page.mouse.click(*image_to_screen(page, 240, 195))
    page.wait_for_function("() => /Mask refined/.test(document.querySelector('#review-status').textContent)")
    assert selected_mask_area(page) == 60 * 30
    sent = requests[0]
    assert sent["box"] == list(BOAT) and sent["labels"] == [1]
    assert abs(sent["points"][0][0] - 240) <= 1 and abs(sent["points"][0][1] - 195) <= 1
    page.keyboard.press("Escape")
    page.keyboard.press("z")
    assert selected_mask_area(page) == area
    assert page.errors == []


def test_a_bad_value_and_a_lost_lease_are_shown_and_nothing_is_lost(start, storms, reviewer_user):
    dataset, image = storms
    page = start()
    page.keyboard.press("6")  # disgust
    wait_draft_saved(page)

    # a 400 names the field; the page stays as it was
    page.route("**/submit/", lambda route: route.fulfill(status=400, content_type="application/json",
               body=json.dumps({"detail": "lies outside the 480x320 image", "field": "triplets[0].subject.box"})))
    page.keyboard.press("Enter")
    page.wait_for_selector("#submit-error:not([hidden])")
    assert page.text_content("#submit-error") == "triplets[0].subject.box: lies outside the 480x320 image"
    assert page.get_attribute(".label-panel .current", "data-label") == "disgust"
    page.unroute("**/submit/")

    # the lease lapses and another reviewer takes the item: 409 (lease lost), the draft stays
    Lease.objects.filter(image=image).update(expires_at=timezone.now() - timedelta(minutes=1))
    queue.lease_next(dataset=dataset, reviewer=UserFactory(username="tom", roles=["reviewer"]))
    page.keyboard.press("Enter")
    page.wait_for_selector(".conflict")
    assert "taken by another reviewer" in page.text_content(".conflict")
    assert human_version(image) is None
    assert Draft.objects.get(image=image, reviewer=reviewer_user).payload["label"] == "disgust"
    page.click(".conflict button")
    page.wait_for_selector("#review-empty:not([hidden])")
    assert page.errors == []


def test_layout_at_1024x768_and_on_a_large_screen(start, live_server, storms, reviewer_user):
    page = start(width=1024, height=768)
    wait_laid_out(page)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    canvas = page.locator(".stage canvas").bounding_box()
    assert canvas["width"] >= 500 and canvas["height"] >= 300
    assert canvas["x"] >= 0 and canvas["x"] + canvas["width"] <= 1024 and canvas["y"] + canvas["height"] <= 768
    for control in ("#approve", "#reject-item", "#flag-item", "#keys", "#skip", "#release"):
        box = page.locator(control).bounding_box()
        assert box["y"] + box["height"] <= 768 and box["x"] + box["width"] <= 1024, control
    page.screenshot(path="/tmp/review.png")

    big = start(width=1920, height=1080)
    wait_laid_out(big)
    assert big.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    assert big.locator(".stage canvas").bounding_box()["width"] >= 1200
    big.screenshot(path="/tmp/review-large.png")
    assert page.errors == [] and big.errors == []
