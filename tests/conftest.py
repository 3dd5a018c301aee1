"""Shared fixtures. Factories live in tests/factories.py."""

from __future__ import annotations

import pytest
from django.db import connection


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


@pytest.fixture(autouse=True)
def _phrase_embedder_off(settings):
    """No test loads the sentence-embedding model by accident: the embedder is off unless a
    test configures one (``EMOVERSE_ML["embedder"]``); triplets are then paired by words."""
    settings.EMOVERSE_ML = {**settings.EMOVERSE_ML, "embedder": None}


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


def pytest_terminal_summary(terminalreporter):
    """The fuzzer's case count (tests/api/test_fuzz.py), for the run's log and the notes."""
    counts = [value for reports in terminalreporter.stats.values() for report in reports
              for name, value in getattr(report, "user_properties", ()) if name == "fuzz_cases"]
    if counts:
        terminalreporter.write_line(f"schemathesis: {sum(counts)} cases in {len(counts)} fuzz runs (one per role)")


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
