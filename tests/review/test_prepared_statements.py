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


def test_behind_pgbouncer_nothing_is_prepared_and_the_answers_are_the_same(client):
    dataset = DatasetFactory._meta.model.objects.get(slug="prep")
    for _ in range(2):
        image_in_review(dataset)
    connection.ensure_connection()
    raw = connection.connection
    kept, raw.prepare_threshold = raw.prepare_threshold, None  # what DB_POOL_MODE=transaction sets
    try:
        with_client = review_one(client)
        assert prepared()["statements"] == 0
    finally:
        raw.prepare_threshold = kept
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
