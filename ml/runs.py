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
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from annotations.models import ImageStatus
from annotations.phrase_embeddings import phrase_vectors
from annotations.services import image_set_status
from ml import embeddings
from ml.config import get_registry
from ml.inputs import image_input
from ml.models import PipelineRun, RunStatus, StageResult, StageStatus
from ml.save import SaveItem, save_preannotations
from ml.selectors import TEMPERATURES_MAX_AGE_S, latest_temperatures
from ml.stages import codec, pipeline
from ml.stages.types import AnnotatorResult, BackendNotConfigured, CriticResult, StageError

GPU_STAGES = ("ground", "segment", "des", "save")
# Unexpected exceptions worth retrying: the database or a network peer went away for a while.
TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, ConnectionError, TimeoutError)

logger = logging.getLogger(__name__)




# --- stage bookkeeping ------------------------------------------------------------------

ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


class RunningElsewhere(Exception):
    """The stage runs under another task's live claim: a duplicate (a re-sent chain) must not
    call the model a second time; the holder finishes the stage and its chain goes on."""

    def __init__(self, stage: str, owner: str, seconds: float):
        super().__init__(f"{stage} runs under {owner} for up to {seconds:.0f}s more")
        self.stage, self.owner, self.seconds = stage, owner, seconds


def stage_begin(run_id: int, stage: str, *, owner: str, lease_seconds: float) -> PipelineRun | None:
    """Claim ``stage`` for ``owner`` (the task's message id) until ``lease_seconds`` from now.

    Returns the run with its image and ``run.outputs`` (every stage row by name), or ``None``
    when there is nothing to do (run finished, stage done). Raises :class:`RunningElsewhere`
    while another owner's lease on the stage is live; the same owner (a retry or a
    redelivery of the same message) takes its claim back. The lease is the task's hard time
    limit: no task holds a stage longer, so a live lease means a live worker.

    Queries: one conditional UPDATE (the claim), one SELECT (the run's stage rows with the
    run and image), and one UPDATE for the first stage of a queued run.
    """
    now = timezone.now()
    claimed = _claim(run_id, (stage,), owner=owner, lease_seconds=lease_seconds, now=now)
    if not claimed:
        run = PipelineRun.objects.filter(pk=run_id).only("status").first()
        if run is None or run.status not in ACTIVE:
            return None
        row = StageResult.objects.filter(run_id=run_id, stage=stage).first()
        if row is None:  # a run not created by enqueue_preannotation: its rows appear as it goes
            StageResult.objects.bulk_create([StageResult(run_id=run_id, stage=stage)], ignore_conflicts=True)
            return stage_begin(run_id, stage, owner=owner, lease_seconds=lease_seconds)
        if row.status == StageStatus.DONE:
            return None
        raise RunningElsewhere(stage, row.owner, (row.lease_until - now).total_seconds())
    return _load(run_id, now=now)


def _claim(run_id: int, stages: tuple[str, ...], *, owner: str, lease_seconds: float, now) -> int:
    """One conditional UPDATE: the ``stages`` of an active run that are not done and not under
    another owner's live lease become ``owner``'s until ``lease_seconds`` from now; how many."""
    claimable = ~Q(status=StageStatus.RUNNING) | Q(owner=owner) | Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    return (
        StageResult.objects.filter(run_id=run_id, stage__in=stages, run__status__in=ACTIVE)
        .exclude(status=StageStatus.DONE)
        .filter(claimable)
        .update(status=StageStatus.RUNNING, owner=owner, lease_until=now + timedelta(seconds=lease_seconds),
                attempt=F("attempt") + 1, reason="", updated_at=now)
    )


def _load(run_id: int, *, now) -> PipelineRun:
    """The run with its image and ``run.outputs`` (one SELECT); a queued run becomes running."""
    rows = list(StageResult.objects.filter(run_id=run_id).select_related("run__image__dataset"))
    run = rows[0].run
    run.outputs = {r.stage: r for r in rows}
    if run.status == RunStatus.QUEUED:
        PipelineRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(status=RunStatus.RUNNING, updated_at=now)
        run.status = RunStatus.RUNNING
    return run


def stage_done(
    run: PipelineRun, stage: str, *, owner: str, output: Any, raw_output: str = "", duration: float, note: str = "",
) -> None:
    """Mark ``stage`` done with its output (one UPDATE); ``note``: what the page should know about it
    (kept as the reason). The raw model output is kept once, in the row's ``raw_output``, not in
    ``output`` too. Written only while ``owner`` still holds the claim."""
    if isinstance(output, dict):
        output = {k: v for k, v in output.items() if k != "raw_output"}
    written = StageResult.objects.filter(run_id=run.pk, stage=stage, owner=owner).update(
        status=StageStatus.DONE, output=output, raw_output=raw_output, duration_s=duration, reason=note,
        lease_until=None, updated_at=timezone.now(),
    )
    if not written:
        logger.warning("run %s stage %s: the claim of %s was taken over; its result is dropped", run.pk, stage, owner)


def stage_retrying(run_id: int, stage: str, reason: str) -> None:
    """A transient failure that will be retried: back to queued, reason kept for the page."""
    StageResult.objects.filter(run_id=run_id, stage=stage).update(
        status=StageStatus.QUEUED, reason=reason, lease_until=None, updated_at=timezone.now()
    )


def stage_failed(run_id: int, stage: str, error: StageError, *, gave_up: bool = False) -> None:
    """Record the failure; the run fails and the image waits for a retry (nothing is invented)."""
    reason = f"{error.reason} (gave up after retries)" if gave_up else error.reason
    with transaction.atomic():
        run = PipelineRun.objects.select_for_update().select_related("image").get(pk=run_id)
        if run.status == RunStatus.DONE:
            return
        StageResult.objects.update_or_create(
            run=run, stage=stage,
            defaults={"status": StageStatus.FAILED, "reason": reason, "raw_output": error.raw_output, "lease_until": None},
        )
        run.status, run.failed_stage, run.error = RunStatus.FAILED, stage, reason
        run.finished_at = timezone.now()
        run.gpu_claim, run.gpu_claimed_until = "", None
        _sum_done_stages(run)
        run.save()
        image_set_status(image=run.image, status=ImageStatus.FAILED)


def _sum_done_stages(run: PipelineRun) -> None:
    """The run's timings, tokens and cost from its stages that are done (each keeps its model
    calls' usage in its output): what a run that fails had already spent. A run that is saved
    gets them from its batch (``ml.save``); stages write only their own row."""
    rows = list(StageResult.objects.filter(run_id=run.pk, status=StageStatus.DONE).values_list("stage", "duration_s", "output"))
    usages = [codec.load_usage(out.get("usage")) for _, _, out in rows if isinstance(out, dict)]
    run.timings = {**run.timings, **{stage: round(seconds, 4) for stage, seconds, _ in rows if seconds is not None}}
    run.cost_usd = sum(u.cost_usd for u in usages)
    run.prompt_tokens = sum(u.prompt_tokens for u in usages)
    run.completion_tokens = sum(u.completion_tokens for u in usages)


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


def load_annotator(row: StageResult) -> AnnotatorResult:
    """An annotator's stored result; its raw output is kept once, in the row's column."""
    return codec.load_annotator_result({"raw_output": row.raw_output, **(row.output or {})})


def load_critic(row: StageResult) -> CriticResult:
    return codec.load_critic({"raw_output": row.raw_output, **(row.output or {})})


def _annotator_results(run: PipelineRun, outputs: dict[str, StageResult], names: list[str]) -> list[AnnotatorResult]:
    missing = [n for n in names if outputs.get(f"annotate:{n}") is None or outputs[f"annotate:{n}"].status != StageStatus.DONE]
    if missing:
        # A re-delivered annotator task can release the next step early: wait for it.
        raise StageError(f"waiting for annotator(s) {', '.join(missing)}", transient=True)
    return [load_annotator(outputs[f"annotate:{n}"]) for n in names]


def _require(outputs: dict[str, StageResult], stage: str) -> StageResult:
    row = outputs.get(stage)
    if row is None or row.status != StageStatus.DONE:
        raise StageError(f"waiting for the {stage} stage", transient=True)
    return row


# --- the stages ---------------------------------------------------------------------------
# Each takes the claiming task's ``owner`` (its message id) and ``lease_seconds`` (its hard
# time limit), see :func:`stage_begin`.


def annotate(run_id: int, name: str, *, owner: str, lease_seconds: float) -> None:
    stage = f"annotate:{name}"
    run = stage_begin(run_id, stage, owner=owner, lease_seconds=lease_seconds)
    if run is None:
        return
    annotator = get_registry().annotator(name)
    result, seconds = _timed(lambda: annotator.annotate(image_input(run.image)))
    stage_done(run, stage, owner=owner, output=codec.dump(result), raw_output=result.raw_output, duration=seconds)


def _phrases(results: list[AnnotatorResult]) -> list[str]:
    return [p for r in results for t in r.triplets for p in t.phrases().values()]


def embed(run_id: int, *, owner: str, lease_seconds: float) -> None:
    """Embed the annotators' phrases that have no stored embedding, so calibration pairs their
    triplets by meaning. Never fails the run: where no embedder can run, the stage is done
    with the reason as its note, and the triplets are paired by words."""
    run = stage_begin(run_id, "embed", owner=owner, lease_seconds=lease_seconds)
    if run is None:
        return
    results = _annotator_results(run, run.outputs, [s.name for s in get_registry().annotator_specs()])
    result, seconds = _timed(lambda: embeddings.embed_phrases(_phrases(results)))
    stage_done(run, "embed", owner=owner, output=result.as_dict(), duration=seconds, note=result.unavailable)


def _calibrate(run: PipelineRun, owner: str) -> dict:
    reg = get_registry()
    results = _annotator_results(run, run.outputs, [s.name for s in reg.annotator_specs()])
    classifier = reg.classifier()
    image = image_input(run.image)
    # Stored by the embed step; by words where missing, and throughout when the embedder is off.
    vectors = phrase_vectors(_phrases(results)) if reg.spec("embedder") is not None else {}

    def work():
        calibration = pipeline.calibrate(reg.calibrator(), image, results, latest_temperatures(max_age_s=TEMPERATURES_MAX_AGE_S), classifier,
                                         vectors=vectors)
        triplets = pipeline.candidate_triplets(results, calibration, max_triplets=reg.config.get("max_triplets"),
                                               vectors=vectors)
        return calibration, triplets

    (calibration, triplets), seconds = _timed(work)
    output = {"calibration": codec.dump(calibration), "triplets": codec.dump(triplets)}
    stage_done(run, "calibrate", owner=owner, output=output, duration=seconds)
    return output


def _critique(run: PipelineRun, owner: str, calibrated: dict) -> None:
    reg = get_registry()
    results = _annotator_results(run, run.outputs, [s.name for s in reg.annotator_specs()])
    calibration = codec.load_calibration(calibrated["calibration"])
    triplets = codec.load_triplets(calibrated["triplets"])
    image = image_input(run.image)
    verdict, seconds = _timed(lambda: pipeline.critique(reg.critic(), image, results, calibration, triplets))
    stage_done(run, "critic", owner=owner, output=codec.dump(verdict), raw_output=verdict.raw_output, duration=seconds)


def calibrate(run_id: int, *, owner: str, lease_seconds: float) -> None:
    run = stage_begin(run_id, "calibrate", owner=owner, lease_seconds=lease_seconds)
    if run is not None:
        _calibrate(run, owner)


def critic(run_id: int, *, owner: str, lease_seconds: float) -> None:
    run = stage_begin(run_id, "critic", owner=owner, lease_seconds=lease_seconds)
    if run is not None:
        _critique(run, owner, _require(run.outputs, "calibrate").output)


def calibrate_and_critique(run_id: int, *, owner: str, lease_seconds: float) -> None:
    """Calibration, then the critic, in one task (when both run on the same queue): one claim
    and one read for the two stages, and one message fewer per image. A calibration that is
    already done is kept; where a stage is not simply claimable (its row is missing, or
    another task holds it), each stage goes through :func:`stage_begin` on its own."""
    now = timezone.now()
    if not _claim(run_id, ("calibrate", "critic"), owner=owner, lease_seconds=lease_seconds, now=now):
        calibrate(run_id, owner=owner, lease_seconds=lease_seconds)
        critic(run_id, owner=owner, lease_seconds=lease_seconds)
        return
    run = _load(run_id, now=now)
    calibrated, criticised = run.outputs.get("calibrate"), run.outputs.get("critic")
    if calibrated is None or criticised is None or criticised.owner != owner:
        calibrate(run_id, owner=owner, lease_seconds=lease_seconds)
        critic(run_id, owner=owner, lease_seconds=lease_seconds)
        return
    if calibrated.status == StageStatus.DONE:
        output = calibrated.output
    elif calibrated.owner == owner:
        output = _calibrate(run, owner)
    else:  # another task calibrates: leave the critic to its chain
        StageResult.objects.filter(pk=criticised.pk, owner=owner).update(status=StageStatus.QUEUED, lease_until=None)
        raise RunningElsewhere("calibrate", calibrated.owner, (calibrated.lease_until - now).total_seconds())
    _critique(run, owner, output)


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
        criticised = StageResult.objects.filter(run=OuterRef("pk"), stage="critic", status=StageStatus.DONE)
        run = PipelineRun.objects.select_for_update().annotate(criticised=Exists(criticised)).get(pk=run_id)
        if run.status in (RunStatus.DONE, RunStatus.FAILED):
            return None
        if not run.criticised:
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
    rows = StageResult.objects.filter(run__in=claim.run_ids, run__gpu_claim=claim.token).select_related("run__image__dataset")
    runs: dict[int, PipelineRun] = {}
    for row in rows:  # one read: the runs, their images and their stage rows
        run = runs.setdefault(row.run_id, row.run)
        run.__dict__.setdefault("outputs", {})[row.stage] = row
    runs = [runs[pk] for pk in claim.run_ids if pk in runs]
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
        pending = {pk for pk in PipelineRun.objects.filter(
            pk__in=claim.run_ids, gpu_claim=claim.token, status=RunStatus.RUNNING).values_list("pk", flat=True)}
        for run in [r for r in runs if r.pk in pending]:
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
    """One batch: every image read once, one call per model, one bulk save (``ml.save``)."""
    reg = get_registry()
    ids = [run.pk for run in runs]
    outputs = {run.pk: run.outputs for run in runs}
    images, _ = _stage("ground", lambda: [image_input(run.image) for run in runs])  # a missing file fails its run
    triplets = [codec.load_triplets(outputs[run.pk]["calibrate"].output["triplets"]) for run in runs]
    now = timezone.now()
    StageResult.objects.bulk_create(  # the page shows the GPU stages running (one upsert for the batch)
        [StageResult(run_id=pk, stage=s, status=StageStatus.RUNNING, attempt=1, updated_at=now) for pk in ids for s in GPU_STAGES],
        update_conflicts=True, unique_fields=["run", "stage"], update_fields=["status", "reason", "updated_at"],
    )
    boxes, t_ground = _stage("ground", lambda: pipeline.ground(reg.grounder(), images, triplets))
    masks, t_segment = _stage("segment", lambda: pipeline.segment(reg.segmenter(), images, boxes))
    with_des = reg.spec("des") is not None
    vectors, t_des = _stage("des", lambda: pipeline.encode_des(reg.des(), images) if with_des else None)
    n = len(runs)
    timings = {"ground": t_ground / n, "segment": t_segment / n, "des": t_des / n}
    items = [
        SaveItem(run_id=run.pk, outputs=outputs[run.pk], grounded=pipeline.assemble(triplets[i], boxes[i], masks[i]),
                 des=None if vectors is None else vectors[i])
        for i, run in enumerate(runs)
    ]
    save = functools.partial(save_preannotations, items=items, claim=token, timings=timings, with_des=with_des)
    _stage("save", save)
