"""A submit with an API token on PostgreSQL sends the lease read with the token's statement, in
one round trip (``annotations.tokens.ReadWithToken``, ``review.apis.SubmitAPI.initial``). What
the read found is used only for a request the token and the role allow; every other answer is the
one a separate read gives."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotations.models import Annotation, AnnotationKind
from review.models import Disagreement, Lease, LeaseState, ReviewSubmission
from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import accept_each, human_answer, image_in_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _postgres(on_postgres):
    pass


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def body_for(item: dict, **changes) -> dict:
    answer = human_answer(item)
    return {"expected_version": item["version"], "decision": "approved", "annotation": answer,
            "element_decisions": accept_each(answer), **changes}


def post(client, lease_id, body, **kwargs):
    return client.post(f"/api/review/leases/{lease_id}/submit/", body, format="json", **kwargs)


@pytest.fixture
def leased():
    """An image leased by "ann" (token client), with its payload."""
    dataset = DatasetFactory(slug="rwt")
    image_in_review(dataset)
    client = token_client(UserFactory(username="ann", roles=["reviewer"]))
    item = client.post("/api/review/next/", {"dataset": "rwt"}, format="json").json()
    return client, item


@pytest.fixture(params=["prepared", "one text"])
def binding(request, raw_connection):
    """How the token's statement and the read share a round trip: a pipeline of two prepared
    statements (annotations.prepared), or, where nothing is prepared (prepare_threshold None,
    behind PgBouncer in transaction pooling), one text of both statements."""
    if request.param == "one text":
        raw_connection.prepare_threshold = None
    return request.param


def test_the_token_and_the_lease_are_read_in_one_round_trip(leased, binding):
    client, item = leased
    pipelined = []

    def record(execute, sql, params, many, context):
        pipelined.append(bool(connection.connection.pgconn.pipeline_status))
        return execute(sql, params, many, context)

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(record):
        r = post(client, item["lease"]["id"], body_for(item))
    assert r.status_code == 201, r.content
    sent = [q["sql"] for q in queries.captured_queries]
    # the token with the lease read; the embeddings of the annotators' phrases; review_submit
    if binding == "prepared":
        assert len(sent) == 4 and pipelined == [True, True, False, False]
        assert "emoverse_token_user" in sent[0] and "review_submit_read" in sent[1]
    else:
        assert len(sent) == 3 and pipelined == [False, False, False]
        assert "emoverse_token_user" in sent[0] and "review_submit_read" in sent[0]
    assert sum("review_submit_read" in q for q in sent) == 1
    assert sent[-1].startswith("SELECT * FROM review_submit(")
    version = Annotation.objects.get(pk=r.json()["annotation_id"])
    assert (version.kind, version.author_name) == (AnnotationKind.HUMAN, "ann")
    assert Disagreement.objects.filter(annotation=version).count() == r.json()["disagreements"] > 0


def test_a_refused_token_gets_401_and_nothing_of_the_read_is_used(leased):
    client, item = leased
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    r = post(client, item["lease"]["id"], body_for(item))
    assert r.status_code == 401
    assert ReviewSubmission.objects.count() == 0 and Lease.objects.get().state == LeaseState.ACTIVE


def test_another_reviewers_token_is_refused_as_with_a_separate_read(leased):
    client, item = leased
    bob = token_client(UserFactory(username="bob", roles=["reviewer"]))
    r = post(bob, item["lease"]["id"], body_for(item))
    assert r.status_code == 403, r.content
    rater = token_client(UserFactory(username="rita", roles=["rater"]))  # no reviewer role: refused before the view
    assert post(rater, item["lease"]["id"], body_for(item)).status_code == 403
    assert ReviewSubmission.objects.count() == 0
    assert post(client, item["lease"]["id"], body_for(item)).status_code == 201  # the lease is still ann's to submit


@pytest.mark.parametrize("lease_id", [0, 2**63, 10**30])
def test_a_lease_id_no_lease_can_have_is_404(leased, lease_id):
    client, item = leased
    assert post(client, lease_id, body_for(item)).status_code == 404


@pytest.mark.parametrize("raw", [b"[1, 2]", b'"text"', b"{not json", b"{}"])
def test_a_body_that_is_not_a_submit_is_answered_as_before(leased, raw):
    client, item = leased
    r = client.post(f"/api/review/leases/{item['lease']['id']}/submit/", raw, content_type="application/json")
    assert r.status_code == 400 and "detail" in r.json()
    assert ReviewSubmission.objects.count() == 0


@pytest.mark.parametrize("phrase", ["nul\x00here", "lone \ud800 surrogate"])
def test_a_phrase_with_nul_or_a_lone_surrogate_is_a_400_with_its_field(leased, phrase):
    client, item = leased
    body = body_for(item)
    body["annotation"]["triplets"][0]["subject"]["phrase"] = phrase
    raw = json.dumps(body).encode()  # \u0000 and \ud800 escaped, as a client would send them
    r = client.post(f"/api/review/leases/{item['lease']['id']}/submit/", raw, content_type="application/json")
    assert r.status_code == 400 and r.json()["field"]
    assert ReviewSubmission.objects.count() == 0 and Lease.objects.get().state == LeaseState.ACTIVE


def test_the_read_is_taken_only_for_the_phrases_it_was_sent_with(leased, monkeypatch):
    """The phrases peeked at before the authentication are those the view reads after parsing;
    should they ever differ, the view reads the lease again rather than use embeddings of others."""
    from review import submit_token_read

    client, item = leased
    real = submit_token_read.lease_read_with_token
    other = json.dumps({"annotation": {"triplets": [{"subject": {"phrase": "something else"}}]}}).encode()
    monkeypatch.setattr(submit_token_read, "lease_read_with_token", lambda pk, body: real(pk, other))
    with CaptureQueriesContext(connection) as queries:
        r = post(client, item["lease"]["id"], body_for(item))
    assert r.status_code == 201, r.content
    assert sum("review_submit_read" in q["sql"] for q in queries.captured_queries) == 2


def test_a_session_submit_reads_the_lease_after_the_authentication(leased, monkeypatch):
    from review import submit_token_read

    _, item = leased
    peeked = []
    monkeypatch.setattr(submit_token_read, "lease_read_with_token", lambda pk, body: peeked.append(pk))
    session = APIClient()
    session.force_login(Lease.objects.get().reviewer)
    with CaptureQueriesContext(connection) as queries:
        r = post(session, item["lease"]["id"], body_for(item))
    assert r.status_code == 201, r.content
    assert peeked == []  # no token: the body is not looked at before the authentication
    assert not any("emoverse_token_user" in q["sql"] for q in queries.captured_queries)
    assert sum("review_submit_read" in q["sql"] for q in queries.captured_queries) == 1
