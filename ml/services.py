"""Writes of the pipeline: enqueue images, retry failures, store fitted temperatures."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, QuerySet

from annotations.models import Annotation, AnnotationKind, Dataset, Image, ImageStatus
from annotations.services import image_set_status
from ml import tasks
from ml.models import (
    CalibrationVersion,
    PipelineRun,
    RunStatus,
    StageResult,
    StageStatus,
)
from ml.registry import Registry, get_registry
from ml.types import BackendNotConfigured

# Images in these states have human work on them: the pipeline never touches them.
HUMAN_STATES = (ImageStatus.APPROVED, ImageStatus.REJECTED, ImageStatus.FLAGGED, ImageStatus.ADJUDICATION)


def pipeline_images(*, dataset: Dataset) -> QuerySet[Image]:
    """The dataset's images the pipeline may (re)annotate: no person has decided on them
    (:data:`HUMAN_STATES`) nor submitted a review of them yet (an item waiting for its
    second independent review keeps the model answer its first reviewer saw)."""
    reviewed = Annotation.objects.filter(image=OuterRef("pk"), kind=AnnotationKind.HUMAN, is_current=True)
    return dataset.images.exclude(status__in=HUMAN_STATES).exclude(Exists(reviewed))


def ml_registry() -> Registry:
    return get_registry(settings.EMOVERSE_ML)


def configured_registry() -> Registry:
    """The registry, or :class:`BackendNotConfigured` listing everything that is missing."""
    registry = ml_registry()
    problems = registry.check()
    if problems:
        raise BackendNotConfigured("The pre-annotation pipeline is not configured:\n- " + "\n- ".join(problems))
    return registry


def pipeline_stage_names(registry: Registry) -> list[str]:
    """The stages of a run in order, for progress pages (empty when nothing is configured)."""
    try:
        names = [f"annotate:{s.name}" for s in registry.annotator_specs()]
        has_des = registry.spec("des") is not None
    except BackendNotConfigured:
        return []
    return [*names, "calibrate", "critic", "ground", "segment", *(["des"] if has_des else []), "save"]


@dataclass(frozen=True)
class EnqueueResult:
    enqueued: int
    skipped: int
    pipeline_version: str


def _send(run_ids: list[int], registry: Registry) -> None:
    annotators = [(s.name, s.queue or "io") for s in registry.annotator_specs()]
    calibrate_queue = "gpu" if registry.spec("classifier") is not None else "io"
    critic_queue = registry.spec("critic").queue or "io"
    for run_id in run_ids:
        tasks.preannotation_canvas(
            run_id, annotators, calibrate_queue=calibrate_queue, critic_queue=critic_queue
        ).apply_async()


def enqueue_preannotation(*, dataset: Dataset, limit: int | None = None, force: bool = False) -> EnqueueResult:
    """Queue the dataset's images that have no run of the current pipeline version.

    With ``force``, images whose run is done (or failed) are run again from scratch
    and get new annotation versions. Images that people already decided on
    (approved, rejected, flagged, in adjudication) or reviewed are never touched
    (:func:`pipeline_images`). Runs that are
    queued or running are left alone either way. Work is sent after the commit.
    """
    registry = configured_registry()
    version = registry.pipeline_version
    images = pipeline_images(dataset=dataset).order_by("id")
    if force:
        busy = PipelineRun.objects.filter(pipeline_version=version, status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        images = images.exclude(pk__in=busy.values("image_id"))
    else:
        images = images.exclude(pk__in=PipelineRun.objects.filter(pipeline_version=version).values("image_id"))
    eligible = pipeline_images(dataset=dataset).count()
    selected = list(images[:limit] if limit is not None else images)
    run_ids = []
    with transaction.atomic():
        for image in selected:
            run, created = PipelineRun.objects.select_for_update().get_or_create(image=image, pipeline_version=version)
            if not created:
                StageResult.objects.filter(run=run).delete()
                run.status, run.failed_stage, run.error, run.annotation = RunStatus.QUEUED, "", "", None
                run.cost_usd, run.timings, run.auto_accepted = 0.0, {}, False
                run.gpu_claim, run.gpu_claimed_until, run.finished_at = "", None, None
            run.enqueued += 1
            run.save()
            image_set_status(image=image, status=ImageStatus.PREANNOTATING)
            run_ids.append(run.pk)
        transaction.on_commit(lambda: _send(run_ids, registry))
    return EnqueueResult(enqueued=len(run_ids), skipped=eligible - len(run_ids), pipeline_version=version)


def retry_failed(*, dataset: Dataset) -> int:
    """Send the dataset's failed runs again. Stages that succeeded are kept (an annotator
    that answered is not asked again); only the failed stage and those after it re-run."""
    registry = configured_registry()
    version = registry.pipeline_version
    with transaction.atomic():
        failed = list(
            PipelineRun.objects.select_for_update()
            .filter(image__in=pipeline_images(dataset=dataset), pipeline_version=version, status=RunStatus.FAILED)
            .select_related("image")
        )
        for run in failed:
            StageResult.objects.filter(run=run).exclude(status=StageStatus.DONE).delete()
            run.status, run.failed_stage, run.error, run.finished_at = RunStatus.QUEUED, "", "", None
            run.gpu_claim, run.gpu_claimed_until = "", None
            run.enqueued += 1
            run.save()
            image_set_status(image=run.image, status=ImageStatus.PREANNOTATING)
        run_ids = [run.pk for run in failed]
        transaction.on_commit(lambda: _send(run_ids, registry))
    return len(run_ids)


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

    New pipeline runs use it at once (``ml.selectors.latest_temperatures``).
    """
    if not model_name:
        raise ValueError("model_name is required")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if n_samples < 1:
        raise ValueError("n_samples must be at least 1")
    # Lock the model's existing versions so two fits never take the same number.
    list(CalibrationVersion.objects.select_for_update().filter(model_name=model_name).values_list("pk", flat=True))
    latest = CalibrationVersion.objects.filter(model_name=model_name).aggregate(v=Max("version"))["v"] or 0
    return CalibrationVersion.objects.create(
        model_name=model_name,
        version=latest + 1,
        temperature=float(temperature),
        n_samples=n_samples,
        ece_before=ece_before,
        ece_after=ece_after,
        reliability=reliability,
        created_by=created_by,
    )


__all__ = [
    "EnqueueResult",
    "calibration_version_create",
    "configured_registry",
    "enqueue_preannotation",
    "ml_registry",
    "pipeline_stage_names",
    "retry_failed",
]
