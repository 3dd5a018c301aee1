"""Shared fixtures. Factories live in tests/factories.py."""

from __future__ import annotations

import os
import socket
import uuid

import pytest
import redis
from django.db import connection

from tests.browser import browser, pages  # noqa: F401 (the browser tests' fixtures)
from tests.live_server import RequestGate

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Databases 1-15 of the local Redis are handed out to test processes (claims live in database 0).
REDIS_DATABASES = range(1, 16)
REDIS_CLAIM_SECONDS = 6 * 3600


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


@pytest.fixture(autouse=True)
def _fresh_temperatures():
    """Calibration temperatures a worker may reuse for half a minute are read afresh per test."""
    from ml.selectors import forget_temperatures

    forget_temperatures()


@pytest.fixture(autouse=True)
def _fresh_embedding_requests():
    """The phrases a process asked to have embedded lately are forgotten between tests."""
    from ml.tasks import EMBED_REQUESTS

    EMBED_REQUESTS.clear()


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


def _redis_reachable() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url():
    """``redis://…/<n>``: a Redis database this test process has to itself, empty at the
    start. Each process (an xdist worker, another test run on the same machine) claims a
    different one, so flushing it or queueing in it never touches another's keys."""
    if not _redis_reachable():
        pytest.skip(f"needs a Redis server on {REDIS_HOST}:{REDIS_PORT}")
    claims = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
    number = next((n for n in REDIS_DATABASES
                   if claims.set(f"emoverse-tests:redis-db:{n}", owner, nx=True, ex=REDIS_CLAIM_SECONDS)), None)
    if number is None:
        pytest.fail(f"every Redis database {REDIS_DATABASES.start}-{REDIS_DATABASES.stop - 1} is claimed by another test run")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()
    if claims.get(f"emoverse-tests:redis-db:{number}") == owner.encode():
        claims.delete(f"emoverse-tests:redis-db:{number}")
