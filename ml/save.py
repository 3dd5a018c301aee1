"""Turn a finished run's stage outputs into annotation rows, and route the image.

Stores, through ``annotations.services.annotation_create``: each annotator's own
answer (author = the annotator's name; calibrated distribution, raw distribution
kept) and the merged, grounded, critic-checked annotation (author =
``PIPELINE_AUTHOR``). All in one transaction with marking the run done, so a
killed worker leaves either everything or nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from annotations.domain import PIPELINE_AUTHOR
from annotations.errors import InvalidAnnotation
from annotations.models import Annotation, AnnotationKind, Decision, ImageStatus
from annotations.services import annotation_create, image_set_status
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


@transaction.atomic
def save_preannotation(
    *,
    run_id: int,
    claim: str,
    outputs: dict[str, StageResult],
    grounded: tuple[GroundedTriplet, ...],
    des: np.ndarray | None,
    timings: dict[str, float],
    batch_size: int,
    with_des: bool,
) -> None:
    """Store the annotations, route the image and mark the run done (precondition: the
    caller holds the run's GPU claim ``claim``). Does nothing when the run is already done.

    When people decided on or reviewed the image while the model ran, the answers are
    kept as history (never auto-accepted) and the image stays where people put it.
    """
    started = time.perf_counter()
    run = PipelineRun.objects.select_for_update().select_related("image__dataset").get(pk=run_id)
    if run.status != RunStatus.RUNNING or run.gpu_claim != claim:
        return
    image = run.image
    names = sorted(k for k in outputs if k.startswith("annotate:"))
    results = [codec.load_annotator_result(outputs[k].output) for k in names]
    calibration = codec.load_calibration(outputs["calibrate"].output["calibration"])
    critic: CriticResult = codec.load_critic(outputs["critic"].output)
    routing = pipeline.route(calibration, critic, auto_accept_threshold=image.dataset.auto_accept_threshold)
    people_decided = image.status in PEOPLE_DECIDED or Annotation.objects.filter(
        image=image, kind=AnnotationKind.HUMAN, is_current=True
    ).exists()
    auto_accept = routing.auto_accept and not people_decided
    try:
        merged = _store_annotations(run, results, calibration, critic, grounded, des, priority=routing.priority,
                                    auto_accept=auto_accept)
    except InvalidAnnotation as exc:
        raise StageError(f"the pipeline's result does not validate: {exc}") from exc
    gpu_stages = {"ground": timings["ground"], "segment": timings["segment"], "save": time.perf_counter() - started}
    if with_des:
        gpu_stages["des"] = timings["des"]
    _mark_done(run, merged, gpu_stages, auto_accepted=auto_accept, batch_size=batch_size, with_des=with_des)
    if people_decided:
        logger.info("run %s: image %s was %s by people meanwhile; status kept", run.pk, image.pk, image.status)
        return
    agreement = calibration.agreement.score if calibration.agreement is not None else None
    image_set_status(
        image=image,
        status=ImageStatus.APPROVED if auto_accept else ImageStatus.IN_REVIEW,
        label=calibration.label,
        confidence=calibration.confidence,
        agreement=agreement,
        priority=routing.priority,
    )


def _store_annotations(
    run: PipelineRun,
    results: list[AnnotatorResult],
    calibration: CalibrationResult,
    critic: CriticResult,
    grounded: tuple[GroundedTriplet, ...],
    des: np.ndarray | None,
    *,
    priority: float,
    auto_accept: bool,
) -> Annotation:
    """Each annotator's own answer, then the merged one (returned)."""
    image, version = run.image, run.pipeline_version
    for result in results:
        annotation_create(
            image=image,
            data=_annotator_input(result, calibration, image.width, image.height),
            kind=AnnotationKind.MODEL,
            author_name=result.model,
            prompt_version=result.prompt_version,
            pipeline_version=version,
            raw_output=result.raw_output,
            raw_distribution=dict(result.distribution),
            extra={"usage": codec.dump(result.usage)},
        )
    threshold = image.dataset.auto_accept_threshold
    return annotation_create(
        image=image,
        data=_merged_input(grounded, calibration, results, des, image.width, image.height),
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
            "priority": priority,
            "cost_usd": run.cost_usd,
        },
    )


def _mark_done(
    run: PipelineRun, merged: Annotation, gpu_stages: dict[str, float], *, auto_accepted: bool, batch_size: int,
    with_des: bool,
) -> None:
    for stage, seconds in gpu_stages.items():
        StageResult.objects.update_or_create(
            run=run, stage=stage,
            defaults={"status": StageStatus.DONE, "duration_s": seconds, "output": {"batch_size": batch_size}, "reason": ""},
        )
    if not with_des:
        StageResult.objects.filter(run=run, stage="des").delete()
    run.status, run.annotation, run.auto_accepted = RunStatus.DONE, merged, auto_accepted
    run.timings = {**run.timings, **{k: round(v, 4) for k, v in gpu_stages.items()}}
    run.finished_at = timezone.now()
    run.gpu_claim, run.gpu_claimed_until = "", None
    run.save()
