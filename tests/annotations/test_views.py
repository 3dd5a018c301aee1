"""Pages of the annotations app: login, datasets, image files behind role checks."""

import pytest
from django.urls import reverse

from tests.factories import DatasetFactory, ImageFactory, UserFactory, png_bytes

pytestmark = pytest.mark.django_db


def test_pages_redirect_anonymous_users_to_login(client):
    for url in [reverse("home"), reverse("dataset-list")]:
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]


def test_login_then_logout(client, reviewer):
    response = client.post(reverse("login"), {"username": reviewer.username, "password": "pw-for-tests-123"})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("home")).status_code == 302


def test_a_user_without_a_role_cannot_see_datasets_or_images(client):
    image = ImageFactory()
    client.force_login(UserFactory(roles=[]))
    assert client.get(reverse("dataset-list")).status_code == 403
    assert client.get(reverse("image-file", args=[image.pk])).status_code == 403


def test_image_file_is_served_to_a_role_holder(client, researcher):
    image = ImageFactory(seed=7)
    client.force_login(researcher)
    response = client.get(reverse("image-file", args=[image.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == png_bytes(image.width, image.height, 7)


def test_dataset_page_lists_and_filters_images(client, researcher):
    dataset = DatasetFactory(slug="demo", name="Demo set")
    ImageFactory(dataset=dataset, original_name="a/storm.png", label="fear")
    ImageFactory(dataset=dataset, original_name="b/party.png", label="amusement")
    client.force_login(researcher)
    assert b"Demo set" in client.get(reverse("dataset-list")).content
    page = client.get(reverse("dataset-detail", args=["demo"]), {"label": "fear"}).content.decode()
    assert "storm.png" in page and "party.png" not in page
    partial = client.get(reverse("dataset-detail", args=["demo"]), {"label": "amusement"}, HTTP_HX_REQUEST="true")
    assert "<html" not in partial.content.decode() and "party.png" in partial.content.decode()
