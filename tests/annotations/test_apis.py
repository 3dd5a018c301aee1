"""The core REST API: roles on every endpoint, filters, versions, reviewer isolation."""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

from annotations.models import AnnotationKind
from tests.factories import DatasetFactory, ImageFactory, UserFactory, make_annotation

pytestmark = pytest.mark.django_db

ENDPOINTS = ["api-dataset-list", "api-image-list", "api-annotation-list"]


@pytest.mark.parametrize("name", ENDPOINTS)
def test_anonymous_requests_are_refused(api_client, name):
    assert api_client.get(reverse(name)).status_code in (401, 403)


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_user_without_any_role_is_refused(api_client, name):
    api_client.force_authenticate(UserFactory(roles=[]))
    assert api_client.get(reverse(name)).status_code == 403


def test_token_auth_works(api_client, researcher):
    response = api_client.post(reverse("api-token"), {"username": researcher.username, "password": "pw-for-tests-123"})
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(key=token).user == researcher
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.get(reverse("api-dataset-list")).status_code == 200


def test_only_admins_create_datasets(api_client, reviewer, admin_user):
    api_client.force_authenticate(reviewer)
    assert api_client.post(reverse("api-dataset-list"), {"slug": "x", "name": "X"}).status_code == 403
    api_client.force_authenticate(admin_user)
    response = api_client.post(reverse("api-dataset-list"), {"slug": "x", "name": "X", "reviews_per_item": 3})
    assert response.status_code == 201, response.content
    assert response.json()["reviews_per_item"] == 3


def test_require_all_checked_is_a_dataset_setting_admins_change(api_client, reviewer, admin_user):
    dataset = DatasetFactory(slug="strict")
    url = reverse("api-dataset-detail", args=["strict"])
    api_client.force_authenticate(reviewer)
    assert api_client.get(url).json()["require_all_checked"] is False
    assert api_client.patch(url, {"require_all_checked": True}, format="json").status_code == 403
    api_client.force_authenticate(admin_user)
    bad = api_client.patch(url, {"require_all_checked": "maybe"}, format="json")
    assert bad.status_code == 400 and "require_all_checked" in bad.content.decode()
    assert api_client.patch(url, {"require_all_checked": True}, format="json").json()["require_all_checked"] is True
    dataset.refresh_from_db()
    assert dataset.require_all_checked is True
    created = api_client.post(reverse("api-dataset-list"), {"slug": "y", "name": "Y"}, format="json").json()
    assert created["require_all_checked"] is False


def test_images_filter_by_dataset_status_source_and_label(api_client, researcher):
    a, b = DatasetFactory(slug="a"), DatasetFactory(slug="b")
    ImageFactory(dataset=a, source="emoset", label="fear", status="approved")
    ImageFactory(dataset=a, source="aigc", label="awe", status="in_review")
    ImageFactory(dataset=b, source="emoset", label="fear", status="approved")
    api_client.force_authenticate(researcher)
    url = reverse("api-image-list")

    def names(**params):
        return sorted(r["source"] + ":" + r["dataset"] for r in api_client.get(url, params).json()["results"])

    assert names(dataset="a") == ["aigc:a", "emoset:a"]
    assert names(dataset="a", label="fear") == ["emoset:a"]
    assert names(status="approved") == ["emoset:a", "emoset:b"]
    assert names(source="aigc") == ["aigc:a"]
    assert api_client.get(url, {"label": "joy"}).status_code == 400


def test_versions_list_every_version_in_order(api_client, researcher):
    image = ImageFactory()
    first = make_annotation(image)
    make_annotation(image, parent=first, payload_kwargs={"label": "sadness"})
    api_client.force_authenticate(researcher)
    rows = api_client.get(reverse("api-image-versions", args=[image.pk])).json()
    assert [r["version"] for r in rows] == [1, 2]
    assert [r["is_current"] for r in rows] == [False, True]
    assert rows[1]["content"]["ces"]["label"] == "sadness"
    assert rows[0]["content"]["triplets"][0]["subject"]["mask"]["size"] == [image.height, image.width]


def test_a_reviewer_never_reads_another_reviewers_answer(api_client, reviewer):
    image = ImageFactory()
    make_annotation(image)
    other = UserFactory(roles=["reviewer"])
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name=other.username, author_user=other)
    mine = make_annotation(image, kind=AnnotationKind.HUMAN, author_name=reviewer.username, author_user=reviewer)
    api_client.force_authenticate(reviewer)
    rows = api_client.get(reverse("api-annotation-list"), {"image": image.pk}).json()["results"]
    authors = sorted(r["author_name"] for r in rows)
    assert authors == sorted(["gpt-4o", reviewer.username])
    hidden = image.annotations.get(author_name=other.username)
    assert api_client.get(reverse("api-annotation-detail", args=[hidden.pk])).status_code == 404
    assert api_client.get(reverse("api-annotation-detail", args=[mine.pk])).status_code == 200


def test_schema_and_docs_are_served_to_logged_in_users(client, researcher):
    assert client.get(reverse("api-schema")).status_code in (401, 403)
    client.force_login(researcher)
    schema = client.get(reverse("api-schema"))
    assert schema.status_code == 200
    assert b"/api/images/" in schema.content
    docs = client.get(reverse("api-docs"))
    assert docs.status_code == 200
    # Swagger UI comes from our static files (drf-spectacular-sidecar), never from a CDN.
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs.content
    assert b"cdn.jsdelivr.net" not in docs.content and b"unpkg.com" not in docs.content


@pytest.mark.parametrize("value", ["abc", "1.5", "-1", "9" * 30])
def test_a_bad_image_filter_is_a_400_with_a_clear_message(api_client, researcher, value):
    api_client.force_authenticate(researcher)
    response = api_client.get(reverse("api-annotation-list"), {"image": value})
    assert response.status_code == 400
    assert response.json() == {"detail": "image: Must be an image id (a positive integer).", "field": "image"}


def test_annotations_filter_by_image(api_client, researcher):
    image, other = ImageFactory(), ImageFactory()
    make_annotation(image)
    make_annotation(other)
    api_client.force_authenticate(researcher)
    rows = api_client.get(reverse("api-annotation-list"), {"image": str(image.pk)}).json()["results"]
    assert [r["image"] for r in rows] == [image.pk]
