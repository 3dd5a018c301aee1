"""The adjudication page in Debian's Chromium against a live server: an adjudicator
picks the label with the keyboard, drops an element, submits with Ctrl+Enter.

Run: ``pytest -m browser tests/review/test_adjudication_browser.py`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import pytest

from annotations.models import Annotation, AnnotationKind, ImageStatus
from core.masks import decode_mask
from review import queue, selectors, services
from review.models import Disagreement, ElementDecision
from tests.browser import BROWSER_MARKS, PASSWORD, log_in
from tests.factories import DatasetFactory, UserFactory, rect_mask_rle
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


def pixel_at(x: float, y: float) -> str:
    """JS returning the editor canvas's RGBA at image point (x, y) (through the editor's view), once the
    image is loaded and the editor drew its pending frame."""
    return ("async () => { const c = document.getElementById('adj-editor'); await c.editor.ready; "
            "for (let i = 0; i < 2; i++) await new Promise((r) => requestAnimationFrame(r)); "
            "const [sx, sy] = c.editor.view.toScreen("
            f"[{x} + 0.5, {y} + 0.5]); const d = window.devicePixelRatio || 1; "
            "return Array.from(c.getContext('2d').getImageData(Math.floor(sx * d), Math.floor(sy * d), 1, 1).data); }")


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
    # The editor draws the kept subject's mask (a rectangle over the image's second quarter);
    # unchecking "keep" takes it off the image, checking it puts it back.
    page.mouse.move(0, 0)
    centre = pixel_at(disputed.width * 3 // 8, disputed.height * 3 // 8)
    shown = page.evaluate(centre)
    page.uncheck("input[aria-label='keep subject of triplet 1']")
    page.click("input[name=reviews-toggle]")  # the reviewers' copies of the subject too
    assert page.evaluate(centre) != shown
    page.click("input[name=reviews-toggle]")
    page.check("input[aria-label='keep subject of triplet 1']")
    assert page.evaluate(centre) == shown
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


def test_adjudicator_edits_a_mask_sets_confidence_and_sees_critic_and_annotators(disputed, pages, live_server):
    Annotation.objects.filter(image=disputed, author_name="pipeline").update(critic={
        "label_verdict": "wrong", "label_reasoning": "<b>the sea looks calm</b>",
        "elements": [{"triplet_index": 0, "role": "subject", "verdict": "ok", "reasoning": "a boat"}],
        "reasoning": "overall fine"})
    w, h = disputed.width, disputed.height
    page = pages.new_page(width=1200, height=900)
    log_in(page, live_server, username="ada", path="/review/adjudication/")
    assert "label: awe / fear" in page.locator("td.conflict").first.inner_text()
    page.goto(f"{live_server.url}/review/adjudication/{disputed.pk}/")
    page.wait_for_selector("#adj-final .adj-labels button")
    critic = page.locator(".critic-panel")
    assert "<b>the sea looks calm</b>" in critic.inner_text() and critic.locator("b").count() == 0
    assert "critic: wrong" in critic.inner_text() and "overall fine" in critic.inner_text()
    heads = page.locator(".annotators-panel th").all_inner_texts()
    assert "gpt-4o" in heads and "gemini-2.5" in heads
    assert "Review 1 · ann" in page.locator("#adj-legend").inner_text()

    # Take ann's subject (click it on the image, T), then paint with the brush beside it.
    page.evaluate("() => document.getElementById('adj-editor').editor.ready")
    to_screen = "([x, y]) => document.getElementById('adj-editor').editor.view.toScreen([x, y])"
    page.keyboard.press("v")
    page.locator("#adj-editor").focus()
    page.click("button[aria-label='edit subject of triplet 1']")
    page.keyboard.press("b")
    page.keyboard.press("]")
    page.locator("#adj-editor").scroll_into_view_if_needed()
    box = page.locator("#adj-editor").bounding_box()
    a = page.evaluate(to_screen, [w * 0.70, h * 0.75])
    b = page.evaluate(to_screen, [w * 0.85, h * 0.80])
    page.mouse.move(box["x"] + a[0], box["y"] + a[1])
    page.mouse.down()
    page.mouse.move(box["x"] + b[0], box["y"] + b[1], steps=8)
    page.mouse.up()
    page.keyboard.press("Shift+Digit4")  # sure (0.8)
    assert page.locator(".adj-confidence button[aria-pressed=true]").inner_text() == "4"

    # Shift+O: only the selected element's overlay (the background box's left edge disappears).
    page.mouse.move(0, 0)
    edge = pixel_at(w / 8, h / 2 - 0.5)  # on the bottom edge of the background boxes
    centre = pixel_at(w * 3 // 8, h * 3 // 8)
    everything = page.evaluate(edge)
    page.locator("#adj-editor").focus()
    page.keyboard.press("Shift+O")
    only, only_centre = page.evaluate(edge), page.evaluate(centre)
    page.keyboard.press("Shift+O")
    page.keyboard.press("o")  # overlays off: the bare image
    bare, bare_centre = page.evaluate(edge), page.evaluate(centre)
    page.keyboard.press("o")
    assert only == bare != everything
    assert only_centre != bare_centre  # the selected subject's mask stays

    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"{live_server.url}/review/adjudication/")
    assert page.errors == []
    final = Annotation.objects.get(image=disputed, kind=AnnotationKind.ADJUDICATION)
    subject = final.triplets.get().elements.get(role="subject")
    mask = decode_mask(subject.mask)
    assert mask.sum() > (w // 4) * (h // 4)  # the model's rectangle plus the stroke
    assert mask[int(h * 0.77), int(w * 0.77)] == 1 and mask[h * 3 // 8, w * 3 // 8] == 1
    assert final.ces_confidence == 0.8 and final.extra["confidence_from"] == "adjudicator"
    recorded = ElementDecision.objects.filter(annotation=final, kind="adjudication")
    assert recorded.filter(role="subject", action="edit_mask", reviewer__username="ada").exists()


@pytest.fixture
def kite_or_boat(transactional_db):
    """ann keeps the model's subject (a boat, upper left); bob replaces it with a kite in the lower
    right, with its own box and mask: the conflict an adjudicator settles by taking bob's element."""
    dataset = DatasetFactory(slug="kites", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset)
    w, h = image.width, image.height
    kite = (w * 5 // 8, h * 5 // 8, w * 7 // 8, h * 7 // 8)
    for name in ("ann", "bob"):
        reviewer = UserFactory(username=name, roles=["reviewer"])
        lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
        payload = selectors.lease_payload(lease)
        answer = human_answer(payload, label="fear")
        if name == "bob":
            answer["triplets"][0]["subject"] = {"phrase": "red kite", "box": list(kite), "mask": rect_mask_rle(w, h, kite),
                                                "status": "edited"}
        services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                               annotation=answer)
    UserFactory(username="ada", roles=["adjudicator"], password=PASSWORD)
    image.refresh_from_db()
    assert image.status == ImageStatus.ADJUDICATION
    return image, kite


def test_take_a_reviewers_element_with_t_and_with_the_button(kite_or_boat, pages, live_server):
    """Start from ann's answer; select bob's kite on the image; T puts it (phrase, box, mask) into the
    final answer in place of the boat; undo gives the boat back; the button takes it again; the
    submitted answer holds bob's element, recorded as accepted from a review."""
    image, kite = kite_or_boat
    w, h = image.width, image.height
    page = pages.new_page(width=1200, height=900)
    log_in(page, live_server, username="ada", path=f"/review/adjudication/{image.pk}/")
    page.wait_for_selector("#adj-final .adj-labels button")
    page.click("[data-start-from='0']")  # ann's answer: the boat
    subject_phrase = "input[aria-label='subject phrase of triplet 1']"
    assert page.input_value(subject_phrase) == "small boat"
    take_button = page.locator("button", has_text="Take the selected reviewer element (T)")
    assert take_button.is_disabled()

    # T with nothing of a reviewer's selected says what to do and changes nothing.
    page.click("h1")
    page.keyboard.press("t")
    assert "Select a reviewer's element on the image first" in page.inner_text("#adj-final [role=alert]")
    assert page.input_value(subject_phrase) == "small boat"

    # Click bob's kite on the image (only the reviewers' layers have anything there), then T.
    if not page.is_checked("input[name=reviews-toggle]"):
        page.check("input[name=reviews-toggle]")
    page.evaluate("() => document.getElementById('adj-editor').editor.ready")
    page.locator("#adj-editor").focus()
    page.keyboard.press("v")
    page.locator("#adj-editor").scroll_into_view_if_needed()
    box = page.locator("#adj-editor").bounding_box()
    at = page.evaluate("([x, y]) => document.getElementById('adj-editor').editor.view.toScreen([x, y])",
                       [(kite[0] + kite[2]) / 2, (kite[1] + kite[3]) / 2])
    page.mouse.click(box["x"] + at[0], box["y"] + at[1])
    page.wait_for_function("() => document.getElementById('adj-editor').editor.selected?.startsWith('r1')")
    assert take_button.is_enabled()
    page.keyboard.press("t")
    assert page.input_value(subject_phrase) == "red kite"
    page.keyboard.press("z")  # undo the take: the boat is back
    assert page.input_value(subject_phrase) == "small boat"

    page.mouse.click(box["x"] + at[0], box["y"] + at[1])
    page.wait_for_function("() => document.getElementById('adj-editor').editor.selected?.startsWith('r1')")
    take_button.click()
    assert page.input_value(subject_phrase) == "red kite"
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"{live_server.url}/review/adjudication/")
    assert page.errors == []

    final = Annotation.objects.get(image=image, kind=AnnotationKind.ADJUDICATION)
    subject = final.triplets.get().elements.get(role="subject")
    assert (subject.phrase, list(subject.box)) == ("red kite", list(kite))
    mask = decode_mask(subject.mask)
    assert mask.sum() == (kite[2] - kite[0]) * (kite[3] - kite[1]) and mask[h * 3 // 4, w * 3 // 4] == 1
    # bob's element, taken whole: an accept of a review's element, no edit of the adjudicator's own
    assert ElementDecision.objects.get(annotation=final, role="subject").action == "accept"
