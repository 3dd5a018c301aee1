"""The embedding request a submit queues (``ml.tasks.on_phrases_added``): sent to the embedder's
queue with nothing waiting for its result, on a real Redis broker and result backend."""

from __future__ import annotations

import json

import pytest
from celery import current_app

from ml import tasks
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
