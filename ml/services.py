"""Writes of the pipeline: enqueue images, retry failures, store fitted temperatures."""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Q, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from annotations.models import Annotation, AnnotationKind, Dataset, Image, ImageStatus
from annotations.services import image_set_status, images_set_status
from ml import broker, runs, selectors, tasks
from ml.config import get_registry
from ml.models import (
    CalibrationVersion,
    PipelineRun,
    RunStatus,
    StageResult,
    StageStatus,
)
from ml.save import PEOPLE_DECIDED
from ml.stages.registry import Registry
from ml.stages.types import BackendNotConfigured, StageError

logger = logging.getLogger(__name__)


def pipeline_images(*, dataset: Dataset | None = None) -> QuerySet[Image]:
    """The dataset's (or every dataset's) images the pipeline may (re)annotate: no person
    has decided on them (``ml.save.PEOPLE_DECIDED``) nor submitted a review of them yet (an item
    waiting for its second independent review keeps the model answer its first reviewer saw)."""
    reviewed = Annotation.objects.filter(image=OuterRef("pk"), kind=AnnotationKind.HUMAN, is_current=True)
    images = dataset.images.all() if dataset is not None else Image.objects.all()
    return images.exclude(status__in=PEOPLE_DECIDED).exclude(Exists(reviewed))


def pipeline_stage_names(registry: Registry) -> list[str]:
    """The stages of a run in order, for progress pages (empty when nothing is configured)."""
    try:
        names = [f"annotate:{s.name}" for s in registry.annotator_specs()]
        has_des = registry.spec("des") is not None
        embeds = registry.spec("embedder") is not None
    except BackendNotConfigured:
        return []
    return [*names, *(["embed"] if embeds else []), "calibrate", "critic", "ground", "segment",
            *(["des"] if has_des else []), "save"]


@dataclass(frozen=True)
class EnqueueResult:
    enqueued: int
    skipped: int
    pipeline_version: str
    stale: int = 0  # of ``enqueued``: runs that were stuck queued or running (see :func:`stale_runs`)


@dataclass(frozen=True)
class RetryResult:
    failed: int  # failed runs sent again
    stale: int  # stuck runs sent again (see :func:`stale_runs`)

    @property
    def sent(self) -> int:
        return self.failed + self.stale


CONFIRM_PAUSE_S = 1.0  # between the sweep's two reads of the broker


def _unheld(*, pipeline_version: str) -> QuerySet[PipelineRun]:
    """Queued or running runs that no worker holds: no live GPU claim, no stage under a live
    lease (``runs.stage_begin``), and no stage or run change for ``EMOVERSE_PIPELINE_STUCK_GRACE_S``
    (its next message may have been sent after the broker was read: the broker is read first)."""
    now = timezone.now()
    grace = timedelta(seconds=settings.EMOVERSE_PIPELINE_STUCK_GRACE_S)
    live_stage = StageResult.objects.filter(run=OuterRef("pk"), status=StageStatus.RUNNING, lease_until__gt=now)
    recent = StageResult.objects.filter(run=OuterRef("pk"), updated_at__gt=now - grace)
    return (
        PipelineRun.objects.filter(
            pipeline_version=pipeline_version,
            status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
            updated_at__lt=now - grace,
        )
        .filter(Q(gpu_claimed_until__isnull=True) | Q(gpu_claimed_until__lte=now))
        .exclude(Exists(live_stage))
        .exclude(Exists(recent))
    )


def stale_runs(*, pipeline_version: str) -> QuerySet[PipelineRun]:
    """Runs a worker took and lost: unheld (:func:`_unheld`) with a stage or GPU claim whose
    lease ran out (a hard time limit, a killed worker). Reads only the database (the pipeline
    page counts them); whether their message is still in the broker (a killed worker's comes
    back after the visibility timeout) is :func:`stuck_run_ids`'s question."""
    lost_stage = StageResult.objects.filter(run=OuterRef("pk"), status=StageStatus.RUNNING)
    return _unheld(pipeline_version=pipeline_version).filter(Exists(lost_stage) | Q(gpu_claimed_until__isnull=False))


def stuck_run_ids(*, pipeline_version: str) -> list[int]:
    """Runs nobody will finish: no worker holds them (:func:`_unheld`) and no message of theirs
    waits in the broker or is reserved by a worker (``ml.broker``). A run waiting its turn
    behind a long queue is never among them, however long it waits. Where the broker cannot
    be browsed, only the runs a worker took and lost (:func:`stale_runs`) are."""
    pending = broker.pending_run_ids()  # before the database: see _unheld
    if pending is None:
        return list(stale_runs(pipeline_version=pipeline_version).values_list("pk", flat=True))
    unheld = _unheld(pipeline_version=pipeline_version).values_list("pk", flat=True)
    missing = [pk for pk in unheld if pk not in pending]
    if not missing or broker.eager():
        return missing
    # A worker takes a message off its queue, then records it as reserved: a read between the
    # two misses it. Look again after a pause; a run taken meanwhile is reserved or held by now.
    time.sleep(CONFIRM_PAUSE_S)
    again = broker.pending_run_ids() or set()
    still = set(_unheld(pipeline_version=pipeline_version).filter(pk__in=missing).values_list("pk", flat=True))
    return [pk for pk in missing if pk in still and pk not in again]


@dataclass(frozen=True)
class _Routes:
    """The queue of each stage task: annotators, the critic and the phrase embedder by
    their backend's queue (``embed`` is ``None`` when the embedder is off), calibration on
    ``gpu`` when an emotion classifier is configured."""

    annotators: list[tuple[str, str]]
    calibrate: str
    critic: str
    embed: str | None = None


def _routes(registry: Registry) -> _Routes:
    embedder = registry.spec("embedder")
    return _Routes(
        annotators=[(s.name, s.task_queue()) for s in registry.annotator_specs()],
        calibrate="gpu" if registry.spec("classifier") is not None else "io",
        critic=registry.spec("critic").task_queue(),
        embed=None if embedder is None else embedder.task_queue(),
    )


def _send(run_ids: list[int], routes: _Routes) -> None:
    """Send one canvas per run (after the commit). When the broker cannot be reached,
    the unsent runs are recorded as failed with the reason, not left queued forever."""
    for i, run_id in enumerate(run_ids):
        canvas = tasks.preannotation_canvas(
            run_id, routes.annotators, calibrate_queue=routes.calibrate, critic_queue=routes.critic,
            embed_queue=routes.embed,
        )
        try:
            canvas.apply_async()
        except (BrokerError, ConnectionError) as exc:
            logger.error("could not send %d run(s) to the broker: %s", len(run_ids) - i, exc)
            error = StageError(f"could not reach the broker: {exc}")
            for unsent in run_ids[i:]:
                runs.stage_failed(unsent, "send", error)
            return


def _stage_rows(run_ids: list[int], names: list[str]) -> None:
    """The runs' stage rows, queued (one INSERT; rows that exist are kept), so each stage
    claims its row with one UPDATE and the page counts the stages still waiting."""
    StageResult.objects.bulk_create(
        [StageResult(run_id=pk, stage=name) for pk in run_ids for name in names], ignore_conflicts=True
    )


def _reset(run: PipelineRun, names: list[str]) -> None:
    """Back to queued for another send; the stages that are done are kept."""
    StageResult.objects.filter(run=run).exclude(status=StageStatus.DONE).delete()
    _stage_rows([run.pk], names)
    run.status, run.failed_stage, run.error, run.finished_at = RunStatus.QUEUED, "", "", None
    run.gpu_claim, run.gpu_claimed_until = "", None
    run.enqueued += 1
    run.save()
    image_set_status(image=run.image, status=ImageStatus.PREANNOTATING)


ENQUEUE_CHUNK = 500  # images per transaction of enqueue_preannotation
RESET_FIELDS = ("status", "failed_stage", "error", "annotation", "cost_usd", "prompt_tokens", "completion_tokens",
                "timings", "auto_accepted", "gpu_claim", "gpu_claimed_until", "finished_at", "enqueued", "updated_at")


def enqueue_preannotation(*, dataset: Dataset, limit: int | None = None, force: bool = False) -> EnqueueResult:
    """Queue the dataset's images that have no run of the current pipeline version.

    With ``force``, images whose run is done (or failed) are run again from scratch
    and get new annotation versions, and runs stuck queued or running
    (:func:`stuck_run_ids`) are sent again. Images that people already decided on
    (approved, rejected, flagged, in adjudication) or reviewed are never touched
    (:func:`pipeline_images`). Runs that are queued or running and not stuck are left
    alone either way. Work is sent after each chunk's commit; a chunk of images costs a
    fixed number of queries (runs, stage rows and image statuses written in bulk).
    """
    registry = get_registry().require_complete()
    routes = _routes(registry)
    version = registry.pipeline_version
    names = pipeline_stage_names(registry)
    images = pipeline_images(dataset=dataset).order_by("id")
    stuck: set[int] = set()
    if force:
        stuck = set(stuck_run_ids(pipeline_version=version))
        busy = PipelineRun.objects.filter(pipeline_version=version, status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        images = images.exclude(pk__in=busy.exclude(pk__in=stuck).values("image_id"))
    else:
        images = images.exclude(pk__in=PipelineRun.objects.filter(pipeline_version=version).values("image_id"))
    eligible = pipeline_images(dataset=dataset).count()
    selected = list(images[:limit] if limit is not None else images)
    sent, stale = 0, 0
    for start in range(0, len(selected), ENQUEUE_CHUNK):
        chunk = selected[start : start + ENQUEUE_CHUNK]
        with transaction.atomic():
            run_ids, again = _enqueue_chunk(chunk, version=version, names=names, stuck=stuck)
            transaction.on_commit(functools.partial(_send, run_ids, routes))
        sent, stale = sent + len(run_ids), stale + again
    return EnqueueResult(enqueued=sent, skipped=eligible - sent, pipeline_version=version, stale=stale)


def _enqueue_chunk(images: list[Image], *, version: str, names: list[str], stuck: set[int]) -> tuple[list[int], int]:
    """Create or reset the runs of ``images`` (in a transaction); their ids and how many were stuck."""
    by_image = {img.pk: img for img in images}
    existing = {
        run.image_id: run
        for run in PipelineRun.objects.select_for_update().filter(pipeline_version=version, image_id__in=by_image)
    }
    PipelineRun.objects.bulk_create(
        [PipelineRun(image_id=pk, pipeline_version=version, enqueued=1) for pk in by_image if pk not in existing],
        ignore_conflicts=True,  # a concurrent enqueue created it: it is sent by both, and runs once (stage claims)
    )
    again, stale = [], 0
    for run in existing.values():
        if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
            if run.pk not in stuck:
                continue  # started meanwhile
            stale += 1
        run.status, run.failed_stage, run.error, run.annotation = RunStatus.QUEUED, "", "", None
        run.cost_usd, run.timings, run.auto_accepted = 0.0, {}, False
        run.prompt_tokens = run.completion_tokens = 0
        run.gpu_claim, run.gpu_claimed_until, run.finished_at = "", None, None
        run.enqueued += 1
        run.updated_at = timezone.now()
        again.append(run)
    if again:
        PipelineRun.objects.bulk_update(again, RESET_FIELDS)
        StageResult.objects.filter(run__in=again).delete()
    created = PipelineRun.objects.filter(pipeline_version=version, image_id__in=by_image).exclude(
        image_id__in=list(existing)
    ).values_list("pk", "image_id")
    run_ids = [run.pk for run in again] + [pk for pk, _ in created]
    _stage_rows(run_ids, names)
    chosen = {run.image_id for run in again} | {image_id for _, image_id in created}
    images_set_status([(by_image[pk], {}) for pk in sorted(chosen)], status=ImageStatus.PREANNOTATING)
    return sorted(run_ids), stale


def retry_failed(*, dataset: Dataset) -> RetryResult:
    """Send the dataset's failed runs again, and those stuck queued or running
    (:func:`stuck_run_ids`). Stages that succeeded are kept (an annotator that answered is
    not asked again); only the failed or unfinished stages and those after them re-run."""
    registry = get_registry().require_complete()
    routes = _routes(registry)
    version = registry.pipeline_version
    names = pipeline_stage_names(registry)
    stuck_ids = stuck_run_ids(pipeline_version=version)
    with transaction.atomic():
        mine = PipelineRun.objects.filter(image__in=pipeline_images(dataset=dataset), pipeline_version=version)
        failed = list(mine.select_for_update().filter(status=RunStatus.FAILED).select_related("image"))
        stuck = list(mine.select_for_update().filter(pk__in=stuck_ids).select_related("image"))
        for run in failed + stuck:
            _reset(run, names)
        run_ids = [run.pk for run in failed + stuck]
        transaction.on_commit(lambda: _send(run_ids, routes))
    return RetryResult(failed=len(failed), stale=len(stuck))


@dataclass(frozen=True)
class SweepResult:
    resent: int  # stuck runs sent again
    gave_up: int  # stuck runs failed: sent ``max_sends`` times already


def sweep_stale_runs(*, max_sends: int | None = None) -> SweepResult:
    """Send again every dataset's runs stuck queued or running (:func:`stuck_run_ids`: no
    worker holds them and no message of theirs is in the broker; never a run waiting its turn).

    What the periodic ``ml.periodic.sweep_stale_runs`` (Celery beat) does, so that a lost
    message or a hard time limit does not wait for someone to press Retry. A run that was
    already sent ``max_sends`` times (``EMOVERSE_PIPELINE_MAX_SENDS``) is failed with the
    reason instead: an image that kills its worker every time (out of memory, a crash in
    native code) must not loop; it waits, failed, for a person. Failed runs are never
    sent by the sweep (their error is known; a person retries them). Rows another sweep
    holds are skipped.
    """
    registry = get_registry().require_complete()
    routes = _routes(registry)
    version = registry.pipeline_version
    limit = settings.EMOVERSE_PIPELINE_MAX_SENDS if max_sends is None else max_sends
    names = pipeline_stage_names(registry)
    stuck_ids = stuck_run_ids(pipeline_version=version)
    with transaction.atomic():
        stuck = list(
            PipelineRun.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=stuck_ids, image__in=pipeline_images())
            .select_related("image")
            .order_by("pk")
        )
        resend = [run for run in stuck if run.enqueued < limit]
        exhausted = [run for run in stuck if run.enqueued >= limit]
        for run in resend:
            _reset(run, names)
        run_ids = [run.pk for run in resend]
        transaction.on_commit(lambda: _send(run_ids, routes))
    for run in exhausted:
        error = StageError(f"stuck after being sent {run.enqueued} times: no worker held it and the broker "
                           "had no message of it (does this image kill the worker? see the worker's log)")
        runs.stage_failed(run.pk, "send", error)
    if stuck:
        logger.warning("stale pipeline runs: %d sent again, %d failed after %d sends", len(resend), len(exhausted), limit)
    return SweepResult(resent=len(resend), gave_up=len(exhausted))


VERSION_ATTEMPTS = 5


def _next_calibration_version(model_name: str) -> int:
    """The next version number for ``model_name``, locking its existing versions (precondition:
    inside a transaction)."""
    list(CalibrationVersion.objects.select_for_update().filter(model_name=model_name).values_list("pk", flat=True))
    return (CalibrationVersion.objects.filter(model_name=model_name).aggregate(v=Max("version"))["v"] or 0) + 1


@transaction.atomic
def calibration_version_create(
    *,
    model_name: str,
    temperature: float,
    n_samples: int,
    ece_before: float | None,
    ece_after: float | None,
    reliability: dict[str, Any],
    created_by: AbstractBaseUser | None,
) -> CalibrationVersion:
    """Store a newly fitted temperature as the next version for ``model_name``.

    New pipeline runs use it at once (``ml.selectors.latest_temperatures``). The model's
    existing versions are locked while the number is chosen; a model's *first* version has
    no row to lock, so two concurrent first fits may both choose 1: the one that loses on
    the unique (model, version) constraint retries in a savepoint with the next number.
    """
    if not model_name:
        raise ValueError("model_name is required")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if n_samples < 1:
        raise ValueError("n_samples must be at least 1")
    for attempt in range(VERSION_ATTEMPTS):
        version = _next_calibration_version(model_name)
        try:
            with transaction.atomic():
                transaction.on_commit(selectors.forget_temperatures)
                return CalibrationVersion.objects.create(
                    model_name=model_name,
                    version=version,
                    temperature=float(temperature),
                    n_samples=n_samples,
                    ece_before=ece_before,
                    ece_after=ece_after,
                    reliability=reliability,
                    created_by=created_by,
                )
        except IntegrityError:
            taken = CalibrationVersion.objects.filter(model_name=model_name, version=version).exists()
            if not taken or attempt == VERSION_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


__all__ = [
    "EnqueueResult",
    "RetryResult",
    "calibration_version_create",
    "enqueue_preannotation",
    "pipeline_stage_names",
    "retry_failed",
    "stale_runs",
    "stuck_run_ids",
]
