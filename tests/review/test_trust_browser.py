"""Issue 12's promise in Debian's Chromium: the human parts of ``test_trust_end_to_end`` done on the
pages. One image comes in through the importer and the pipeline (fake chat server, tiny Grounding
DINO and SAM); ann paraphrases the background with the keyboard, bob rejects the attribute with the
keyboard; ada adjudicates on the adjudication page, redrawing the subject's mask with the brush; then
the three exports are read field by field.

Run: ``pytest -m browser tests/review/test_trust_browser.py`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from annotations.models import Annotation, AnnotationKind, ImageStatus
from annotations.selectors import annotation_to_dict
from core.masks import decode_mask
from review.models import ElementDecision
from tests.browser import BROWSER_MARKS, PASSWORD, log_in
from tests.factories import UserFactory
from tests.ml.core_fixtures import fake_openai, openai_key  # noqa: F401 - fixtures
from tests.ml.vision_fixtures import tiny_grounding_dino_dir, tiny_sam_hf_dir  # noqa: F401 - fixtures
from tests.review.test_browser import wait_ready
from tests.review.trust_flow import HEIGHT, WIDTH, check_exports, export_all, grounded_triplet, import_and_preannotate, pipeline_config

pytestmark = [*BROWSER_MARKS, pytest.mark.ml]

PARAPHRASE = "empty field"


@pytest.fixture
def imported(transactional_db, tmp_path, fake_openai, openai_key, tiny_grounding_dino_dir, tiny_sam_hf_dir):  # noqa: F811
    config = pipeline_config(fake_openai, openai_key, {"grounder": tiny_grounding_dino_dir, "segmenter": tiny_sam_hf_dir})
    image = import_and_preannotate(tmp_path, config)
    for name, role in (("ann", "reviewer"), ("bob", "reviewer"), ("ada", "adjudicator")):
        UserFactory(username=name, roles=[role], password=PASSWORD)
    return image


def review_with_keys(pages, live_server, username: str, keys) -> None:
    """``username`` reviews the item on the review page with ``keys(page)``, then approves with Enter."""
    page = pages.new_page(width=1280, height=800)
    log_in(page, live_server, username=username, path="/review/trust/")
    wait_ready(page)
    keys(page)
    assert page.get_attribute("#unchecked-count", "data-count") == "0"
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-done:not([hidden])")
    assert page.errors == []
    pages.close()


def test_import_review_adjudicate_export_in_the_browser(imported, pages, live_server):
    image = imported
    base = Annotation.objects.get(image=image, author_name="pipeline")
    triplet = grounded_triplet(annotation_to_dict(base, include_des=False))
    assert base.triplets.order_by("index").first().key.hex == triplet["key"].replace("-", "")  # the page's first triplet

    def paraphrase(page):  # ann: rephrase the first element (the background), Shift+A the rest, "very sure"
        assert "background" in page.text_content(".element.selected")
        page.keyboard.press("e")
        page.fill(".phrase-input", PARAPHRASE)
        page.keyboard.press("Enter")
        page.keyboard.press("Shift+A")
        page.keyboard.press("Shift+Digit5")  # 1.0

    def reject(page):  # bob: accept the background, reject the attribute, Shift+A the rest
        page.keyboard.press("a")
        assert "attribute" in page.text_content(".element.selected")
        page.keyboard.press("r")
        page.keyboard.press("Shift+A")
        page.keyboard.press("Shift+Digit3")  # 0.6

    review_with_keys(pages, live_server, "ann", paraphrase)
    review_with_keys(pages, live_server, "bob", reject)
    image.refresh_from_db()
    assert image.status == ImageStatus.ADJUDICATION
    ann_subject = Annotation.objects.get(image=image, author_name="ann").triplets.get(index=0).elements.get(role="subject")
    spot = (int(HEIGHT * 0.88), int(WIDTH * 0.86))  # on the stroke
    covered = int(decode_mask(ann_subject.mask)[spot])  # the tiny SAM's mask may already cover it: then erase

    # ada: start from ann's review, drop the attribute, brush (or erase) a stroke on the subject's mask,
    # "sure", Ctrl+Enter.
    page = pages.new_page(width=1200, height=900)
    log_in(page, live_server, username="ada", path=f"/review/adjudication/{image.pk}/")
    page.wait_for_selector("#adj-final .adj-labels button")
    page.click("[data-start-from='0']")
    page.uncheck("input[aria-label='keep attribute of triplet 1']")
    page.evaluate("() => document.getElementById('adj-editor').editor.ready")
    page.locator("#adj-editor").focus()
    page.click("button[aria-label='edit subject of triplet 1']")
    page.keyboard.press("x" if covered else "b")
    page.keyboard.press("]")
    page.locator("#adj-editor").scroll_into_view_if_needed()
    box = page.locator("#adj-editor").bounding_box()
    to_screen = "([x, y]) => document.getElementById('adj-editor').editor.view.toScreen([x, y])"
    a = page.evaluate(to_screen, [WIDTH * 0.80, HEIGHT * 0.86])
    b = page.evaluate(to_screen, [WIDTH * 0.92, HEIGHT * 0.90])
    page.mouse.move(box["x"] + a[0], box["y"] + a[1])
    page.mouse.down()
    page.mouse.move(box["x"] + b[0], box["y"] + b[1], steps=8)
    page.mouse.up()
    page.keyboard.press("Shift+Digit4")  # 0.8
    page.keyboard.press("Control+Enter")
    page.wait_for_url(f"{live_server.url}/review/adjudication/")
    assert page.errors == []
    pages.close()

    image.refresh_from_db()
    assert image.status == ImageStatus.APPROVED
    final = Annotation.objects.get(image=image, kind=AnnotationKind.ADJUDICATION)
    assert (final.ces_confidence, final.extra["confidence_from"]) == (0.8, "adjudicator")
    subject = final.triplets.get(index=0).elements.get(role="subject")
    mask = decode_mask(subject.mask)
    assert mask[spot] == 1 - covered  # the stroke
    assert not np.array_equal(mask, decode_mask(ann_subject.mask))  # the mask was redrawn
    assert set(ElementDecision.objects.filter(annotation=final, triplet_key=triplet["key"]).values_list("role", "action")) == {
        ("background", "accept"), ("attribute", "reject"), ("subject", "edit_mask")}
    assert set(ElementDecision.objects.filter(image=image, kind="review", triplet_key=triplet["key"])
               .values_list("reviewer__username", "role", "action")) >= {
        ("ann", "background", "edit_phrase"), ("bob", "attribute", "reject")}
    reviews = {a.author_name: a.ces_confidence for a in Annotation.objects.filter(image=image, kind=AnnotationKind.HUMAN)}
    assert reviews == {"ann": 1.0, "bob": 0.6}

    snapshots = export_all(UserFactory(username="boss", roles=["admin"]), "trust")
    check_exports(snapshots, SimpleNamespace(
        image_id=image.pk, key=triplet["key"], adjudicator="ada", label=final.ces_label, confidence=0.8,
        distribution=None, phrases={"background": PARAPHRASE, "subject": triplet["subject"]["phrase"]},
        rejected=("attribute", triplet["attribute"]["phrase"]), mask=mask,
    ))
