"""A body over DATA_UPLOAD_MAX_MEMORY_SIZE (20 MB) is a 413, JSON ``{"detail", "field"}``
under /api/ and plain text on pages, and nothing is written. Issue 13: a 50 MB body got
an HTML 400."""

from __future__ import annotations

import json

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from review import queue
from review.models import Draft, Lease
from tests.factories import DatasetFactory, ImageFactory, UserFactory, make_annotation

pytestmark = pytest.mark.django_db
BIG = 50 * 1024 * 1024


def _json_body(size: int) -> str:
    return json.dumps({"payload": {"note": "x" * size}})


def _is_json_413(response) -> bool:
    limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
    return (response.status_code == 413 and response["Content-Type"] == "application/json"
            and response.json() == {"detail": f"The request body is larger than the {limit_mb} MB this server accepts.",
                                    "field": None})


@pytest.fixture
def reviewer_client():
    client = Client()
    client.force_login(UserFactory(username="rita", roles=["reviewer"]))
    return client


def test_a_50_mb_draft_is_a_json_413_and_nothing_is_written(reviewer_client):
    dataset = DatasetFactory(slug="clouds")
    make_annotation(ImageFactory(dataset=dataset))
    lease = queue.lease_next(dataset=dataset, reviewer=UserFactory(username="rita"))
    response = reviewer_client.put(f"/api/review/leases/{lease.pk}/draft/", _json_body(BIG), content_type="application/json")
    assert _is_json_413(response)
    assert not Draft.objects.exists()
    small = reviewer_client.put(f"/api/review/leases/{lease.pk}/draft/", _json_body(10), content_type="application/json")
    assert small.status_code == 200 and Draft.objects.count() == 1


def test_a_50_mb_next_is_a_json_413_and_leases_nothing(reviewer_client):
    make_annotation(ImageFactory(dataset=DatasetFactory(slug="clouds")))
    body = json.dumps({"dataset": "clouds", "pad": "x" * BIG})
    assert _is_json_413(reviewer_client.post("/api/review/next/", body, content_type="application/json"))
    assert not Lease.objects.exists()


def test_a_50_mb_token_request_is_a_json_413_and_counts_no_login(client):
    body = json.dumps({"username": "rita", "password": "x" * BIG})
    assert _is_json_413(client.post("/api/auth/token/", body, content_type="application/json"))
    assert not AccessAttempt.objects.exists()


def test_a_multipart_form_field_over_the_limit_is_a_json_413(client):
    """Django's own check (a form field, counted while the view parses the body)."""
    assert _is_json_413(client.post("/api/auth/token/", {"username": "rita", "password": "x" * (21 * 1024 * 1024)}))
    assert not AccessAttempt.objects.exists()


def test_a_50_mb_form_post_to_a_page_is_a_plain_413(client):
    response = client.post("/accounts/login/", "username=rita&password=" + "x" * BIG,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == "The request body is larger than the 20 MB this server accepts."
    assert not AccessAttempt.objects.exists()
