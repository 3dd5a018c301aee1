"""The review index, the review page shell and the read-only image page: roles and content."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotations.models import AnnotationKind, Decision
from tests.factories import (
    DatasetFactory,
    UserFactory,
    annotation_payload,
    make_annotation,
)
from tests.review.scenes import review_item


@pytest.fixture
def item(db):
    return review_item(DatasetFactory(slug="storms", name="Storms"))


def test_review_pages_need_the_reviewer_role(client, item, researcher, reviewer):
    client.force_login(researcher)
    assert client.get(reverse("review-index")).status_code == 403
    assert client.get(reverse("review-page", args=["storms"])).status_code == 403

    client.force_login(reviewer)
    index = client.get(reverse("review-index"))
    assert index.status_code == 200
    assert b"Storms" in index.content and reverse("review-page", args=["storms"]).encode() in index.content
    assert index.context["rows"][0][1]["left"] == 1
    page = client.get(reverse("review-page", args=["storms"]))
    assert page.status_code == 200 and b'data-dataset="storms"' in page.content
    assert client.get(reverse("review-page", args=["no-such-set"])).status_code == 404


def test_anonymous_is_sent_to_login(client, item):
    response = client.get(reverse("image-detail", args=[item.pk]))
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_image_page_shows_annotations_and_versions_escaped(client, item, researcher):
    client.force_login(researcher)
    response = client.get(reverse("image-detail", args=[item.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    for author in ("pipeline", "gpt-4o", "gemini-2.5"):
        assert author in html
    assert "lonely fishing boat" in html and "?version=3" in html
    assert "<b>dark</b>" not in html  # model text is escaped, in the page and in its JSON
    assert reverse("image-file", args=[item.pk]) in html


def test_image_page_shows_an_older_version_on_request(client, item, researcher):
    make_annotation(item, author_name="gpt-4o", payload=annotation_payload(item.width, item.height, subject_phrase="red dinghy"))
    client.force_login(researcher)
    response = client.get(reverse("image-detail", args=[item.pk]) + "?version=2")
    shown = response.context["annotations"][0]
    assert (shown["version"], shown["author_name"], shown["is_current"]) == (2, "gpt-4o", False)
    assert "older version" in response.content.decode() and "red dinghy" in response.content.decode()


def test_image_page_shows_the_peoples_answer_first(client, item, researcher):
    reviewer = UserFactory(username="rev-a", roles=["reviewer"])
    make_annotation(item, kind=AnnotationKind.HUMAN, author_name="rev-a", author_user=reviewer,
                    payload=annotation_payload(item.width, item.height, label="awe"), decision=Decision.APPROVED)
    client.force_login(researcher)
    response = client.get(reverse("image-detail", args=[item.pk]))
    authors = [a["author_name"] for a in response.context["annotations"]]
    assert authors == ["rev-a", "pipeline", "gemini-2.5", "gpt-4o"]


def test_a_reviewer_does_not_see_another_reviewers_answer_before_submitting(client, item, reviewer):
    other = UserFactory(username="other-reviewer", roles=["reviewer"])
    payload = annotation_payload(item.width, item.height, subject_phrase="secret phrase of another reviewer")
    make_annotation(item, kind=AnnotationKind.HUMAN, author_name=other.username, author_user=other, payload=payload,
                    decision=Decision.APPROVED)
    client.force_login(reviewer)
    html = client.get(reverse("image-detail", args=[item.pk])).content.decode()
    assert "secret phrase" not in html and "other-reviewer" not in html
    assert client.get(reverse("image-detail", args=[item.pk]) + "?version=4").context["annotations"][0]["author_name"] != "other-reviewer"

    # once the item is finished, everyone sees every answer
    item.status = "approved"
    item.save(update_fields=["status"])
    html = client.get(reverse("image-detail", args=[item.pk])).content.decode()
    assert "secret phrase" in html and "other-reviewer" in html


def test_adjudicators_see_every_review(client, item):
    other = UserFactory(username="other-reviewer", roles=["reviewer"])
    make_annotation(item, kind=AnnotationKind.HUMAN, author_name=other.username, author_user=other,
                    payload=annotation_payload(item.width, item.height, subject_phrase="a second opinion"),
                    decision=Decision.APPROVED)
    client.force_login(UserFactory(username="adj", roles=["adjudicator"]))
    html = client.get(reverse("image-detail", args=[item.pk])).content.decode()
    assert "a second opinion" in html and "other-reviewer" in html
