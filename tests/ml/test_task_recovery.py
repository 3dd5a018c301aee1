"""Failures and recovery at the Celery edge: retried and redelivered GPU batches, claims
held elsewhere, unexpected exceptions, stale runs, an unreachable broker.

Most tests run the tasks eagerly; ``_deliver`` runs one as a worker would (not eager,
with a message id and a retry count) and records the retry it asks for instead of
sending it.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from celery.exceptions import Retry
from django.db import IntegrityError, OperationalError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, ImageStatus
from annotations.services import image_set_status
from ml import periodic, runs, services, tasks
from ml.config import get_registry, reset_registry
from ml.models import PipelineRun, RunStatus, StageResult, StageStatus
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    dataset = DatasetFactory(slug="storms")
    for i in range(3):
        ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=700 + i)
    return dataset


@pytest.fixture
def grounder(ml_config):
    """Configure a grounder that fails: ``grounder("oom", times=2)``."""

    def configure(kind: str, times: int = 1):
        ml_config["grounder"] = {"backend": "tests.ml.stage_fakes.FailingGrounder", "options": {"kind": kind, "times": times}}
        reset_registry()
        return get_registry().grounder()

    return configure


def _ready_for_gpu(dataset) -> list[int]:
    """Runs of every image with the annotators, calibration and critic done."""
    ids = []
    for image in dataset.images.order_by("id"):
        run = PipelineRun.objects.create(image=image, pipeline_version="test-v1")
        image_set_status(image=image, status=ImageStatus.PREANNOTATING)
        for name in ("model-a", "model-b"):
            tasks.annotate.apply(args=(run.pk, name))
        tasks.calibrate.apply(args=(run.pk,))
        tasks.critic.apply(args=(run.pk,))
        ids.append(run.pk)
    return ids


def _deliver(monkeypatch, task, *args, task_id: str, retries: int = 0) -> dict | None:
    """Run ``task`` as a worker does; the retry it asked for (``countdown``), or ``None``."""
    asked: list[dict] = []

    def retry(exc=None, countdown=None, **options):
        asked.append({"exc": exc, "countdown": countdown, **options})
        return Retry(exc=exc, when=countdown)

    monkeypatch.setattr(task, "retry", retry)
    task.push_request(id=task_id, retries=retries, is_eager=False, called_directly=False)
    try:
        task.run(*args)
    except Retry:
        pass
    finally:
        task.pop_request()
    return asked[0] if asked else None


def _statuses(ids: list[int]) -> list[str]:
    return [PipelineRun.objects.get(pk=pk).status for pk in ids]


# --- the GPU batch: retries, redelivery, claims ---------------------------------------------


def test_a_transient_gpu_error_is_retried_and_the_whole_batch_finishes(dataset, grounder):
    failing = grounder("transient", times=1)
    ids = _ready_for_gpu(dataset)

    tasks.gpu_ground_segment.apply(args=(ids[0],))  # eager: retried in place

    assert _statuses(ids) == [RunStatus.DONE] * 3
    assert failing.calls == [3, 3]  # the retry took back its own batch
    assert not PipelineRun.objects.exclude(gpu_claim="").exists()


def test_a_redelivered_gpu_task_takes_back_the_claim_of_its_killed_first_delivery(dataset, grounder, ml_config):
    ids = _ready_for_gpu(dataset)
    # The first delivery of message "msg-1" claimed the batch, then its worker was SIGKILLed.
    claim = runs.gpu_claim(ids[0], token="msg-1", batch_size=8, lease_seconds=960)
    assert claim.run_ids == ids

    tasks.gpu_ground_segment.apply(args=(ids[0],), task_id="msg-1")  # the same message, again

    assert _statuses(ids) == [RunStatus.DONE] * 3
    assert get_registry().grounder().batches == [3]
    assert Annotation.objects.filter(author_name=PIPELINE_AUTHOR).count() == 3


def test_a_run_in_another_live_batch_is_retried_when_that_claim_runs_out(monkeypatch, dataset, ml_config):
    ids = _ready_for_gpu(dataset)
    runs.gpu_claim(ids[0], token="other-worker", batch_size=8, lease_seconds=600)

    retry = _deliver(monkeypatch, tasks.gpu_ground_segment, ids[1], task_id="mine")

    assert retry is not None, "the task returned and its message would be acknowledged"
    assert 595 <= retry["countdown"] <= 605
    run = PipelineRun.objects.get(pk=ids[1])
    assert run.status == RunStatus.RUNNING and run.gpu_claim == "other-worker"


def test_waiting_on_another_batch_gives_up_quietly_after_max_retries(monkeypatch, dataset, ml_config):
    ids = _ready_for_gpu(dataset)
    runs.gpu_claim(ids[0], token="other-worker", batch_size=8, lease_seconds=600)

    retry = _deliver(monkeypatch, tasks.gpu_ground_segment, ids[1], task_id="mine", retries=tasks.MAX_RETRIES)

    assert retry is None
    run = PipelineRun.objects.get(pk=ids[1])  # the holder still has it; not failed under its feet
    assert run.status == RunStatus.RUNNING and run.gpu_claim == "other-worker"


def test_a_transient_gpu_error_releases_the_claim_before_the_retry(monkeypatch, dataset, grounder):
    grounder("transient", times=1)
    ids = _ready_for_gpu(dataset)

    retry = _deliver(monkeypatch, tasks.gpu_ground_segment, ids[0], task_id="gpu-1")

    assert retry is not None and "HTTP 503" in str(retry["exc"])
    assert list(PipelineRun.objects.filter(pk__in=ids).values_list("gpu_claim", flat=True)) == ["", "", ""]
    assert StageResult.objects.get(run_id=ids[0], stage="ground").status == StageStatus.QUEUED

    assert _deliver(monkeypatch, tasks.gpu_ground_segment, ids[0], task_id="gpu-1", retries=1) is None
    assert _statuses(ids) == [RunStatus.DONE] * 3


def test_a_soft_time_limit_in_the_batch_releases_the_claim_and_retries(monkeypatch, dataset, ml_config):
    from celery.exceptions import SoftTimeLimitExceeded

    ids = _ready_for_gpu(dataset)
    real = runs.gpu_process
    calls = []

    def slow_once(claim):
        calls.append(claim.token)
        if len(calls) == 1:
            raise SoftTimeLimitExceeded()
        return real(claim)

    monkeypatch.setattr(runs, "gpu_process", slow_once)
    retry = _deliver(monkeypatch, tasks.gpu_ground_segment, ids[0], task_id="gpu-2")

    assert retry is not None and "soft time limit" in str(retry["exc"])
    assert not PipelineRun.objects.exclude(gpu_claim="").exists()
    _deliver(monkeypatch, tasks.gpu_ground_segment, ids[0], task_id="gpu-2", retries=1)
    assert _statuses(ids) == [RunStatus.DONE] * 3


# --- unexpected exceptions ----------------------------------------------------------------


def test_a_missing_image_file_fails_the_stage_with_the_exception_and_stays_retryable(
    ml_config, dataset, django_capture_on_commit_callbacks
):
    image = dataset.images.order_by("id").first()
    path = Path(image.file.path)
    data = path.read_bytes()
    path.unlink()

    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset, limit=1)

    run = PipelineRun.objects.get(image=image)
    assert run.status == RunStatus.FAILED
    assert run.failed_stage == "annotate:model-a"
    assert run.error.startswith("FileNotFoundError: ")
    assert run.stages.get(stage="annotate:model-a").status == StageStatus.FAILED
    assert not run.stages.filter(status=StageStatus.RUNNING).exists()
    image.refresh_from_db()
    assert image.status == ImageStatus.FAILED

    path.write_bytes(data)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.retry_failed(dataset=dataset).failed == 1
    run.refresh_from_db()
    assert run.status == RunStatus.DONE


def test_out_of_memory_in_a_batch_retries_image_by_image_and_fails_only_the_one_that_fails(
    dataset, grounder, django_capture_on_commit_callbacks
):
    failing = grounder("oom", times=2)  # the batch of 3, then the first image alone
    ids = _ready_for_gpu(dataset)

    tasks.gpu_ground_segment.apply(args=(ids[0],))

    assert failing.calls == [3, 1, 1, 1]
    assert _statuses(ids) == [RunStatus.FAILED, RunStatus.DONE, RunStatus.DONE]
    failed = PipelineRun.objects.get(pk=ids[0])
    assert failed.failed_stage == "ground"
    assert failed.error == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert failed.gpu_claim == "" and failed.image.status == ImageStatus.FAILED

    with django_capture_on_commit_callbacks(execute=True):  # only the GPU stages run again
        assert services.retry_failed(dataset=dataset).failed == 1
    assert _statuses(ids) == [RunStatus.DONE] * 3


def test_an_unexpected_error_while_saving_fails_each_run_with_the_stage_and_reason(monkeypatch, dataset, ml_config):
    ids = _ready_for_gpu(dataset)

    def broken(**kwargs):
        raise KeyError("calibrate")

    monkeypatch.setattr(runs, "save_preannotations", broken)
    tasks.gpu_ground_segment.apply(args=(ids[0],))

    for run in PipelineRun.objects.filter(pk__in=ids).select_related("image"):
        assert (run.status, run.failed_stage, run.error) == (RunStatus.FAILED, "save", "KeyError: 'calibrate'")
        assert run.gpu_claim == "" and run.image.status == ImageStatus.FAILED


def test_a_database_error_in_the_batch_fails_the_run_and_releases_the_rest(monkeypatch, dataset, ml_config):
    ids = _ready_for_gpu(dataset)

    def broken(**kwargs):
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(runs, "save_preannotations", broken)
    tasks.gpu_ground_segment.apply(args=(ids[0],))

    run = PipelineRun.objects.get(pk=ids[0])
    assert run.status == RunStatus.FAILED
    assert run.error == "IntegrityError: duplicate key value violates unique constraint"
    assert run.image.status == ImageStatus.FAILED
    # The rest of the batch is released for its own (retrying) tasks, not left claimed.
    rest = PipelineRun.objects.filter(pk__in=ids[1:])
    assert set(rest.values_list("status", "gpu_claim")) == {(RunStatus.RUNNING, "")}


def test_a_database_error_is_transient_and_retried(monkeypatch, ml_config, dataset, django_capture_on_commit_callbacks):
    real = runs.latest_temperatures
    calls = []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(runs, "latest_temperatures", flaky)
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset, limit=1)

    run = PipelineRun.objects.get()
    assert run.status == RunStatus.DONE
    assert run.stages.get(stage="calibrate").attempt == 2


def test_a_worker_side_error_becomes_a_clean_failure_on_a_worker_too(monkeypatch, dataset, ml_config):
    ids = _ready_for_gpu(dataset)
    run = PipelineRun.objects.get(pk=ids[0])
    Path(run.image.file.path).unlink()
    StageResult.objects.filter(run=run, stage="critic").delete()  # critic to redo, image gone

    assert _deliver(monkeypatch, tasks.critic, run.pk, task_id="critic-1") is None

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.failed_stage == "critic"
    assert run.error.startswith("FileNotFoundError")


# --- stale runs, the broker ---------------------------------------------------------------


def _stale(run_id: int, *, hours: float = 2) -> None:
    """What a hard time limit leaves: the message acknowledged, the run 'running', its stage's
    lease run out, no change since."""
    past = timezone.now() - dt.timedelta(hours=hours)
    PipelineRun.objects.filter(pk=run_id).update(status=RunStatus.RUNNING, updated_at=past)
    StageResult.objects.filter(run_id=run_id).exclude(status=StageStatus.DONE).update(
        status=StageStatus.RUNNING, owner="killed-task", lease_until=past
    )
    StageResult.objects.filter(run_id=run_id).update(updated_at=past)


def test_retry_also_sends_runs_stuck_without_progress(ml_config, dataset, django_capture_on_commit_callbacks):
    ids = _ready_for_gpu(dataset)
    _stale(ids[0])
    PipelineRun.objects.filter(pk=ids[1]).update(updated_at=timezone.now() - dt.timedelta(hours=2))
    runs.gpu_claim(ids[1], token="live-worker", batch_size=1, lease_seconds=600)  # old, but its claim is live
    # ids[2]: running and recent: a worker is on it.

    with django_capture_on_commit_callbacks(execute=True):
        result = services.retry_failed(dataset=dataset)

    assert (result.failed, result.stale) == (0, 1)
    assert [PipelineRun.objects.get(pk=pk).enqueued for pk in ids] == [1, 0, 0]
    assert _statuses(ids[:2]) == [RunStatus.DONE, RunStatus.RUNNING]


def test_force_also_sends_stuck_runs_again_and_says_so(ml_config, dataset, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset)
    done = list(PipelineRun.objects.order_by("id").values_list("pk", flat=True))
    _stale(done[0])
    PipelineRun.objects.filter(pk=done[1]).update(status=RunStatus.QUEUED)  # queued just now: left alone

    with django_capture_on_commit_callbacks(execute=True):
        result = services.enqueue_preannotation(dataset=dataset, force=True)

    assert (result.enqueued, result.stale) == (2, 1)
    assert _statuses(done) == [RunStatus.DONE, RunStatus.QUEUED, RunStatus.DONE]


def test_an_unreachable_broker_fails_the_runs_with_the_reason(monkeypatch, ml_config, dataset, django_capture_on_commit_callbacks):
    sent = []
    canvas = tasks.preannotation_canvas

    class Unreachable:
        def apply_async(self):
            sent.append(1)
            raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks, "preannotation_canvas", lambda *a, **k: Unreachable())
    with django_capture_on_commit_callbacks(execute=True):
        result = services.enqueue_preannotation(dataset=dataset)

    assert result.enqueued == 3 and len(sent) == 1  # the first failure stops the sending
    for run in PipelineRun.objects.select_related("image"):
        assert run.status == RunStatus.FAILED
        assert run.error.startswith("could not reach the broker: ") and "Connection refused" in run.error
        assert run.image.status == ImageStatus.FAILED

    monkeypatch.setattr(tasks, "preannotation_canvas", canvas)  # the broker is back
    with django_capture_on_commit_callbacks(execute=True):
        assert services.retry_failed(dataset=dataset).failed == 3
    assert set(PipelineRun.objects.values_list("status", flat=True)) == {RunStatus.DONE}


# --- the periodic sweep (Celery beat) -----------------------------------------------------


def test_the_sweep_sends_stuck_runs_of_every_dataset_and_leaves_the_rest(ml_config, dataset, django_capture_on_commit_callbacks):
    other = DatasetFactory(slug="calm")
    ImageFactory(dataset=other, status=ImageStatus.NEW, seed=790)
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset)
        services.enqueue_preannotation(dataset=other)
    storms = list(PipelineRun.objects.filter(image__dataset=dataset).order_by("id").values_list("pk", flat=True))
    calm = PipelineRun.objects.get(image__dataset=other).pk
    _stale(storms[0])
    _stale(calm)
    PipelineRun.objects.filter(pk=storms[1]).update(status=RunStatus.FAILED, updated_at=timezone.now() - dt.timedelta(hours=2))
    _stale(storms[2])
    image_set_status(image=PipelineRun.objects.get(pk=storms[2]).image, status=ImageStatus.APPROVED)  # a person decided

    with django_capture_on_commit_callbacks(execute=True):
        result = services.sweep_stale_runs()

    assert (result.resent, result.gave_up) == (2, 0)
    assert _statuses([storms[0], calm, storms[1]]) == [RunStatus.DONE, RunStatus.DONE, RunStatus.FAILED]
    # Not sent again; a GPU batch may still finish its ready stages, and the image keeps
    # the status a person gave it.
    assert [PipelineRun.objects.get(pk=pk).enqueued for pk in (storms[0], calm, storms[1], storms[2])] == [2, 2, 1, 1]
    assert PipelineRun.objects.get(pk=storms[2]).image.status == ImageStatus.APPROVED


def test_the_sweep_fails_a_run_that_keeps_getting_stuck_instead_of_looping(ml_config, dataset, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset)
    first = PipelineRun.objects.order_by("id").first()
    PipelineRun.objects.filter(pk=first.pk).update(enqueued=3)
    _stale(first.pk)

    with django_capture_on_commit_callbacks(execute=True):
        result = services.sweep_stale_runs(max_sends=3)

    assert (result.resent, result.gave_up) == (0, 1)
    run = PipelineRun.objects.select_related("image").get(pk=first.pk)
    assert run.status == RunStatus.FAILED and run.failed_stage == "send"
    assert run.error.startswith("stuck after being sent 3 times: no worker held it and the broker had no message of it")
    assert run.image.status == ImageStatus.FAILED
    with django_capture_on_commit_callbacks(execute=True):  # a person's retry still works
        assert services.retry_failed(dataset=dataset).failed == 1
    assert PipelineRun.objects.get(pk=first.pk).status == RunStatus.DONE


def test_the_beat_schedule_runs_the_sweep_task_which_says_when_nothing_is_configured(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-stale-pipeline-runs"]
    assert entry["schedule"] == settings.EMOVERSE_STALE_SWEEP_SECONDS
    # What a worker registers when it starts (in a fresh process: nothing imported by this test).
    code = ("from emoverse_site.celery import app; app.loader.import_default_modules(); "
            f"print({entry['task']!r} in app.tasks)")
    out = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out.stderr
    settings.EMOVERSE_ML = {}
    reset_registry()
    assert periodic.sweep_stale_runs.apply().get() == {"resent": 0, "gave_up": 0, "skipped": "not configured"}
