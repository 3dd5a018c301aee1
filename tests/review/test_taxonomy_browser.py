"""The review page of an Ekman dataset: six emotion rows, keys 1–6, in Debian's Chromium
(Playwright) against a live server. Run: ``pytest -m browser tests/review/test_taxonomy_browser.py``."""

from __future__ import annotations

import pytest

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, AnnotationKind
from core.vocabulary import EKMAN
from tests.browser import BROWSER_MARKS, PASSWORD
from tests.browser import log_in as browser_log_in
from tests.factories import DatasetFactory, ImageFactory, UserFactory, make_annotation
from tests.review.scenes import CRITIC, HEIGHT, WIDTH, _payload, scene_png

pytestmark = BROWSER_MARKS

VALENCE = {"name": "valence3", "labels": ["negative", "neutral", "positive"], "keys": ["j", "k", "l"],
           "positive": ["positive"], "negative": ["negative"]}


def item(dataset, labels: tuple[str, ...], model_label: str):
    image = ImageFactory(dataset=dataset, width=WIDTH, height=HEIGHT, priority=0.1, seed=5, content=scene_png(5))
    payload = _payload("fear", "small boat")
    rest = 0.3 / (len(labels) - 1)
    payload["ces"] = {"label": model_label, "confidence": 0.7,
                      "distribution": {e: (0.7 if e == model_label else rest) for e in labels}}
    make_annotation(image, author_name=PIPELINE_AUTHOR, payload=payload, critic=CRITIC)
    return image


@pytest.fixture
def reviewer_user(transactional_db):
    return UserFactory(username="rita", roles=["reviewer"], password=PASSWORD)


def open_review(pages, live_server, slug: str):
    page = pages.new_page(width=1280, height=800)
    browser_log_in(page, live_server, username="rita", path=f"/review/{slug}/")
    page.wait_for_function(
        "() => window.reviewPage && reviewPage.editor && reviewPage.editor.image.naturalWidth > 0"
        " && document.querySelector('#panels .element')"
    )
    return page


def submitted(image) -> Annotation:
    return Annotation.objects.filter(image=image, kind=AnnotationKind.HUMAN).order_by("-version").first()


def test_an_ekman_item_shows_six_labels_on_keys_1_to_6_and_submits_by_keyboard(pages, live_server, reviewer_user):
    dataset = DatasetFactory(slug="eemo", name="EEmo sample", taxonomy=EKMAN.to_spec())
    image = item(dataset, EKMAN.labels, "fear")
    page = open_review(pages, live_server, "eemo")

    rows = page.locator(".label-panel button.emotion")
    assert rows.count() == 6
    assert [rows.nth(i).get_attribute("data-emotion") for i in range(6)] == list(EKMAN.labels)
    assert [rows.nth(i).locator("kbd").inner_text() for i in range(6)] == ["1", "2", "3", "4", "5", "6"]
    assert page.locator(".label-panel .last-positive").get_attribute("data-emotion") == "happiness"  # the polarity line
    assert page.get_attribute(".label-panel .current", "data-label") == "fear"

    page.keyboard.press("4")
    assert page.get_attribute(".label-panel .current", "data-label") == "happiness"
    page.keyboard.press("7")  # no seventh emotion: nothing happens
    page.keyboard.press("8")
    assert page.get_attribute(".label-panel .current", "data-label") == "happiness"
    page.keyboard.press("6")
    assert page.get_attribute(".label-panel .current", "data-label") == "surprise"

    page.keyboard.press("?")
    keys = page.locator("#keys-host").inner_text()
    assert "1 – 6" in keys and ", ".join(EKMAN.labels) in keys and "amusement" not in keys
    page.keyboard.press("Escape")

    page.keyboard.press("Enter")
    page.wait_for_selector("#review-done:not([hidden])")
    assert submitted(image).ces_label == "surprise"
    assert page.errors == []


def test_a_custom_taxonomy_binds_its_own_letter_keys(pages, live_server, reviewer_user):
    dataset = DatasetFactory(slug="valence", name="Valence", taxonomy=VALENCE)
    image = item(dataset, tuple(VALENCE["labels"]), "neutral")
    page = open_review(pages, live_server, "valence")

    rows = page.locator(".label-panel button.emotion")
    assert [rows.nth(i).locator("kbd").inner_text() for i in range(3)] == ["J", "K", "L"]
    page.keyboard.press("1")  # digits are not this taxonomy's keys
    assert page.get_attribute(".label-panel .current", "data-label") == "neutral"
    page.keyboard.press("l")
    assert page.get_attribute(".label-panel .current", "data-label") == "positive"
    page.keyboard.press("Enter")
    page.wait_for_selector("#review-done:not([hidden])")
    assert submitted(image).ces_label == "positive"
    assert page.errors == []
