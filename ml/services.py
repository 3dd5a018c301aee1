"""Writes of the pipeline: enqueue images, retry failures, store fitted temperatures."""

from __future__ import annotations

import logging
import math
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
from annotations.services import image_set_status
from ml import runs, tasks
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


def stale_runs(*, pipeline_version: str) -> QuerySet[PipelineRun]:
    """Queued or running runs that made no progress for longer than a task may live
    (``tasks.STALE_AFTER_S``) and that no live GPU claim holds: their message was lost
    (the hard time limit acknowledges it; a broker can lose one) and nobody will finish
    them. A run still waiting behind a long queue can look the same: sending it again is
    safe (tasks are idempotent) but costs a second request to the annotators."""
    now = timezone.now()
    return PipelineRun.objects.filter(
        pipeline_version=pipeline_version,
        status__in=[RunStatus.QUEUED, RunStatus.RUNNING],
        updated_at__lt=now - timedelta(seconds=tasks.STALE_AFTER_S),
    ).filter(Q(gpu_claimed_until__isnull=True) | Q(gpu_claimed_until__lte=now))


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


def _reset(run: PipelineRun) -> None:
    """Back to queued for another send; the stages that are done are kept."""
    StageResult.objects.filter(run=run).exclude(status=StageStatus.DONE).delete()
    run.status, run.failed_stage, run.error, run.finished_at = RunStatus.QUEUED, "", "", None
    run.gpu_claim, run.gpu_claimed_until = "", None
    run.enqueued += 1
    run.save()
    image_set_status(image=run.image, status=ImageStatus.PREANNOTATING)


def enqueue_preannotation(*, dataset: Dataset, limit: int | None = None, force: bool = False) -> EnqueueResult:
    """Queue the dataset's images that have no run of the current pipeline version.

    With ``force``, images whose run is done (or failed) are run again from scratch
    and get new annotation versions, and runs stuck queued or running
    (:func:`stale_runs`) are sent again. Images that people already decided on
    (approved, rejected, flagged, in adjudication) or reviewed are never touched
    (:func:`pipeline_images`). Runs that are queued or running and not stale are left
    alone either way. Work is sent after the commit.
    """
    registry = get_registry().require_complete()
    routes = _routes(registry)
    version = registry.pipeline_version
    images = pipeline_images(dataset=dataset).order_by("id")
    if force:
        busy = PipelineRun.objects.filter(pipeline_version=version, status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        busy = busy.exclude(pk__in=stale_runs(pipeline_version=version).values("pk"))
        images = images.exclude(pk__in=busy.values("image_id"))
    else:
        images = images.exclude(pk__in=PipelineRun.objects.filter(pipeline_version=version).values("image_id"))
    eligible = pipeline_images(dataset=dataset).count()
    selected = list(images[:limit] if limit is not None else images)
    run_ids, stale = [], 0
    with transaction.atomic():
        stuck = set(stale_runs(pipeline_version=version).filter(image__in=selected).values_list("pk", flat=True))
        for image in selected:
            run, created = PipelineRun.objects.select_for_update().get_or_create(image=image, pipeline_version=version)
            if not created:
                if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
                    if run.pk not in stuck:
                        continue  # started meanwhile
                    stale += 1
                StageResult.objects.filter(run=run).delete()
                run.status, run.failed_stage, run.error, run.annotation = RunStatus.QUEUED, "", "", None
                run.cost_usd, run.timings, run.auto_accepted = 0.0, {}, False
                run.prompt_tokens = run.completion_tokens = 0
                run.gpu_claim, run.gpu_claimed_until, run.finished_at = "", None, None
            run.enqueued += 1
            run.save()
            image_set_status(image=image, status=ImageStatus.PREANNOTATING)
            run_ids.append(run.pk)
        transaction.on_commit(lambda: _send(run_ids, routes))
    return EnqueueResult(enqueued=len(run_ids), skipped=eligible - len(run_ids), pipeline_version=version, stale=stale)


def retry_failed(*, dataset: Dataset) -> RetryResult:
    """Send the dataset's failed runs again, and those stuck queued or running
    (:func:`stale_runs`). Stages that succeeded are kept (an annotator that answered is
    not asked again); only the failed or unfinished stages and those after them re-run."""
    registry = get_registry().require_complete()
    routes = _routes(registry)
    version = registry.pipeline_version
    with transaction.atomic():
        mine = PipelineRun.objects.filter(image__in=pipeline_images(dataset=dataset), pipeline_version=version)
        failed = list(mine.select_for_update().filter(status=RunStatus.FAILED).select_related("image"))
        stuck_ids = stale_runs(pipeline_version=version).values("pk")
        stuck = list(mine.select_for_update().filter(pk__in=stuck_ids).select_related("image"))
        for run in failed + stuck:
            _reset(run)
        run_ids = [run.pk for run in failed + stuck]
        transaction.on_commit(lambda: _send(run_ids, routes))
    return RetryResult(failed=len(failed), stale=len(stuck))


@dataclass(frozen=True)
class SweepResult:
    resent: int  # stuck runs sent again
    gave_up: int  # stuck runs failed: sent ``max_sends`` times already


def sweep_stale_runs(*, max_sends: int | None = None) -> SweepResult:
    """Send again every dataset's runs stuck queued or running (:func:`stale_runs`).

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
    with transaction.atomic():
        stuck = list(
            PipelineRun.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk__in=stale_runs(pipeline_version=version).values("pk"), image__in=pipeline_images())
            .select_related("image")
            .order_by("pk")
        )
        resend = [run for run in stuck if run.enqueued < limit]
        exhausted = [run for run in stuck if run.enqueued >= limit]
        for run in resend:
            _reset(run)
        run_ids = [run.pk for run in resend]
        transaction.on_commit(lambda: _send(run_ids, routes))
    for run in exhausted:
        error = StageError(f"stuck without progress after being sent {run.enqueued} times "
                           "(does this image kill the worker? see the worker's log)")
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
]
