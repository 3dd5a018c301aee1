"""Liveness, not age: the sweep sends a run again only when no worker holds it and no message
of it waits in the broker; a stage running under a live claim is never started a second time.

The broker is real: a Redis database of this test process, without a worker, so every message
sent stays in its queue like the tail of a 219K backlog.
"""

from __future__ import annotations

import datetime as dt

import pytest
import redis
from celery import current_app
from django.utils import timezone

from annotations.models import ImageStatus
from ml import runs, services, tasks
from ml.models import PipelineRun, RunStatus, StageResult, StageStatus
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.django_db


def _reset_connections(app) -> None:
    app._pool = None
    app.__dict__.get("amqp") and setattr(app.amqp, "_producer_pool", None)
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)


@pytest.fixture
def broker(redis_url):
    """The Celery app sends to a real Redis (no worker consumes it) for the test."""
    app = current_app._get_current_object()
    saved = {key: app.conf[key] for key in ("broker_url", "result_backend", "task_always_eager")}
    app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False)
    _reset_connections(app)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    app.conf.update(saved)
    _reset_connections(app)


@pytest.fixture
def dataset():
    dataset = DatasetFactory(slug="backlog")
    for i in range(3):
        ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=900 + i)
    return dataset


def _age(hours: float = 3) -> None:
    """Every run looks old: no progress for longer than any task may live."""
    past = timezone.now() - dt.timedelta(hours=hours)
    PipelineRun.objects.update(updated_at=past)
    StageResult.objects.update(updated_at=past)


def test_runs_waiting_in_a_long_queue_are_neither_sent_again_nor_failed(
    ml_config, dataset, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset)
    assert broker.llen("io") == 3 * 2  # each run's two annotator messages wait for a worker
    PipelineRun.objects.filter(pk=PipelineRun.objects.order_by("id")[0].pk).update(enqueued=3)  # at the send limit
    _age()

    with django_capture_on_commit_callbacks(execute=True):
        result = services.sweep_stale_runs(max_sends=3)

    assert (result.resent, result.gave_up) == (0, 0)
    assert sorted(PipelineRun.objects.values_list("enqueued", flat=True)) == [1, 1, 3]
    assert set(PipelineRun.objects.values_list("status", flat=True)) == {RunStatus.QUEUED}
    assert broker.llen("io") == 3 * 2  # no second chain behind the first


def test_a_run_whose_message_is_gone_and_that_no_worker_holds_is_sent_again(
    ml_config, dataset, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset)
    lost, waiting, held = PipelineRun.objects.order_by("id")
    # The broker lost ``lost``'s messages; ``held``'s messages are also gone, but a worker runs its stage.
    for raw in broker.lrange("io", 0, -1):
        if f'"argsrepr": "({lost.pk}, '.encode() in raw or f'"argsrepr": "({held.pk}, '.encode() in raw:
            broker.lrem("io", 0, raw)
    assert broker.llen("io") == 2
    StageResult.objects.filter(run=held, stage="annotate:model-a").update(
        status=StageStatus.RUNNING, owner="task-1", lease_until=timezone.now() + dt.timedelta(minutes=5)
    )
    _age()

    with django_capture_on_commit_callbacks(execute=True):
        result = services.sweep_stale_runs()

    assert (result.resent, result.gave_up) == (1, 0)
    assert [r.enqueued for r in PipelineRun.objects.order_by("id")] == [2, 1, 1]
    assert broker.llen("io") == 2 + 2


def test_a_stage_running_under_a_live_claim_is_not_started_again(ml_config, dataset):
    run = PipelineRun.objects.create(image=dataset.images.first(), pipeline_version="test-v1")
    first = runs.stage_begin(run.pk, "critic", owner="task-1", lease_seconds=300)
    assert first is not None

    with pytest.raises(runs.RunningElsewhere):
        runs.stage_begin(run.pk, "critic", owner="task-2", lease_seconds=300)  # a re-sent chain's critic
    again = runs.stage_begin(run.pk, "critic", owner="task-1", lease_seconds=300)  # its own redelivery takes it back
    assert again is not None
    row = StageResult.objects.get(run=run, stage="critic")
    assert (row.status, row.owner, row.attempt) == (StageStatus.RUNNING, "task-1", 2)

    StageResult.objects.filter(pk=row.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert runs.stage_begin(run.pk, "critic", owner="task-2", lease_seconds=300) is not None  # the lease ran out


def test_a_resent_chain_does_not_pay_for_a_running_model_call_twice(ml_config, dataset, fake_openai):
    """On a worker, the duplicate's task ends quietly (Ignore: its chain stops there)."""
    from celery.exceptions import Ignore

    run = PipelineRun.objects.create(image=dataset.images.first(), pipeline_version="test-v1")
    runs.stage_begin(run.pk, "annotate:model-a", owner="original", lease_seconds=300)
    calls = len(fake_openai.requests)
    tasks.annotate.push_request(id="resent", retries=0, is_eager=False, called_directly=False)
    try:
        with pytest.raises(Ignore):
            tasks.annotate.run(run.pk, "model-a")
    finally:
        tasks.annotate.pop_request()
    assert len(fake_openai.requests) == calls
    assert StageResult.objects.get(run=run, stage="annotate:model-a").owner == "original"
