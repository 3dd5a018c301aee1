"""The database side of one pipeline run: stage bookkeeping and the stage work.

Called by the thin tasks in ``ml/tasks.py``. Every function takes IDs, re-reads
the rows, and is safe to call twice: a stage that is already done is not done
again, a run that is finished is left alone. Stage failures are recorded with
their reason and raw model output; transient ones are re-raised for the task to
retry.
"""

from __future__ import annotations

import functools
import logging
import mimetypes
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from annotations.models import Image, ImageStatus
from annotations.phrase_embeddings import phrase_vectors
from annotations.services import image_set_status
from ml import embeddings
from ml.config import get_registry
from ml.models import PipelineRun, RunStatus, StageResult, StageStatus
from ml.save import save_preannotation
from ml.selectors import latest_temperatures
from ml.stages import codec, pipeline
from ml.stages.types import AnnotatorResult, BackendNotConfigured, ImageInput, StageError, Usage

GPU_STAGES = ("ground", "segment", "des", "save")
# Unexpected exceptions worth retrying: the database or a network peer went away for a while.
TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, ConnectionError, TimeoutError)

logger = logging.getLogger(__name__)


def image_input(image: Image) -> ImageInput:
    """The stored file's bytes as a stage input, with its dataset's emotion taxonomy."""
    with image.file.open("rb") as handle:
        data = handle.read()
    mime = mimetypes.guess_type(image.file.name)[0] or "image/jpeg"
    return ImageInput(key=str(image.pk), data=data, width=image.width, height=image.height, mime_type=mime,
                      taxonomy=image.dataset.get_taxonomy())


# --- stage bookkeeping ------------------------------------------------------------------


def stage_begin(run_id: int, stage: str) -> PipelineRun | None:
    """Mark ``stage`` running; ``None`` when there is nothing to do (run finished, stage done)."""
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().select_related("image").get(pk=run_id)
        if run.status in (RunStatus.DONE, RunStatus.FAILED):
            return None
        row, _ = StageResult.objects.get_or_create(run=run, stage=stage)
        if row.status == StageStatus.DONE:
            return None
        StageResult.objects.filter(pk=row.pk).update(status=StageStatus.RUNNING, attempt=F("attempt") + 1, reason="")
        run.status = RunStatus.RUNNING
        run.save(update_fields=["status", "updated_at"])  # updated_at: progress, see services.stale_runs
        return run


def stage_done(
    run: PipelineRun, stage: str, *, output: Any, raw_output: str = "", duration: float, usage: Usage | None = None,
    note: str = "",
) -> None:
    """Mark ``stage`` done with its output; ``usage``: its model calls' tokens and cost, added to
    the run's; ``note``: what the page should know about it (kept as the reason)."""
    with transaction.atomic():
        locked = PipelineRun.objects.select_for_update().get(pk=run.pk)
        StageResult.objects.filter(run=locked, stage=stage).update(
            status=StageStatus.DONE, output=output, raw_output=raw_output, duration_s=duration, reason=note
        )
        locked.timings = {**locked.timings, stage: round(duration, 4)}
        if usage is not None:
            locked.cost_usd += usage.cost_usd
            locked.prompt_tokens += usage.prompt_tokens
            locked.completion_tokens += usage.completion_tokens
        locked.save(update_fields=["timings", "cost_usd", "prompt_tokens", "completion_tokens", "updated_at"])


def stage_retrying(run_id: int, stage: str, reason: str) -> None:
    """A transient failure that will be retried: back to queued, reason kept for the page."""
    StageResult.objects.filter(run_id=run_id, stage=stage).update(status=StageStatus.QUEUED, reason=reason)
    PipelineRun.objects.filter(pk=run_id).update(updated_at=timezone.now())


def stage_failed(run_id: int, stage: str, error: StageError, *, gave_up: bool = False) -> None:
    """Record the failure; the run fails and the image waits for a retry (nothing is invented)."""
    reason = f"{error.reason} (gave up after retries)" if gave_up else error.reason
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().select_related("image").get(pk=run_id)
        if run.status == RunStatus.DONE:
            return
        StageResult.objects.update_or_create(
            run=run, stage=stage, defaults={"status": StageStatus.FAILED, "reason": reason, "raw_output": error.raw_output}
        )
        run.status, run.failed_stage, run.error = RunStatus.FAILED, stage, reason
        run.finished_at = timezone.now()
        run.gpu_claim, run.gpu_claimed_until = "", None
        run.save()
        image_set_status(image=run.image, status=ImageStatus.FAILED)


def as_stage_error(exc: Exception) -> StageError:
    """An exception that is not a :class:`StageError` as one: ``"<Type>: <message>"``.

    Transient (retried with backoff) for :data:`TRANSIENT_EXCEPTIONS`; anything else
    (a missing image file, CUDA out of memory, a client library's validation error)
    is a failure of the stage, recorded for the page and retried on request.
    """
    return StageError(f"{type(exc).__name__}: {exc}", transient=isinstance(exc, TRANSIENT_EXCEPTIONS))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _outputs(run: PipelineRun) -> dict[str, StageResult]:
    return {s.stage: s for s in StageResult.objects.filter(run=run)}


def _annotator_results(run: PipelineRun, outputs: dict[str, StageResult], names: list[str]) -> list[AnnotatorResult]:
    missing = [n for n in names if outputs.get(f"annotate:{n}") is None or outputs[f"annotate:{n}"].status != StageStatus.DONE]
    if missing:
        # A re-delivered annotator task can release the next step early: wait for it.
        raise StageError(f"waiting for annotator(s) {', '.join(missing)}", transient=True)
    return [codec.load_annotator_result(outputs[f"annotate:{n}"].output) for n in names]


def _require(outputs: dict[str, StageResult], stage: str) -> StageResult:
    row = outputs.get(stage)
    if row is None or row.status != StageStatus.DONE:
        raise StageError(f"waiting for the {stage} stage", transient=True)
    return row


# --- the stages ---------------------------------------------------------------------------


def annotate(run_id: int, name: str) -> None:
    stage = f"annotate:{name}"
    run = stage_begin(run_id, stage)
    if run is None:
        return
    annotator = get_registry().annotator(name)
    result, seconds = _timed(lambda: annotator.annotate(image_input(run.image)))
    stage_done(run, stage, output=codec.dump(result), raw_output=result.raw_output, duration=seconds, usage=result.usage)


def _phrases(results: list[AnnotatorResult]) -> list[str]:
    return [p for r in results for t in r.triplets for p in t.phrases().values()]


def embed(run_id: int) -> None:
    """Embed the annotators' phrases that have no stored embedding, so calibration pairs their
    triplets by meaning. Never fails the run: where no embedder can run, the stage is done
    with the reason as its note, and the triplets are paired by words."""
    run = stage_begin(run_id, "embed")
    if run is None:
        return
    results = _annotator_results(run, _outputs(run), [s.name for s in get_registry().annotator_specs()])
    result, seconds = _timed(lambda: embeddings.embed_phrases(_phrases(results)))
    stage_done(run, "embed", output=result.as_dict(), duration=seconds, note=result.unavailable)


def calibrate(run_id: int) -> None:
    run = stage_begin(run_id, "calibrate")
    if run is None:
        return
    reg = get_registry()
    names = [s.name for s in reg.annotator_specs()]
    results = _annotator_results(run, _outputs(run), names)
    image = image_input(run.image)
    vectors = phrase_vectors(_phrases(results))  # stored by the embed step; by words where missing

    def work():
        calibration = pipeline.calibrate(reg.calibrator(), image, results, latest_temperatures(), reg.classifier(),
                                         vectors=vectors)
        triplets = pipeline.candidate_triplets(results, calibration, max_triplets=reg.config.get("max_triplets"),
                                               vectors=vectors)
        return calibration, triplets

    (calibration, triplets), seconds = _timed(work)
    stage_done(run, "calibrate", output={"calibration": codec.dump(calibration), "triplets": codec.dump(triplets)}, duration=seconds)


def critic(run_id: int) -> None:
    run = stage_begin(run_id, "critic")
    if run is None:
        return
    reg = get_registry()
    outputs = _outputs(run)
    results = _annotator_results(run, outputs, [s.name for s in reg.annotator_specs()])
    calibrated = _require(outputs, "calibrate").output
    calibration = codec.load_calibration(calibrated["calibration"])
    triplets = codec.load_triplets(calibrated["triplets"])
    image = image_input(run.image)
    verdict, seconds = _timed(lambda: pipeline.critique(reg.critic(), image, results, calibration, triplets))
    stage_done(run, "critic", output=codec.dump(verdict), raw_output=verdict.raw_output, duration=seconds, usage=verdict.usage)


# --- the GPU batch ------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    token: str
    run_ids: list[int]


class ClaimedElsewhere(StageError):
    """The run is in another worker's GPU batch (for up to ``seconds`` more)."""

    def __init__(self, seconds: float):
        super().__init__(f"in another GPU batch, claimed for up to {seconds:.0f}s more", transient=True)
        self.seconds = seconds


def gpu_claim(run_id: int, *, token: str, batch_size: int, lease_seconds: int) -> Claim | None:
    """Claim ``run_id`` and up to ``batch_size - 1`` other runs ready for the GPU stages.

    ``token`` names the claimant and must stay the same across retries and
    redeliveries of one task (its message id): a task finds the claim of its own
    earlier attempt, one that was retried or whose worker died, and takes it back
    together with the rest of that batch. A claim held under another token raises
    :class:`ClaimedElsewhere` until it expires after ``lease_seconds`` (the task's
    hard time limit). ``None``: the run is finished, nothing to do.
    """
    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds)
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().get(pk=run_id)
        if run.status in (RunStatus.DONE, RunStatus.FAILED):
            return None
        if not StageResult.objects.filter(run=run, stage="critic", status=StageStatus.DONE).exists():
            raise StageError("waiting for the critic stage", transient=True)
        if run.gpu_claim and run.gpu_claim != token and run.gpu_claimed_until and run.gpu_claimed_until > now:
            raise ClaimedElsewhere((run.gpu_claimed_until - now).total_seconds())
        held = list(
            PipelineRun.objects.select_for_update()
            .filter(gpu_claim=token, status=RunStatus.RUNNING)
            .exclude(pk=run.pk)
            .order_by("id")
            .values_list("pk", flat=True)
        )
        ready = (
            PipelineRun.objects.filter(pipeline_version=run.pipeline_version, status=RunStatus.RUNNING)
            .exclude(pk__in=[run.pk, *held])
            .filter(stages__stage="critic", stages__status=StageStatus.DONE)
            .exclude(gpu_claimed_until__gt=now)
            .order_by("id")
        )
        if connection.features.has_select_for_update_skip_locked:
            ready = ready.select_for_update(skip_locked=True, of=("self",))
        others = list(ready.values_list("pk", flat=True)[: max(0, batch_size - 1 - len(held))])
        ids = [run.pk, *held, *others]
        # A retried run whose earlier stages were all kept reaches the GPU still queued.
        PipelineRun.objects.filter(pk__in=ids).update(
            status=RunStatus.RUNNING, gpu_claim=token, gpu_claimed_until=until, updated_at=now
        )
    return Claim(token=token, run_ids=ids)


def gpu_release(token: str) -> int:
    """Give up the claim ``token`` on its unfinished runs (before a retry), so that the
    next GPU task, this one's retry or another run's, can take them; how many."""
    return PipelineRun.objects.filter(gpu_claim=token).exclude(status=RunStatus.DONE).update(
        gpu_claim="", gpu_claimed_until=None, updated_at=timezone.now()
    )


def gpu_process(claim: Claim) -> None:
    """Ground, segment, encode and save the claimed runs (one batched call per model).

    A non-transient error in a batch of several is retried image by image, so one bad
    image fails alone; transient errors propagate for the task to retry.
    """
    runs = list(PipelineRun.objects.filter(pk__in=claim.run_ids, gpu_claim=claim.token).select_related("image__dataset"))
    if not runs:
        return
    try:
        _gpu_batch(runs, claim.token)
    except _BatchStageError as exc:
        if exc.error.transient:
            raise exc.error from exc
        if len(runs) == 1:
            stage_failed(runs[0].pk, exc.stage, exc.error)
            return
        pending = PipelineRun.objects.filter(pk__in=claim.run_ids, gpu_claim=claim.token, status=RunStatus.RUNNING)
        for run in pending.select_related("image__dataset"):
            try:
                _gpu_batch([run], claim.token)
            except _BatchStageError as single:
                if single.error.transient:
                    raise single.error from single
                stage_failed(run.pk, single.stage, single.error)


class _BatchStageError(Exception):
    def __init__(self, stage: str, error: StageError):
        super().__init__(f"{stage}: {error.reason}")
        self.stage, self.error = stage, error


def _stage(stage: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    """Run one step of the batch; its failure as a :class:`_BatchStageError` naming the step.

    Unexpected exceptions (CUDA out of memory, a corrupt weights file) become failures
    of the step like a :class:`StageError`; a soft time limit and a lost database stay
    as they are for the task to retry.
    """
    try:
        return _timed(fn)
    except StageError as exc:
        raise _BatchStageError(stage, exc) from exc
    except BackendNotConfigured as exc:
        raise _BatchStageError(stage, StageError(f"not configured: {exc}")) from exc
    except (SoftTimeLimitExceeded, DatabaseError):
        raise
    except Exception as exc:
        error = as_stage_error(exc)
        if not error.transient:
            logger.exception("GPU stage %s failed unexpectedly", stage)
        raise _BatchStageError(stage, error) from exc


def _gpu_batch(runs: list[PipelineRun], token: str) -> None:
    reg = get_registry()
    outputs = {run.pk: _outputs(run) for run in runs}
    images, _ = _stage("ground", lambda: [image_input(run.image) for run in runs])  # a missing file fails its run
    triplets = [codec.load_triplets(outputs[run.pk]["calibrate"].output["triplets"]) for run in runs]
    for run in runs:
        StageResult.objects.filter(run=run, stage__in=GPU_STAGES).exclude(status=StageStatus.DONE).delete()
        StageResult.objects.bulk_create(
            [StageResult(run=run, stage=s, status=StageStatus.RUNNING, attempt=1) for s in GPU_STAGES],
            ignore_conflicts=True,
        )
    boxes, t_ground = _stage("ground", lambda: pipeline.ground(reg.grounder(), images, triplets))
    masks, t_segment = _stage("segment", lambda: pipeline.segment(reg.segmenter(), images, boxes))
    with_des = reg.spec("des") is not None
    vectors, t_des = _stage("des", lambda: pipeline.encode_des(reg.des(), images) if with_des else None)
    n = len(runs)
    timings = {"ground": t_ground / n, "segment": t_segment / n, "des": t_des / n}
    for i, run in enumerate(runs):
        grounded = pipeline.assemble(triplets[i], boxes[i], masks[i])
        vector = None if vectors is None else vectors[i]
        save = functools.partial(
            save_preannotation, run_id=run.pk, claim=token, outputs=outputs[run.pk], grounded=grounded,
            des=vector, timings=timings, batch_size=n, with_des=with_des,
        )
        _stage("save", save)
