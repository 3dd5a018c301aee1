"""Fixtures of the security tests (login lockout, API tokens, CSP, caching, body limits,
database blips, the text and number policy): a dataset with an item in review, a
reviewer's API client, and one user who holds every role (and the Django admin) to
reach every page."""

from __future__ import annotations

import json

import pytest

from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import image_in_review

PASSWORD = "pw-for-tests-123"  # UserFactory's password


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """A fast hasher keeps hundreds of login attempts quick (tests only)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def rita(db):
    return UserFactory(username="rita", roles=["reviewer"])


@pytest.fixture
def dataset(db):
    return DatasetFactory(slug="demo")


@pytest.fixture
def boss(db):
    return UserFactory(username="boss", roles=["admin", "reviewer", "researcher", "adjudicator"],
                       is_staff=True, is_superuser=True)


@pytest.fixture
def as_reviewer(api_client, reviewer):
    api_client.force_authenticate(reviewer)
    return api_client


@pytest.fixture
def item(as_reviewer, dataset) -> dict:
    """The reviewer's leased item (``POST next``)."""
    image_in_review(dataset)
    response = as_reviewer.post("/api/review/next/", {"dataset": dataset.slug}, format="json")
    assert response.status_code == 200
    return response.json()


def send(client, method: str, url: str, body) -> object:
    """``body`` as JSON text (a ``str`` is sent as it is): ``json.dumps`` writes a lone
    surrogate as its ``\\ud83d`` escape, which the test client's own encoder cannot."""
    return getattr(client, method)(url, body if isinstance(body, str) else json.dumps(body), content_type="application/json")
