"""Security tests: login lockout, API tokens, CSP, caching, body limits, database blips."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory

PASSWORD = "pw-for-tests-123"  # UserFactory's password


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """A fast hasher keeps hundreds of login attempts quick (tests only)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def rita(db):
    return UserFactory(username="rita", roles=["reviewer"])
