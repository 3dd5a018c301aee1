"""Turn a GPU batch's finished runs into annotation rows, and route the images.

Stores, through ``annotations.services.annotation_bulk_create``: each annotator's own
answer (author = the annotator's name; calibrated distribution, raw distribution
kept) and the merged, grounded, critic-checked annotation (author =
``PIPELINE_AUTHOR``) of every run of the batch. All in one transaction with marking the
runs done, so a killed worker leaves either everything or nothing; the queries do not
grow with the batch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from annotations.domain import PIPELINE_AUTHOR
from annotations.errors import InvalidAnnotation
from annotations.models import Annotation, AnnotationKind, Decision, ImageStatus
from annotations.services import NewAnnotation, annotation_bulk_create, images_set_status
from annotations.validation import (
    AnnotationInput,
    CesInput,
    validate_mask,
    validate_triplets,
)
from ml.models import PipelineRun, RunStatus, StageResult, StageStatus
from ml.stages import codec, pipeline
from ml.stages.types import (
    AnnotatorResult,
    CalibrationResult,
    CriticResult,
    GroundedTriplet,
    StageError,
)

logger = logging.getLogger(__name__)
# Images in these states have a person's decision on them: the pipeline never changes them.
PEOPLE_DECIDED = (ImageStatus.APPROVED, ImageStatus.REJECTED, ImageStatus.FLAGGED, ImageStatus.ADJUDICATION)


def _element_payload(element, width: int, height: int) -> dict[str, Any]:
    out: dict[str, Any] = {"phrase": element.phrase}
    if element.box is not None:
        out["box"] = element.box.as_list()[:4]
        out["box_score"] = min(1.0, max(0.0, element.box.score))
    if element.mask is not None:
        mask = validate_mask(element.mask.rle, width, height, allow_empty=True)
        if mask is not None:  # an empty mask shows nothing: the element keeps its box only
            out["mask"] = mask
            out["mask_score"] = min(1.0, max(0.0, element.mask.score))
    return out


def _annotator_input(result: AnnotatorResult, calibration: CalibrationResult, width: int, height: int) -> AnnotationInput:
    distribution = dict(calibration.calibrated[result.model])
    label = max(distribution, key=lambda k: distribution[k])
    triplets = validate_triplets([t.phrases() for t in result.triplets], width, height)
    return AnnotationInput(
        triplets=triplets,
        ces=CesInput(label=label, confidence=distribution[label], distribution=distribution),
        rationale=result.rationale,
    )


def _merged_input(
    grounded: tuple[GroundedTriplet, ...],
    calibration: CalibrationResult,
    results: list[AnnotatorResult],
    des: np.ndarray | None,
    width: int,
    height: int,
) -> AnnotationInput:
    payload = [{e.role: _element_payload(e, width, height) for e in t.elements} for t in grounded]
    # The rationale of the annotator that gave the merged label the most weight.
    best = max(results, key=lambda r: calibration.calibrated[r.model].get(calibration.label, 0.0))
    return AnnotationInput(
        triplets=validate_triplets(payload, width, height),
        ces=CesInput(label=calibration.label, confidence=calibration.confidence, distribution=dict(calibration.merged)),
        des=None if des is None else np.asarray(des, dtype="<f4").tobytes(),
        rationale=best.rationale,
    )


@dataclass(frozen=True)
class SaveItem:
    """One run of a GPU batch: its stage rows and what the GPU stages made of it."""

    run_id: int
    outputs: dict[str, StageResult]
    grounded: tuple[GroundedTriplet, ...]
    des: np.ndarray | None


@dataclass
class _Plan:
    run: PipelineRun
    merged_index: int
    auto_accept: bool
    people_decided: bool
    routing: Any
    calibration: CalibrationResult


@transaction.atomic
def save_preannotations(*, items: list[SaveItem], claim: str, timings: dict[str, float], with_des: bool) -> None:
    """Store a GPU batch's annotations, route its images and mark its runs done, in a fixed
    number of queries for the whole batch (precondition: the caller holds the runs' GPU claim
    ``claim``; runs no longer held, or already done, are skipped).

    When people decided on or reviewed an image while the model ran, the answers are kept as
    history (never auto-accepted) and the image stays where people put it. Each annotator's
    raw output is stored once, in its annotation: the stage rows' copies are cleared.
    """
    started = time.perf_counter()
    reviewed = Annotation.objects.filter(image=OuterRef("image_id"), kind=AnnotationKind.HUMAN, is_current=True)
    held = {
        run.pk: run
        for run in PipelineRun.objects.select_for_update(of=("self",))
        .filter(pk__in=[item.run_id for item in items], status=RunStatus.RUNNING, gpu_claim=claim)
        .select_related("image__dataset")
        .annotate(reviewed=Exists(reviewed))
    }
    new: list[NewAnnotation] = []
    plans: list[_Plan] = []
    for item in items:
        run = held.get(item.run_id)
        if run is None:
            continue
        try:
            plans.append(_plan(run, item, new))
        except InvalidAnnotation as exc:
            raise StageError(f"the pipeline's result does not validate: {exc}") from exc
    if not plans:
        return
    created = annotation_bulk_create(items=new)
    seconds = (time.perf_counter() - started) / len(plans)
    gpu_stages = {"ground": timings["ground"], "segment": timings["segment"], "save": seconds}
    if with_des:
        gpu_stages["des"] = timings["des"]
    _mark_done(plans, created, items, gpu_stages, batch_size=len(items))
    by_status: dict[str, list] = {}
    for plan in plans:
        if plan.people_decided:
            logger.info("run %s: image %s was %s by people meanwhile; status kept", plan.run.pk, plan.run.image_id,
                        plan.run.image.status)
            continue
        agreement = plan.calibration.agreement.score if plan.calibration.agreement is not None else None
        status = ImageStatus.APPROVED if plan.auto_accept else ImageStatus.IN_REVIEW
        fields = {"label": plan.calibration.label, "confidence": plan.calibration.confidence, "agreement": agreement,
                  "priority": plan.routing.priority}
        by_status.setdefault(status, []).append((plan.run.image, fields))
    for status, updates in by_status.items():
        images_set_status(updates, status=status)


def _plan(run: PipelineRun, item: SaveItem, new: list[NewAnnotation]) -> _Plan:
    """Add the run's annotations (each annotator's own answer, then the merged one) to ``new``."""
    image, outputs = run.image, item.outputs
    names = sorted(k for k in outputs if k.startswith("annotate:"))
    results = [codec.load_annotator_result({"raw_output": outputs[k].raw_output, **outputs[k].output}) for k in names]
    calibration = codec.load_calibration(outputs["calibrate"].output["calibration"])
    critic: CriticResult = codec.load_critic({"raw_output": outputs["critic"].raw_output, **outputs["critic"].output})
    threshold = image.dataset.auto_accept_threshold
    routing = pipeline.route(calibration, critic, auto_accept_threshold=threshold)
    people_decided = image.status in PEOPLE_DECIDED or run.reviewed
    auto_accept = routing.auto_accept and not people_decided
    version = run.pipeline_version
    # The model calls' tokens and cost, kept with each stage's output (its usage), summed here once.
    usages = [r.usage for r in results] + [critic.usage]
    run.cost_usd = sum(u.cost_usd for u in usages)
    run.prompt_tokens = sum(u.prompt_tokens for u in usages)
    run.completion_tokens = sum(u.completion_tokens for u in usages)
    for result in results:
        new.append(NewAnnotation(
            image=image,
            data=_annotator_input(result, calibration, image.width, image.height),
            kind=AnnotationKind.MODEL,
            author_name=result.model,
            prompt_version=result.prompt_version,
            pipeline_version=version,
            raw_output=result.raw_output,
            raw_distribution=dict(result.distribution),
            extra={"usage": codec.dump(result.usage)},
        ))
    new.append(NewAnnotation(
        image=image,
        data=_merged_input(item.grounded, calibration, results, item.des, image.width, image.height),
        kind=AnnotationKind.MODEL,
        author_name=PIPELINE_AUTHOR,
        decision=Decision.APPROVED if auto_accept else Decision.NONE,
        decision_reason=f"auto-accepted: confidence and agreement at or above {threshold}" if auto_accept else "",
        prompt_version=",".join(sorted({r.prompt_version for r in results} | {critic.prompt_version})),
        pipeline_version=version,
        critic=codec.dump(critic),
        extra={
            "annotators": [r.model for r in results],
            "calibration": codec.dump(calibration),
            "agreement": codec.dump(calibration.agreement),
            "priority": routing.priority,
            "cost_usd": run.cost_usd,
        },
    ))
    return _Plan(run=run, merged_index=len(new) - 1, auto_accept=auto_accept, people_decided=people_decided,
                 routing=routing, calibration=calibration)


def _mark_done(plans: list[_Plan], created: list[Annotation], items: list[SaveItem], gpu_stages: dict[str, float], *,
               batch_size: int) -> None:
    """The GPU stage rows done (one upsert), the stage rows' raw outputs cleared (one UPDATE),
    the runs done with their timings, tokens and cost (one UPDATE)."""
    now = timezone.now()
    outputs = {item.run_id: item.outputs for item in items}
    StageResult.objects.bulk_create(
        [StageResult(run_id=plan.run.pk, stage=stage, status=StageStatus.DONE, duration_s=seconds, attempt=1,
                     output={"batch_size": batch_size}, reason="", updated_at=now)
         for plan in plans for stage, seconds in gpu_stages.items()],
        update_conflicts=True, unique_fields=["run", "stage"],
        update_fields=["status", "duration_s", "output", "reason", "lease_until", "updated_at"],
    )
    StageResult.objects.filter(run_id__in=[p.run.pk for p in plans]).exclude(raw_output="").filter(
        Q(stage__startswith="annotate:") | Q(stage="critic")
    ).update(raw_output="")
    for plan in plans:
        run = plan.run
        durations = {stage: row.duration_s for stage, row in outputs[run.pk].items() if row.duration_s is not None}
        run.status, run.annotation, run.auto_accepted = RunStatus.DONE, created[plan.merged_index], plan.auto_accept
        run.timings = {**run.timings, **{k: round(v, 4) for k, v in {**durations, **gpu_stages}.items()}}
        run.finished_at, run.updated_at = now, now
        run.gpu_claim, run.gpu_claimed_until = "", None
    PipelineRun.objects.bulk_update(
        [p.run for p in plans],
        ["status", "annotation", "auto_accepted", "timings", "cost_usd", "prompt_tokens", "completion_tokens",
         "finished_at", "updated_at", "gpu_claim", "gpu_claimed_until"],
    )
