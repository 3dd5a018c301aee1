"""QA review and rating with the keyboard only, in Debian's Chromium against a live server:
accept a pair (A), edit one (E, Tab, type, Enter), reject one with a reason (R 3), submit the
image (Enter); then rate an image (digits, Tab, Enter) and read its aggregates; no script
error and no Content-Security-Policy violation on the way.

Run: ``pytest -m browser tests/qa/test_qa_browser.py`` (needs /usr/bin/chromium).
"""

from __future__ import annotations

import pytest

from qa.models import AuthorKind, QADecision, QAPair, Rating
from qa.selectors import qa_axes
from qa.services import qa_config_install_defaults, qa_pair_create, rating_create
from qa.validation import validate_pair
from tests.browser import BROWSER_MARKS, PASSWORD, log_in
from tests.factories import DatasetFactory, ImageFactory, UserFactory, make_annotation
from tests.security.test_csp_browser import REPORT_VIOLATIONS

pytestmark = BROWSER_MARKS

PAIRS = (
    {
        "category": "perception",
        "dimension": "holistic",
        "type": "multiple_choice",
        "question": "Which emotion does the <script>sea</script> evoke?",
        "options": ["awe", "fear", "joy"],
        "answer": 1,
    },
    {
        "category": "intensity",
        "dimension": "atmosphere",
        "type": "yes_no",
        "question": "Is the mood calm?",
        "answer": "no",
    },
    {
        "category": "reasoning",
        "dimension": "subject",
        "type": "open",
        "question": "Why is the boat frightening?",
        "answer": "Because it is tiny against the waves.",
    },
)


@pytest.fixture
def scene(transactional_db):
    dataset = DatasetFactory(slug="qa-browser", reviews_per_item=2)  # two raters; one QA review (no overlap)
    qa_config_install_defaults(dataset=dataset)
    image = ImageFactory(dataset=dataset, width=64, height=48)
    annotation = make_annotation(image)
    background = annotation.triplets.first().elements.get(role="background")
    axes = qa_axes(dataset_id=dataset.pk)
    pairs = []
    for i, values in enumerate(PAIRS):
        pair = qa_pair_create(
            image=image,
            values=validate_pair(values, categories=axes.categories, dimensions=axes.dimensions),
            author_kind=AuthorKind.MODEL,
            author_name="gpt-4o",
            model_name="gpt-4o",
            elements=[background] if i == 0 else (),
        )
        QAPair.objects.filter(pk=pair.pk).update(priority=i)
        pairs.append(pair)
    other = UserFactory(username="earlier", roles=["rater"])
    intensity = dataset.assessment_scales.get(key="intensity")
    rating_create(image=image, scale=intensity, value=4, user=other)
    rating_create(image=image, scale=intensity, value=9, model_name="gpt-4o")
    UserFactory(username="quinn", roles=["reviewer"], password=PASSWORD)
    return image, pairs


def test_review_qa_pairs_and_rate_an_image_with_the_keyboard_only(pages, live_server, scene):
    image, (mc, yn, open_pair) = scene
    page = pages.new_page(width=1280, height=800)
    violations = []  # the Content-Security-Policy holds on both pages: no inline script or style
    page.expose_function("reportCspViolation", lambda text: violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)
    log_in(page, live_server, username="quinn", path="/qa/review/qa-browser/")
    page.wait_for_selector("#qa-pairs .qa-pair.focused")
    # The model's text is text, not markup; one pair shows at a time until L shows them all.
    assert "<script>sea</script>" in page.text_content(".qa-pair.focused .question")
    assert page.locator(".qa-pair:visible").count() == 1
    page.keyboard.press("l")
    assert page.locator(".qa-pair:visible").count() == 3

    page.keyboard.press("a")  # accept the multiple-choice pair; the focus moves on
    page.wait_for_selector(f'.qa-pair.focused[data-pair="{yn.pk}"]')
    page.keyboard.press("e")  # edit the yes/no pair: question, then the answer
    page.wait_for_selector(".qa-edit textarea[name=question]:focus")
    page.keyboard.press("Control+a")
    page.keyboard.type("Is the mood calm and safe?")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+a")
    page.keyboard.type("no")
    page.keyboard.press("Enter")
    page.wait_for_selector(f'.qa-pair.focused[data-pair="{open_pair.pk}"]')
    page.keyboard.press("r")
    page.wait_for_function("() => document.querySelector('#qa-message').textContent.startsWith('Reason?')")
    page.keyboard.press("3")  # not about the image
    page.wait_for_function("() => document.querySelector('#qa-progress').textContent === '3/3 decided'")
    page.keyboard.press("Enter")  # submit the image: nothing else is pending, so the queue is empty
    page.wait_for_selector("[data-qa-empty]")

    current = {p.key: p for p in QAPair.objects.filter(image=image, is_current=True)}
    assert current[mc.key].status == "accepted"
    edited = current[yn.key]
    assert (edited.status, edited.question, edited.answer, edited.version) == (
        "edited",
        "Is the mood calm and safe?",
        "no",
        2,
    )
    assert (current[open_pair.key].status, current[open_pair.key].reject_reason) == ("rejected", "not_about_image")
    assert QADecision.objects.filter(review__reviewer__username="quinn").count() == 3

    # Rating: the first slider has the focus; digits set it, Tab moves on, Enter submits.
    page.goto(f"{live_server.url}/qa/rate/qa-browser/")
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'scale-intensity'")
    assert "Model gpt-4o: 9" in page.text_content(".scale[data-scale=intensity]")
    page.keyboard.press("1")
    page.keyboard.press("0")  # typed quickly after the 1: ten
    page.keyboard.press("Tab")
    page.keyboard.press("3")
    page.keyboard.press("Tab")
    page.keyboard.press("8")
    assert page.text_content("output[for=scale-intensity]") == "10"
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-rate-result]")
    row = page.locator("tr[data-scale=intensity]")
    assert row.locator(".mean").text_content() == "7.00" and row.locator(".count").text_content() == "2"
    values = dict(Rating.objects.filter(rater_user__username="quinn").values_list("scale__key", "value"))
    assert values == {"intensity": 10.0, "valence": 3.0, "arousal": 8.0}
    page.keyboard.press("Enter")  # next image: none left
    page.wait_for_selector("[data-rate-empty]")
    assert page.errors == [] and violations == []
