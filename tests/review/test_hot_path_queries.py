"""Query budgets of the review hot path (issue 16): ``next`` and ``submit`` over HTTP with an
API token, counted from the token lookup to the answer. Budgets, not timings: a change that
adds a query per request shows here. The count must not grow with the queue, the number of
model annotators or the reviews an item has had.

On PostgreSQL ``next`` is the token's statement and one ``review_next`` (migration
``review.0006``: the claim and every read of the payload); SQLite claims and reads in Python,
so its budget for ``next`` is larger. ``BEGIN``/``COMMIT``/``SAVEPOINT`` count as queries here."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import DatasetFactory
from tests.review.conftest import accept_each, human_answer, image_in_review

# Outside a test transaction, as a web request runs (inside one, the claim would need a savepoint).
pytestmark = pytest.mark.django_db(transaction=True)

NEXT_BUDGET = {"postgresql": 2, "sqlite": 20}
PAIRING = 1  # with two or more model annotators: their phrases' stored embeddings, to pair their triplets
# PostgreSQL: the token's statement, with it in the same round trip (annotations.tokens.ReadWithToken:
# a pipeline of the two prepared statements, annotations.prepared; one text of both behind PgBouncer)
# the lease with its image, dataset and plan, the model answers (and, for the last of overlapping
# reviews, the other reviews) with their elements, and the stored embeddings of the answer's phrases;
# and review_submit(...), which writes everything in one statement (review.submit_postgres): three
# statements in two round trips. Model annotators' own phrases need one more query (PAIRING).
SUBMIT_BUDGET = {"postgresql": 3, "sqlite": 27}
OVERLAP_EXTRA = {"postgresql": 0, "sqlite": 5}  # the last of K = 2 reviews reads the other one


@pytest.fixture
def token_client(reviewer):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=reviewer).key}")
    return client


def next_item(client):
    response = client.post("/api/review/next/", {"dataset": "hot"}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def submit(client, item):
    answer = human_answer(item)
    body = {"expected_version": item["version"], "decision": "approved", "annotation": answer,
            "element_decisions": accept_each(answer)}
    return client.post(f"/api/review/leases/{item['lease']['id']}/submit/", body, format="json")


@pytest.mark.parametrize("images", [3, 40])
def test_next_stays_within_its_query_budget_whatever_the_queue_size(token_client, django_assert_max_num_queries, images):
    dataset = DatasetFactory(slug="hot")
    for i in range(images):
        image_in_review(dataset, priority=i / images, annotators=i % 2 == 1)
    with django_assert_max_num_queries(NEXT_BUDGET[connection.vendor]):
        item = next_item(token_client)
    assert item["annotators"] == [] and item["base"] is not None
    with django_assert_max_num_queries(NEXT_BUDGET[connection.vendor]):
        again = next_item(token_client)  # the lease the reviewer holds
    assert again["lease"]["id"] == item["lease"]["id"]


def test_next_with_two_annotators_adds_only_the_pairing_query(token_client, django_assert_max_num_queries):
    dataset = DatasetFactory(slug="hot")
    image_in_review(dataset)
    with django_assert_max_num_queries(NEXT_BUDGET[connection.vendor] + PAIRING):
        item = next_item(token_client)
    assert len(item["annotators"]) == 2 and item["disagreement"] is not None


def test_next_with_a_draft_and_without_annotators_stays_within_budget(token_client, reviewer, django_assert_max_num_queries):
    dataset = DatasetFactory(slug="hot")
    image_in_review(dataset, annotators=False)
    item = next_item(token_client)
    token_client.put(f"/api/review/leases/{item['lease']['id']}/draft/", {"payload": {"note": "half done"}}, format="json")
    with django_assert_max_num_queries(NEXT_BUDGET[connection.vendor]):
        again = next_item(token_client)
    assert again["draft"]["payload"] == {"note": "half done"} and again["annotators"] == []


@pytest.mark.parametrize("annotators", [False, True])
def test_submit_stays_within_its_query_budget(token_client, django_assert_max_num_queries, annotators):
    dataset = DatasetFactory(slug="hot")
    image_in_review(dataset, annotators=annotators)
    item = next_item(token_client)
    budget = SUBMIT_BUDGET[connection.vendor] + (PAIRING if annotators and connection.vendor == "postgresql" else 0)
    with django_assert_max_num_queries(budget):
        response = submit(token_client, item)
    assert response.status_code == 201, response.content
    assert response.json()["image_status"] == "approved"


def test_submit_of_an_overlapping_review_stays_within_budget(make_reviewer, django_assert_max_num_queries):
    """K = 2: the second review reads the first one to decide between approval and adjudication
    (on PostgreSQL in the same query as the model answers)."""
    dataset = DatasetFactory(slug="hot", reviews_per_item=2, overlap_fraction=1.0)
    image_in_review(dataset)
    clients = []
    for name in ("r1", "r2"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_reviewer(name)).key}")
        clients.append(client)
    items = [next_item(client) for client in clients]
    assert submit(clients[0], items[0]).status_code == 201
    budget = SUBMIT_BUDGET[connection.vendor] + OVERLAP_EXTRA[connection.vendor] + (connection.vendor == "postgresql") * PAIRING
    with django_assert_max_num_queries(budget):
        response = submit(clients[1], items[1])
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("path", ["/api/review/next/", "/api/review/leases/7/submit/"])
def test_the_hot_paths_are_resolved_without_searching_other_includes(path):
    """Django searches every include whose prefix fits, in order, and records each pattern it tried:
    the review API comes first, so its requests try only review.api_urls' own patterns."""
    from django.urls import resolve

    from review import api_urls

    match = resolve(path)
    assert match.url_name in ("api-review-next", "api-review-submit")
    assert {str(tried[0].pattern) for tried in match.tried} == {"api/review/"}
    assert len(match.tried) <= len(api_urls.urlpatterns)
