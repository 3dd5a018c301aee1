"""``Cache-Control: private, no-store`` on every response for a logged-in user (pages,
API by session or token, export downloads); static files stay cacheable. Issue 13:
authenticated pages and export downloads carried no Cache-Control."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.factories import DatasetFactory, ImageFactory, UserFactory

pytestmark = pytest.mark.django_db


def _private(response) -> bool:
    parts = {p.strip() for p in response.get("Cache-Control", "").split(",")}
    return {"private", "no-store"} <= parts


@pytest.fixture
def boss():
    return UserFactory(username="boss", roles=["reviewer", "adjudicator", "researcher", "admin"])


@pytest.fixture
def logged(boss):
    client = Client()
    client.force_login(boss)
    return client


@pytest.mark.parametrize("url", ["/", "/datasets/", "/datasets/clouds/", "/review/", "/review/adjudication/",
                                 "/review/disagreements/", "/agreement/", "/agreement/calibration/",
                                 "/pipeline/clouds/", "/exports/", "/api/datasets/", "/api/review/progress/?dataset=clouds",
                                 "/api/schema/", "/api/docs/"])
def test_pages_and_api_answers_for_a_logged_in_user_are_private(logged, url):
    DatasetFactory(slug="clouds")
    response = logged.get(url)
    assert response.status_code == 200, url
    assert _private(response), (url, response.get("Cache-Control"))


def test_api_answers_to_a_token_are_private(api_client, boss):
    DatasetFactory(slug="clouds")
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=boss).key}")
    response = api_client.get("/api/datasets/")
    assert response.status_code == 200 and _private(response)
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    refused = api_client.get("/api/datasets/clouds/")
    assert refused.status_code == 401 and _private(refused)


def test_the_login_page_is_not_stored(client):
    assert _private(client.get("/accounts/login/"))


def test_export_downloads_are_private(logged, django_capture_on_commit_callbacks):
    DatasetFactory(slug="clouds")
    with django_capture_on_commit_callbacks(execute=True):
        started = logged.post("/api/exports/", {"dataset": "clouds", "format": "emoverse-jsonl"}, content_type="application/json")
    assert started.status_code == 201, started.content
    pk = started.json()["id"]
    export = logged.get(f"/api/exports/{pk}/").json()
    assert export["status"] == "complete", export
    names = [f["path"] for f in export["files"]]
    for url in [f"/exports/{pk}/download.zip", f"/api/exports/{pk}/download/",
                *(f"/exports/{pk}/files/{name}" for name in names), *(f"/api/exports/{pk}/files/{name}" for name in names)]:
        response = logged.get(url)
        assert response.status_code == 200, url
        assert _private(response), (url, response.get("Cache-Control"))


def test_image_files_keep_their_own_private_cache_time(logged):
    image = ImageFactory(dataset=DatasetFactory(slug="clouds"))
    response = logged.get(f"/images/{image.pk}/file")
    assert response.status_code == 200 and response["Cache-Control"] == "private, max-age=3600"


def test_static_files_stay_cacheable_for_a_logged_in_user(settings, boss):
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    client = Client()  # a fresh handler: WhiteNoise reads its settings when it starts
    client.force_login(boss)
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert "public" in response["Cache-Control"] and "no-store" not in response["Cache-Control"]
