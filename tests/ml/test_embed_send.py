"""The embedding request a submit queues (``ml.tasks.on_phrases_added``): sent to the embedder's
queue with nothing waiting for its result, on a real Redis broker and result backend, and not
sent again for phrases the process asked for a moment ago (``ml.embed_requests``)."""

from __future__ import annotations

import json

import pytest
from celery import current_app

from kombu.exceptions import OperationalError as BrokerError

from ml import embeddings, tasks
from review import services as review_services
from ml.embed_requests import RecentRequests
from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import human_answer, image_in_review
from tests.review.test_apis import reviewed_twice_apart
from tests.ml.test_embeddings import embedder  # noqa: F401 (fixture)
from tests.ml.test_liveness import broker  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def test_the_request_is_queued_and_no_result_is_awaited_or_kept(embedder, broker):  # noqa: F811
    queue = tasks.embed_queue()
    tasks.on_phrases_added(sender=None, annotation_ids=[41, 42])
    messages = broker.lrange(queue, 0, -1)
    assert len(messages) == 1
    message = json.loads(messages[0])
    headers = message["headers"]
    assert headers["task"] == tasks.embed_annotations.name
    assert headers["ignore_result"] is True
    assert headers["argsrepr"] == "[[41, 42]]"
    # The web process listens for no result of it (the Redis backend subscribes per awaited task).
    assert broker.pubsub_numsub(f"celery-task-meta-{headers['id']}") == [(f"celery-task-meta-{headers['id']}".encode(), 0)]
    consumer = getattr(current_app.backend, "result_consumer", None)
    assert not getattr(consumer, "_pubsub", None) or not consumer._pubsub.channels


@pytest.fixture
def clock(monkeypatch):
    """The receiver's memory of recent requests on a clock the test moves (``clock[0]``, seconds)."""
    now = [1000.0]
    monkeypatch.setattr(tasks, "EMBED_REQUESTS", RecentRequests(ttl=60, clock=lambda: now[0]))
    return now


def sent_ids(broker, queue) -> list:  # noqa: F811
    return [json.loads(m)["headers"]["argsrepr"] for m in reversed(broker.lrange(queue, 0, -1))]


def test_phrases_asked_for_a_moment_ago_are_not_asked_for_again(embedder, broker, clock):  # noqa: F811
    queue = tasks.embed_queue()
    tasks.on_phrases_added(sender=None, annotation_ids=[1], phrases=frozenset({"rough open water"}))
    tasks.on_phrases_added(sender=None, annotation_ids=[2], phrases=frozenset({"rough open water"}))
    assert sent_ids(broker, queue) == ["[[1]]"]
    tasks.on_phrases_added(sender=None, annotation_ids=[3], phrases=frozenset({"rough open water", "lone trawler"}))
    tasks.on_phrases_added(sender=None, annotation_ids=[4], phrases=frozenset({"lone trawler"}))
    assert sent_ids(broker, queue) == ["[[1]]", "[[3]]"]  # a new phrase among them is asked for
    clock[0] += 59.9
    tasks.on_phrases_added(sender=None, annotation_ids=[5], phrases=frozenset({"rough open water"}))
    clock[0] += 0.1  # sixty seconds after the request: a lost one is asked for again
    tasks.on_phrases_added(sender=None, annotation_ids=[6], phrases=frozenset({"rough open water"}))
    tasks.on_phrases_added(sender=None, annotation_ids=[7])  # phrases not known: always asked
    assert sent_ids(broker, queue) == ["[[1]]", "[[3]]", "[[6]]", "[[7]]"]


def test_a_request_that_did_not_reach_the_broker_is_asked_for_again(embedder, broker, clock, monkeypatch):  # noqa: F811
    queue = tasks.embed_queue()
    real = tasks.embed_annotations.apply_async

    def down(*args, **kwargs):
        raise BrokerError("connection refused")

    monkeypatch.setattr(tasks.embed_annotations, "apply_async", down)
    tasks.on_phrases_added(sender=None, annotation_ids=[1], phrases=frozenset({"lone trawler"}))
    monkeypatch.setattr(tasks.embed_annotations, "apply_async", real)
    tasks.on_phrases_added(sender=None, annotation_ids=[2], phrases=frozenset({"lone trawler"}))
    assert sent_ids(broker, queue) == ["[[2]]"]


def test_without_an_embedder_nothing_is_remembered(broker, clock):  # noqa: F811
    tasks.on_phrases_added(sender=None, annotation_ids=[1], phrases=frozenset({"lone trawler"}))  # embedder off
    assert len(tasks.EMBED_REQUESTS) == 0


def test_the_memory_forgets_the_oldest_past_its_limit():
    now = [0.0]
    recent = RecentRequests(ttl=60, limit=2, clock=lambda: now[0])
    recent.sent(["a"])
    now[0] = 1
    recent.sent(["b", "c"])
    assert len(recent) == 2 and not recent.all_recent(["a"]) and recent.all_recent(["b", "c"])
    assert recent.all_recent([])
    now[0] = 61.5  # "a" and "b"/"c" are past the TTL once the next request is remembered
    recent.sent(["d"])
    assert len(recent) == 1 and recent.all_recent(["d"]) and not recent.all_recent(["b"])


@pytest.fixture(params=["as it runs", "python path"])
def submit_path(request, monkeypatch):
    """The submit as the database runs it (one statement on PostgreSQL, the Python path on
    SQLite) and the Python path on either (PostgreSQL's fallback after ``RS409``)."""
    if request.param == "python path":
        monkeypatch.setattr(review_services, "submit_one_statement", lambda **kwargs: None)
    return request.param


def review(client, slug: str, name: str, subject: str | None = None):
    client.force_authenticate(UserFactory(username=name, roles=["reviewer"]))
    item = client.post("/api/review/next/", {"dataset": slug}, format="json").json()
    answer = human_answer(item)
    if subject:
        answer["triplets"][0]["subject"].update(phrase=subject, status="edited")
    return client.post(f"/api/review/leases/{item['lease']['id']}/submit/",
                       {"expected_version": item["version"], "decision": "approved", "annotation": answer}, format="json")


def test_reviews_with_the_same_new_phrase_ask_for_it_once(embedder, broker, api_client, submit_path,  # noqa: F811
                                                          django_capture_on_commit_callbacks):
    """Two reviewers rename the subject to the same new phrase: the first submit asks a worker to
    embed it (with the other phrases, none stored); the second asks for nothing."""
    queue = tasks.embed_queue()
    dataset = DatasetFactory(slug="embed-once")
    image_in_review(dataset, annotators=False)
    image_in_review(dataset, annotators=False)
    for name in ("rev1", "rev2"):
        with django_capture_on_commit_callbacks(execute=True):
            r = review(api_client, dataset.slug, name, subject="Lone trawler")
        assert r.status_code == 201, r.content
    assert len(broker.lrange(queue, 0, -1)) == 1
    assert tasks.EMBED_REQUESTS.all_recent(["lone trawler", "stormy sea", "dark, churning"])


def test_a_review_whose_phrases_are_all_embedded_asks_for_nothing(embedder, broker, api_client, submit_path,  # noqa: F811
                                                                  django_capture_on_commit_callbacks):
    queue = tasks.embed_queue()
    dataset = DatasetFactory(slug="embedded")
    image_in_review(dataset, annotators=False)
    image_in_review(dataset, annotators=False)
    embeddings.embed_phrases(["stormy sea", "dark, churning", "small boat"])
    with django_capture_on_commit_callbacks(execute=True):
        assert review(api_client, dataset.slug, "rev1").status_code == 201
    assert broker.lrange(queue, 0, -1) == []
    with django_capture_on_commit_callbacks(execute=True):  # one new phrase: asked for, alone among them
        assert review(api_client, dataset.slug, "rev2", subject="Lone trawler").status_code == 201
    assert len(broker.lrange(queue, 0, -1)) == 1
    assert tasks.EMBED_REQUESTS.all_recent(["lone trawler"]) and not tasks.EMBED_REQUESTS.all_recent(["small boat"])


def test_an_adjudication_asks_only_for_phrases_not_asked_for_a_moment_ago(embedder, broker, api_client, adjudicator,  # noqa: F811
                                                                           django_capture_on_commit_callbacks):
    queue = tasks.embed_queue()
    with django_capture_on_commit_callbacks(execute=True):
        image = reviewed_twice_apart(api_client, lambda name: UserFactory(username=name, roles=["reviewer"]))
    asked = len(broker.lrange(queue, 0, -1))
    assert asked >= 1 and tasks.EMBED_REQUESTS.all_recent(["stormy sea", "dark, churning", "small boat"])
    api_client.force_authenticate(adjudicator)
    detail = api_client.get(f"/api/review/adjudication/{image.pk}/").json()
    answer = human_answer(detail, label="fear")
    with django_capture_on_commit_callbacks(execute=True):  # the reviews' phrases: asked for already
        r = api_client.post(f"/api/review/adjudication/{image.pk}/",
                            {"expected_version": detail["version"], "annotation": answer, "reason": "fear fits"}, format="json")
    assert r.status_code == 201, r.content
    assert len(broker.lrange(queue, 0, -1)) == asked
