"""Review selectors: which model annotators the review page shows (the latest pipeline run's)."""

import pytest

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind
from annotations.selectors import image_review_base
from review import queue, selectors
from tests.factories import ImageFactory, make_annotation

pytestmark = pytest.mark.django_db


def imported_then_rerun(dataset):
    """As on the demo: gpt-4o and gemini imported with a merged answer (version "demo"), then a
    pipeline run (version "v2") with two other annotators and a new merged answer."""
    image = ImageFactory(dataset=dataset)
    for author in ("gpt-4o", "gemini-2.5-pro", PIPELINE_AUTHOR):
        make_annotation(image, author_name=author, pipeline_version="demo")
    make_annotation(image, author_name="qwen2.5-vl", pipeline_version="v2", payload_kwargs={"label": "awe"})
    make_annotation(image, author_name="llava", pipeline_version="v2", payload_kwargs={"label": "sadness"})
    make_annotation(image, author_name=PIPELINE_AUTHOR, pipeline_version="v2", payload_kwargs={"label": "awe"})
    return image


def test_the_review_page_gets_the_latest_runs_annotators_and_the_earlier_ones_apart(dataset, reviewer):
    imported_then_rerun(dataset)
    payload = selectors.lease_payload(queue.lease_next(dataset=dataset, reviewer=reviewer))
    assert (payload["base"]["author_name"], payload["base"]["pipeline_version"]) == (PIPELINE_AUTHOR, "v2")
    assert [(a["author_name"], a["pipeline_version"]) for a in payload["annotators"]] == [("llava", "v2"), ("qwen2.5-vl", "v2")]
    assert [(a["author_name"], a["pipeline_version"]) for a in payload["earlier_annotators"]] == [
        ("gemini-2.5-pro", "demo"), ("gpt-4o", "demo")]
    # The annotator comparison is between the latest run's two only.
    assert payload["disagreement"]["label"]["values"] == {"llava": "sadness", "qwen2.5-vl": "awe"}


def test_the_adjudication_payload_splits_the_runs_the_same_way(dataset):
    image = imported_then_rerun(dataset)
    payload = selectors.adjudication_payload(image)
    assert [a["author_name"] for a in payload["annotators"]] == ["llava", "qwen2.5-vl"]
    assert [a["author_name"] for a in payload["earlier_annotators"]] == ["gemini-2.5-pro", "gpt-4o"]


def test_without_a_merged_answer_the_newest_annotators_run_is_the_latest(dataset):
    image = ImageFactory(dataset=dataset)
    make_annotation(image, author_name="gpt-4o", pipeline_version="old")
    make_annotation(image, author_name="qwen2.5-vl", pipeline_version="new")
    make_annotation(image, kind=AnnotationKind.IMPORT, author_name="curated")
    base = image_review_base(image=image)
    assert base.author_name == "curated"
    latest, earlier = selectors.annotators_by_run(image, base)
    assert [a.author_name for a in latest] == ["qwen2.5-vl"]
    assert [a.author_name for a in earlier] == ["gpt-4o"]


def test_one_run_has_no_earlier_annotators(dataset):
    image = ImageFactory(dataset=dataset)
    for author in ("gpt-4o", "gemini-2.5-pro", PIPELINE_AUTHOR):
        make_annotation(image, author_name=author, pipeline_version="demo")
    latest, earlier = selectors.annotators_by_run(image, image_review_base(image=image))
    assert [a.author_name for a in latest] == ["gemini-2.5-pro", "gpt-4o"] and earlier == []


@pytest.mark.parametrize("script_prefix", ["/", "/emoverse/", "/a{b}9081726354x/"])
def test_image_urls_are_what_reverse_gives_under_any_script_prefix(script_prefix):
    from django.urls import reverse, set_script_prefix

    try:
        set_script_prefix(script_prefix)
        for pk in (1, 42, 9081726354, 2**63 - 1):
            image = selectors._image_dict(pk, 10, 10, "web", "in_review", "a.png")
            assert image["url"] == reverse("image-file", args=[pk])
            assert image["thumbnail_url"] == reverse("image-thumbnail", args=[pk])
    finally:
        set_script_prefix("/")
