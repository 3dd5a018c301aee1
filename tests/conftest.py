"""Shared fixtures. Factories live in tests/factories.py."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.browser import browser, pages  # noqa: F401 (the browser tests' fixtures)
from tests.live_server import RequestGate


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Every test writes media and exports under its own temporary folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (run with DATABASE_URL=postgres://...)")
    return True


def _user_with_role(django_user_model, role: str):
    from tests.factories import UserFactory

    return UserFactory(username=f"{role}1", roles=[role])


@pytest.fixture
def reviewer(db, django_user_model):
    return _user_with_role(django_user_model, "reviewer")


@pytest.fixture
def adjudicator(db, django_user_model):
    return _user_with_role(django_user_model, "adjudicator")


@pytest.fixture
def researcher(db, django_user_model):
    return _user_with_role(django_user_model, "researcher")


@pytest.fixture
def admin_user(db, django_user_model):
    return _user_with_role(django_user_model, "admin")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(scope="session")
def live_server(live_server):
    """pytest-django's live server behind a :class:`~tests.live_server.RequestGate`."""
    live_server.gate = RequestGate.install(live_server)
    return live_server


@pytest.fixture(autouse=True)
def _live_server_gate(request):
    """A test that uses the live server: its requests (those that carry its token, or none)
    reach the server only while it runs, and its teardown waits for those inside before the
    database is flushed. (Set up after ``transactional_db``, so torn down before its flush;
    ``pages`` (tests/browser.py), set up after this one, closes the test's pages before.)"""
    if "live_server" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("transactional_db")
    gate = request.getfixturevalue("live_server").gate
    gate.open()
    yield
    gate.close()
