"""A persistent database connection that died between requests (a PostgreSQL restart or
failover) costs no request: ``CONN_HEALTH_CHECKS`` checks it before the next request
reuses it. Issue 13: each stale connection gave one 500 during a soak.

The requests go through Django's WSGI handler, as a server sends them (the test client
skips the request-start signal that runs the check).
"""

from __future__ import annotations

import io
import json

import psycopg
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, connections
from django.test import RequestFactory
from rest_framework.authtoken.models import Token

from tests.factories import DatasetFactory, UserFactory

pytestmark = pytest.mark.postgres


def _get(path: str, token: str) -> int:
    environ = RequestFactory().get(path, HTTP_AUTHORIZATION=f"Token {token}").environ
    environ["wsgi.errors"] = io.StringIO()
    status = []
    response = WSGIHandler()(environ, lambda s, headers, exc_info=None: status.append(s))
    b"".join(response)
    response.close()  # request_finished, as a WSGI server does
    return int(status[0].split()[0])


def _terminate(pid: int) -> None:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)


def test_health_checks_are_on_for_the_default_database(settings):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0 or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")


def test_a_request_after_the_connection_was_terminated_succeeds(on_postgres, transactional_db, monkeypatch):
    DatasetFactory(slug="clouds")
    token = Token.objects.create(user=UserFactory(username="rita", roles=["reviewer"])).key
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)  # persistent, as in production
    connection.close()

    assert _get("/api/datasets/", token) == 200
    assert connection.connection is not None  # kept open for the next request
    _terminate(connection.connection.info.backend_pid)

    assert _get("/api/datasets/", token) == 200
    assert _get("/api/datasets/clouds/", token) == 200


def test_the_token_statement_is_the_requests_health_check(on_postgres, transactional_db, monkeypatch):
    """On a live kept connection a token request sends its token statement without a SELECT 1
    before it (that statement stands in for the check: the test above shows a dead one is still
    replaced)."""
    token = Token.objects.create(user=UserFactory(username="rita", roles=["reviewer"])).key
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    assert _get("/api/datasets/", token) == 200
    checks = []
    wrapper = connections["default"]
    real = wrapper.is_usable
    monkeypatch.setattr(wrapper, "is_usable", lambda: checks.append(1) or real())
    assert _get("/api/datasets/", token) == 200
    assert _get("/api/datasets/", token) == 200
    assert checks == []


def _post(path: str, token: str, body: dict) -> tuple[int, dict]:
    environ = RequestFactory().post(path, data=json.dumps(body), content_type="application/json",
                                    HTTP_AUTHORIZATION=f"Token {token}").environ
    environ["wsgi.errors"] = io.StringIO()
    status = []
    response = WSGIHandler()(environ, lambda s, headers, exc_info=None: status.append(s))
    content = b"".join(response)
    response.close()
    return int(status[0].split()[0]), json.loads(content) if content else {}


def test_a_submit_after_the_connection_was_terminated_succeeds(on_postgres, transactional_db, monkeypatch):
    """The submit's first statements are the token's and the lease read, sent together (a pipeline
    of prepared statements, annotations.prepared): on a connection that died they are sent again
    on a new one, as the health check would have had it."""
    from tests.review.conftest import accept_each, human_answer, image_in_review

    image_in_review(DatasetFactory(slug="clouds"))
    token = Token.objects.create(user=UserFactory(username="rita", roles=["reviewer"])).key
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    status, item = _post("/api/review/next/", token, {"dataset": "clouds"})
    assert status == 200, item
    _terminate(connection.connection.info.backend_pid)

    answer = human_answer(item)
    status, out = _post(f"/api/review/leases/{item['lease']['id']}/submit/", token,
                        {"expected_version": item["version"], "decision": "approved", "annotation": answer,
                         "element_decisions": accept_each(answer)})
    assert status == 201, out
