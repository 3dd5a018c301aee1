"""Celery tasks of the pre-annotation pipeline: thin wrappers around ``ml.runs``.

One canvas per image (``preannotation_canvas``)::

    group(annotate(run, name) for each annotator)   # io queue (gpu for a local model), in parallel
    | embed(run)                                    # gpu queue (the phrase embedder's); left out when it is off
    | calibrate(run)                                # io queue (gpu when a classifier is configured)
    | critic(run)                                   # io queue (gpu for a local model)
      (one calibrate_critic(run) task where both go to the same queue)
    | gpu_ground_segment(run)                       # gpu queue, batched with other ready runs

Tasks take IDs and are idempotent (``PipelineRun`` is unique per image and
pipeline version; a stage that is done is not redone), ``acks_late`` with
``reject_on_worker_lost`` so a killed worker's task is delivered again, and
retry transient errors (timeouts, 429/5xx, a lost database connection, a soft
time limit) with exponential backoff. Every other exception is recorded as the
stage's failure (type and message; the traceback goes to the log) and ends the
chain quietly: the next tasks see a failed run and do nothing, and the image
waits for a retry. A GPU batch is claimed under the task's message id, so a
retried or redelivered task takes back its own batch; a run in another live
batch is retried when that claim runs out. Every other stage is claimed the same way
(``runs.stage_begin``: the message id as owner, the hard time limit as lease), so a
duplicate of a running stage stops instead of calling the model again. A run whose
chain broke (a hard time limit acknowledges the message; a broker can lose one) is
sent again by the periodic sweep once no worker holds it and no message of it is in
the broker (``services.stuck_run_ids``): a run waiting its turn is never sent again.
The annotators' group is a chord: an annotate task that finds the chord's next step
claimed by a delivery that may have died waits that claim out before it reports
(:func:`chord_dispatch_wait`), so a worker killed while it sent the step loses nothing.

People's answers and imports have their new phrases embedded by
:func:`embed_annotations` and :func:`embed_import`, queued on commit by the receivers of
``annotations.signals`` (connected in ``MlConfig.ready``) to the embedder's queue; with
Celery eager (no broker) they run in place. They never fail what triggered them: without
an embedder the result says why, and triplets stay paired by words.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable

from celery import Task, chain, group, shared_task
from celery.exceptions import Ignore, SoftTimeLimitExceeded
from django.conf import settings
from kombu.exceptions import OperationalError as BrokerError

from annotations.models import Image
from core.masks import mask_area, normalize_rle
from ml import embeddings, runs
from ml.config import get_registry
from ml.embed_requests import RecentRequests
from ml.inputs import image_input
from ml.stages.types import BackendNotConfigured, Box, StageError

logger = logging.getLogger(__name__)

_ML = settings.EMOVERSE_ML if isinstance(settings.EMOVERSE_ML, dict) else {}
IO_SOFT_TIME_LIMIT = int(_ML.get("io_soft_time_limit", 300))
GPU_SOFT_TIME_LIMIT = int(_ML.get("gpu_soft_time_limit", 900))
MAX_RETRIES = int(_ML.get("max_retries", 6))
BACKOFF_BASE_S = float(_ML.get("retry_backoff_s", 5.0))
BACKOFF_MAX_S = 600.0
EAGER_MAX_PAUSE_S = 0.5

COMMON = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": MAX_RETRIES,
}
IO_HARD_TIME_LIMIT = IO_SOFT_TIME_LIMIT + 30
GPU_HARD_TIME_LIMIT = GPU_SOFT_TIME_LIMIT + 60
IO_TASK = {**COMMON, "soft_time_limit": IO_SOFT_TIME_LIMIT, "time_limit": IO_HARD_TIME_LIMIT}
GPU_TASK = {**COMMON, "soft_time_limit": GPU_SOFT_TIME_LIMIT, "time_limit": GPU_HARD_TIME_LIMIT}


def backoff(retries: int) -> float:
    """Exponential backoff with full jitter: up to base * 2^retries seconds, capped."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**retries)


def _worker_side(task: Task) -> bool:
    """Running from a broker message (not eagerly, not called directly)."""
    return not (task.request.is_eager or task.request.called_directly)


def _execute(task: Task, run_id: int, stage: str, work: Callable[[], None]) -> None:
    """Run ``work``; retry transient failures, record every other failure as the stage's.

    On a worker, a transient failure is retried through the broker with backoff. In
    eager mode (the embedded demo, no broker) it is retried in place after a short pause.
    """
    attempt = task.request.retries or 0
    while True:
        try:
            work()
            return
        except runs.ClaimedElsewhere as exc:
            _wait_for_other_batch(task, run_id, exc, attempt)
            return
        except runs.RunningElsewhere as exc:
            # A duplicate of a stage a live worker runs (a re-sent chain): its holder finishes
            # the stage and sends the rest of the run; this copy of the chain ends here.
            logger.info("run %s: %s; this duplicate stops", run_id, exc)
            if _worker_side(task):
                raise Ignore() from exc
            return
        except BackendNotConfigured as exc:
            logger.error("run %s stage %s: backend not configured: %s", run_id, stage, exc)
            runs.stage_failed(run_id, stage, StageError(f"not configured: {exc}"))
            return
        except SoftTimeLimitExceeded:
            error = StageError(f"{stage}: soft time limit exceeded", transient=True)
        except StageError as exc:
            error = exc
        except Exception as exc:
            error = runs.as_stage_error(exc)
            if not error.transient:
                logger.exception("run %s stage %s failed unexpectedly", run_id, stage)
        if not error.transient:
            logger.warning("run %s stage %s failed: %s", run_id, stage, error.reason)
            runs.stage_failed(run_id, stage, error)
            return
        if attempt >= task.max_retries:
            runs.stage_failed(run_id, stage, error, gave_up=True)
            return
        _note_retry(run_id, stage, error)
        countdown = backoff(attempt)
        if _worker_side(task):
            raise task.retry(exc=error, countdown=countdown)
        time.sleep(min(countdown, EAGER_MAX_PAUSE_S))
        attempt += 1


def _note_retry(run_id: int, stage: str, error: StageError) -> None:
    """Show the coming retry on the page; a database that is down must not stop the retry."""
    try:
        runs.stage_retrying(run_id, stage, error.reason)
    except Exception:
        logger.exception("run %s stage %s: could not record the retry (%s)", run_id, stage, error.reason)


def _wait_for_other_batch(task: Task, run_id: int, exc: runs.ClaimedElsewhere, attempt: int) -> None:
    """Another GPU task holds this run: look again when its claim runs out.

    The holder saves the run, or its redelivered message takes the batch back; if
    neither happens, this retry claims it. Eagerly there is no broker to wait on,
    and after ``max_retries`` the run is left to its holder (``retry_failed`` sends
    it again once it is stale).
    """
    if not _worker_side(task) or attempt >= task.max_retries:
        logger.info("run %s: %s; left to that batch", run_id, exc.reason)
        return
    logger.info("run %s: %s; looking again then", run_id, exc.reason)
    raise task.retry(exc=exc, countdown=exc.seconds + 1.0)


def _claim(task: Task) -> dict:
    """Who claims the stage and for how long: the message id (the same for its retries and
    redeliveries) and the task's hard time limit, past which no worker can still hold it."""
    return {"owner": task.request.id or f"direct-{uuid.uuid4().hex}", "lease_seconds": task.time_limit or IO_HARD_TIME_LIMIT}


def chord_dispatch_wait(backend, request) -> float | None:
    """Seconds until another delivery's claim to send the chord's next step runs out, when
    one holds it; ``None`` when there is none (no chord, a backend without such claims, the
    step was sent, or the header is not complete yet).

    A chord header task that returns reports to the result backend, and the one completing
    the header claims (Redis: a key with a random token, a few seconds) and sends the next
    step. A worker killed between that claim and the send leaves the claim behind: its
    redelivered task reports within those seconds, finds the claim taken and sends nothing,
    and the run never goes on (no other header task reports again). A header task that finds
    such a claim before it reports waits it out (:func:`annotate` retries after it), so its
    report claims the chord again and sends the step.
    """
    group_id = getattr(request, "group", None)
    key_for = getattr(backend, "get_key_for_group", None)
    client = getattr(backend, "client", None)
    if not group_id or not getattr(request, "chord", None) or key_for is None or client is None:
        return None
    with client.pipeline() as pipe:
        holder, ttl_ms = pipe.get(key_for(group_id, ".c")).pttl(key_for(group_id, ".c")).execute()
    if holder is None or holder == b"done":
        return None
    return max(ttl_ms, 0) / 1000.0


@shared_task(**IO_TASK)
def annotate(self: Task, run_id: int, annotator: str) -> None:
    _execute(self, run_id, f"annotate:{annotator}", lambda: runs.annotate(run_id, annotator, **_claim(self)))
    if _worker_side(self) and (self.request.retries or 0) < self.max_retries:
        wait = chord_dispatch_wait(self.backend, self.request)
        if wait is not None:
            logger.info(
                "run %s: the next step's dispatch is claimed by a task that may have died; reporting after %.1fs",
                run_id,
                wait,
            )
            raise self.retry(countdown=wait + 0.5)


@shared_task(**IO_TASK)
def embed(self: Task, run_id: int) -> None:
    """The pipeline's embed step (sent to the embedder's queue, ``gpu`` by default)."""
    _execute(self, run_id, "embed", lambda: runs.embed(run_id, **_claim(self)))


@shared_task(**IO_TASK)
def calibrate(self: Task, run_id: int) -> None:
    _execute(self, run_id, "calibrate", lambda: runs.calibrate(run_id, **_claim(self)))


@shared_task(**IO_TASK)
def critic(self: Task, run_id: int) -> None:
    _execute(self, run_id, "critic", lambda: runs.critic(run_id, **_claim(self)))


@shared_task(**IO_TASK)
def calibrate_critic(self: Task, run_id: int) -> None:
    """Calibration and the critic in one task, when both go to the same queue."""
    _execute(self, run_id, "critic", lambda: runs.calibrate_and_critique(run_id, **_claim(self)))


@shared_task(**GPU_TASK)
def gpu_ground_segment(self: Task, run_id: int) -> None:
    """Ground, segment and encode this run together with other runs ready for the GPU."""
    reg = get_registry()
    # The message id: the same for every retry and redelivery of this task.
    token = self.request.id or uuid.uuid4().hex

    def work():
        claim = runs.gpu_claim(run_id, token=token, batch_size=reg.gpu_batch_size, lease_seconds=GPU_HARD_TIME_LIMIT)
        if claim is None:
            return
        try:
            runs.gpu_process(claim)
        except Exception:
            _release(claim.token)
            raise

    _execute(self, run_id, "ground", work)


def _release(token: str) -> None:
    try:
        runs.gpu_release(token)
    except Exception:
        logger.exception("could not release GPU claim %s; it expires after %ss", token, GPU_HARD_TIME_LIMIT)


@shared_task(bind=True, acks_late=False, soft_time_limit=60, time_limit=90, max_retries=0)
def gpu_refine_mask(self: Task, image_id: int, box: list[float] | None, points: list, labels: list) -> dict:
    """Click-to-refine (``review.refine`` sends it to the ``gpu`` queue and waits).

    The prompt was validated by the web process; the segmenter reuses the image's
    cached embedding, so repeated clicks on the same image cost one decoder pass.
    Returns ``{"mask": RLE | None, "score": float | None}``: ``None`` when SAM's mask
    is empty. Not retried and not acknowledged late: a reviewer is waiting for it, and
    a redelivery after a worker died would answer nobody.
    """
    image = Image.objects.get(pk=image_id)
    segmenter = get_registry().segmenter()  # BackendNotConfigured names what to set
    mask = segmenter.refine(
        image_input(image),
        None if box is None else Box(*map(float, box)),
        [(float(x), float(y)) for x, y in points],
        [int(label) for label in labels],
    )
    rle = normalize_rle(mask.rle)
    return {"mask": None if mask_area(rle) == 0 else rle, "score": float(mask.score)}


def preannotation_canvas(
    run_id: int,
    annotators: list[tuple[str, str]],
    *,
    calibrate_queue: str = "io",
    critic_queue: str = "io",
    embed_queue: str | None = None,
):
    """The chain of one image (see the module docstring).

    ``annotators`` are ``(name, queue)`` pairs: API annotators go to ``io``, local
    models (a Qwen2.5-VL folder) to ``gpu``; calibration goes to ``gpu`` when an
    emotion classifier is configured. ``embed_queue``: the phrase embedder's queue;
    ``None`` leaves the embed step out (the embedder is turned off).
    """
    embedding = [embed.si(run_id).set(queue=embed_queue)] if embed_queue else []
    if calibrate_queue == critic_queue:
        judged = [calibrate_critic.si(run_id).set(queue=critic_queue)]
    else:
        judged = [calibrate.si(run_id).set(queue=calibrate_queue), critic.si(run_id).set(queue=critic_queue)]
    return chain(
        group(annotate.si(run_id, name).set(queue=queue) for name, queue in annotators),
        *embedding,
        *judged,
        gpu_ground_segment.si(run_id),
    )


# --- phrase embeddings of people's answers and imports ---------------------------------------

EMBED_TASK = {**COMMON, "soft_time_limit": GPU_SOFT_TIME_LIMIT * 4, "time_limit": GPU_SOFT_TIME_LIMIT * 4 + 60}


def _embedding(task: Task, work: Callable[[], embeddings.EmbedResult]) -> dict:
    """Run ``work``; a database that went away is retried with backoff on a worker. Any other
    failure is logged and reported in the result: the phrases stay without an embedding
    (``manage.py embed_phrases`` fills them in later) and triplets are paired by words."""
    try:
        return work().as_dict()
    except runs.TRANSIENT_EXCEPTIONS as exc:
        if _worker_side(task) and (task.request.retries or 0) < task.max_retries:
            raise task.retry(exc=exc, countdown=backoff(task.request.retries or 0)) from exc
        logger.exception("phrases not embedded (gave up after retries)")
        return {"error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:
        logger.exception("phrases not embedded")
        return {"error": f"{type(exc).__name__}: {exc}"}


@shared_task(**EMBED_TASK)
def embed_annotations(self: Task, annotation_ids: list[int]) -> dict:
    """Embed the phrases of a person's new answer (review or adjudication)."""
    return _embedding(self, lambda: embeddings.embed_annotation_phrases(annotation_ids))


@shared_task(**EMBED_TASK)
def embed_import(self: Task, import_run_id: int) -> dict:
    """Embed the phrases of an import's annotations, then score its images' agreement again."""
    return _embedding(self, lambda: embeddings.embed_import_phrases(import_run_id))


def embed_queue() -> str | None:
    """The phrase embedder's Celery queue; ``None`` when it is turned off."""
    spec = get_registry().spec("embedder")
    return None if spec is None else spec.task_queue()


# The phrases this process asked to have embedded lately (ml.embed_requests).
EMBED_REQUESTS = RecentRequests(ttl=settings.EMOVERSE_EMBED_REQUEST_TTL_S)


def _send_embedding(task: Task, args: list) -> bool:
    """Queue ``task`` on the embedder's queue; whether it was handed to the broker."""
    try:
        queue = embed_queue()
    except BackendNotConfigured as exc:
        logger.warning("phrases not embedded: %s", exc)
        return False
    if queue is None:
        logger.info("phrases not embedded: %s", embeddings.TURNED_OFF)
        return False
    try:
        # Nobody reads the result: with ignore_result the web process neither subscribes to it
        # (the Redis result backend's on_task_call) nor has the worker store it; argsrepr spares
        # Celery's saferepr of the ids.
        task.apply_async(args=args, queue=queue, ignore_result=True, argsrepr=repr(args), kwargsrepr="{}")
    except (BrokerError, ConnectionError) as exc:
        logger.error("could not send %s to the broker (%s); `manage.py embed_phrases` embeds the phrases later",
                     task.name, exc)
        return False
    return True


def on_phrases_added(sender, *, annotation_ids: list[int], phrases: frozenset[str] | None = None, **kwargs) -> None:
    """Receiver of ``annotations.signals.phrases_added`` (sent on commit). With ``phrases`` (the
    answer's normalised phrases without a stored embedding), nothing is sent when this process
    asked for all of them in the last ``EMOVERSE_EMBED_REQUEST_TTL_S`` seconds."""
    if phrases is not None and EMBED_REQUESTS.all_recent(phrases):
        return
    if _send_embedding(embed_annotations, [list(annotation_ids)]) and phrases:
        EMBED_REQUESTS.sent(phrases)


def on_import_finished(sender, *, import_run_id: int, **kwargs) -> None:
    """Receiver of ``annotations.signals.import_finished`` (sent on commit)."""
    _send_embedding(embed_import, [import_run_id])
