"""The review API's hot statements are prepared once per connection on PostgreSQL
(``annotations.prepared``): the token's statement, the submit's read, ``review_next`` and
``review_submit``. Behind PgBouncer in transaction pooling (``prepare_threshold`` None) nothing is
prepared and the same requests give the same answers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotations.models import Annotation
from review.models import LeaseState, ReviewSubmission
from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import accept_each, human_answer, image_in_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

HOT = ("emoverse_token_user", "review_submit_read", "review_next", "review_submit(")


@pytest.fixture(autouse=True)
def _postgres(on_postgres):
    pass


@pytest.fixture
def client():
    DatasetFactory(slug="prep")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=UserFactory(username='ann', roles=['reviewer'])).key}")
    return client


def review_one(client) -> dict:
    item = client.post("/api/review/next/", {"dataset": "prep"}, format="json")
    assert item.status_code == 200, item.content
    item = item.json()
    answer = human_answer(item)
    r = client.post(f"/api/review/leases/{item['lease']['id']}/submit/",
                    {"expected_version": item["version"], "decision": "approved", "annotation": answer,
                     "element_decisions": accept_each(answer)}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def prepared() -> dict[str, int]:
    """This connection's prepared statements of the hot path: how many times each ran."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        rows = cursor.fetchall()
    return {hot: sum(runs for statement, runs in rows if hot in statement) for hot in HOT} | {
        "statements": sum(1 for statement, _ in rows if any(hot in statement for hot in HOT))}


def test_the_hot_statements_are_prepared_once_and_run_again_by_name(client):
    dataset = DatasetFactory._meta.model.objects.get(slug="prep")
    for _ in range(3):
        image_in_review(dataset)
    review_one(client)
    first = prepared()
    assert all(first[hot] >= 1 for hot in HOT), first
    review_one(client)
    review_one(client)
    again = prepared()
    assert again["statements"] == first["statements"]  # nothing prepared anew: the same statements ran by name
    assert again["emoverse_token_user"] == first["emoverse_token_user"] + 4
    assert again["review_next"] == first["review_next"] + 2
    assert again["review_submit_read"] == first["review_submit_read"] + 2
    assert again["review_submit("] == first["review_submit("] + 2
    assert ReviewSubmission.objects.count() == Annotation.objects.filter(kind="human").count() == 3


def test_behind_pgbouncer_nothing_is_prepared_and_the_answers_are_the_same(client, raw_connection):
    dataset = DatasetFactory._meta.model.objects.get(slug="prep")
    for _ in range(2):
        image_in_review(dataset)
    kept, raw_connection.prepare_threshold = raw_connection.prepare_threshold, None  # what DB_POOL_MODE=transaction sets
    with_client = review_one(client)
    assert prepared()["statements"] == 0
    raw_connection.prepare_threshold = kept
    with_prepared = review_one(client)
    assert prepared()["statements"] >= 4
    assert {k: v for k, v in with_client.items() if k not in ("annotation_id",)} == \
        {k: v for k, v in with_prepared.items() if k not in ("annotation_id",)}
    assert set(ReviewSubmission.objects.values_list("lease__state", flat=True)) == {LeaseState.SUBMITTED}


@pytest.mark.parametrize(("pool_mode", "threshold"), [("transaction", None), ("", 5)])
def test_the_setting_prepares_nothing_behind_pgbouncer(pool_mode, threshold):
    """``DB_POOL_MODE=transaction`` sets ``prepare_threshold`` None; otherwise it is set (read in a
    process of its own, as the settings are read at start)."""
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x", "DB_POOL_MODE": pool_mode}
    out = subprocess.run([sys.executable, "-c", "from emoverse_site import settings; "
                          "print(settings.DATABASES['default']['OPTIONS']['prepare_threshold'])"],
                         env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(threshold)


def behind_our_back(raw, sql: str) -> None:
    """Run ``sql`` on the connection's session without psycopg seeing it (as a pooler's
    ``DISCARD ALL`` or another process's migration would)."""
    result = raw.pgconn.exec_(sql.encode())
    assert result.status in (1, 2), result.error_message  # COMMAND_OK, TUPLES_OK


@pytest.mark.parametrize("first", ["next", "submit"])
def test_a_prepared_statement_gone_from_the_session_costs_no_request(client, raw_connection, first):
    """A pooler that hands the session another server connection, or a DISCARD ALL, drops the
    statements the connection prepared: the request runs them unprepared and the connection
    prepares nothing more (the statement alone for next; the token's pipeline for submit)."""
    raw = raw_connection
    dataset = DatasetFactory._meta.model.objects.get(slug="prep")
    for _ in range(3):
        image_in_review(dataset)
    review_one(client)
    item = client.post("/api/review/next/", {"dataset": "prep"}, format="json").json()
    behind_our_back(raw, "DEALLOCATE ALL")
    if first == "next":
        again = client.post("/api/review/next/", {"dataset": "prep"}, format="json")
        assert again.status_code == 200, again.content
        assert again.json()["lease"]["id"] == item["lease"]["id"]
    answer = human_answer(item)
    r = client.post(f"/api/review/leases/{item['lease']['id']}/submit/",
                    {"expected_version": item["version"], "decision": "approved", "annotation": answer,
                     "element_decisions": accept_each(answer)}, format="json")
    assert r.status_code == 201, r.content
    assert raw.prepare_threshold is None and prepared()["statements"] == 0
    review_one(client)  # and the next item as well, unprepared
    assert ReviewSubmission.objects.count() == 3


def test_a_function_that_changed_what_it_returns_is_called_again_unprepared(raw_connection):
    """A migration that changes what a prepared function returns, run by another process:
    PostgreSQL refuses the kept statement ("cached plan must not change result type"); the call
    goes again unprepared and gives the new columns."""
    from annotations.prepared import prepared_cursor

    raw = raw_connection
    behind_our_back(raw, "CREATE FUNCTION pg_temp.shape() RETURNS TABLE (a integer) LANGUAGE sql AS 'SELECT 1'")
    for _ in range(2):
        with prepared_cursor() as cursor:
            cursor.execute("SELECT * FROM pg_temp.shape()", [])
            assert cursor.fetchall() == [(1,)]
    behind_our_back(raw, "DROP FUNCTION pg_temp.shape(); "
                         "CREATE FUNCTION pg_temp.shape() RETURNS TABLE (a integer, b text) LANGUAGE sql AS 'SELECT 2, ''x'''")
    with prepared_cursor() as cursor:
        cursor.execute("SELECT * FROM pg_temp.shape()", [])
        assert cursor.fetchall() == [(2, "x")]
    assert raw.prepare_threshold is None and prepared_cursor() is None


def test_without_pipeline_mode_the_token_and_the_read_go_as_one_text(client, monkeypatch):
    """A psycopg whose libpq has no pipeline mode (before libpq 14): the two reads go as one text
    of two statements, still one round trip, and the submit is answered as ever."""
    from annotations import tokens

    monkeypatch.setattr(tokens, "pipeline_supported", lambda: False)
    dataset = DatasetFactory._meta.model.objects.get(slug="prep")
    image_in_review(dataset)
    with CaptureQueriesContext(connection) as queries:
        review_one(client)
    both = [q["sql"] for q in queries.captured_queries if "review_submit_read" in q["sql"]]
    assert len(both) == 1 and "emoverse_token_user" in both[0]


@pytest.mark.parametrize("values", [[], ["reviewer", "admin"], ['a "quoted" one', "back\\slash", "{braces}, comma", "NULL", " ", "é ü 表"],
                                    [1, 9_223_372_036_854_775_807]])
@pytest.mark.parametrize("binding", ["prepared", "client"])
def test_an_array_sent_as_its_text_reads_back_as_the_list(values, binding):
    """``array_literal``: arrays of the hot statements go as text cast by the statement (psycopg
    dumps a list in Python); the server reads back exactly the list, on either binding."""
    from annotations.prepared import array_literal, prepared_cursor

    cast = "bigint[]" if values and isinstance(values[0], int) else "text[]"
    cursor = prepared_cursor() if binding == "prepared" else connection.cursor()
    with cursor:
        cursor.execute(f"SELECT %s::{cast}", [array_literal(values)])
        assert cursor.fetchone()[0] == values
