"""Celery task of QA generation: thin, idempotent, retried like the pipeline's stages.

``acks_late`` with ``reject_on_worker_lost`` (a killed worker's task is delivered again);
transient errors (timeouts, 429/5xx, a lost database connection, the soft time limit) are
retried with exponential backoff up to ``max_retries``; anything else is recorded as the
generation's failure and ends the task quietly. A generation that is done is never redone
(:func:`qa.generation.qa_generation_begin`).
"""

from __future__ import annotations

import logging
import random
import time

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from django.conf import settings
from django.db import InterfaceError, OperationalError

from ml.stages.types import BackendNotConfigured, StageError
from qa.generation import qa_generation_failed, qa_generation_run

logger = logging.getLogger(__name__)

# The pipeline's io-task settings (EMOVERSE_ML, docs/ml-backends.md), read the same way as ml.tasks.
_ML = settings.EMOVERSE_ML if isinstance(settings.EMOVERSE_ML, dict) else {}
SOFT_TIME_LIMIT = int(_ML.get("io_soft_time_limit", 300))
MAX_RETRIES = int(_ML.get("max_retries", 6))
BACKOFF_BASE_S = float(_ML.get("retry_backoff_s", 5.0))
BACKOFF_MAX_S = 600.0
EAGER_MAX_PAUSE_S = 0.5
TRANSIENT_EXCEPTIONS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
TASK = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": MAX_RETRIES,
    "soft_time_limit": SOFT_TIME_LIMIT,
    "time_limit": SOFT_TIME_LIMIT + 30,
}


def backoff(retries: int) -> float:
    """Exponential backoff with full jitter, capped (as the pipeline's tasks)."""
    return random.uniform(0.5, 1.0) * min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**retries)


@shared_task(**TASK)
def generate_qa(self: Task, generation_id: int) -> None:
    attempt = self.request.retries or 0
    while True:
        try:
            qa_generation_run(generation_id)
            return
        except BackendNotConfigured as exc:
            qa_generation_failed(generation_id, StageError(f"not configured: {exc}"))
            return
        except SoftTimeLimitExceeded:
            error = StageError("QA generation: soft time limit exceeded", transient=True)
        except StageError as exc:
            error = exc
        except Exception as exc:
            error = StageError(f"{type(exc).__name__}: {exc}", transient=isinstance(exc, TRANSIENT_EXCEPTIONS))
            if not error.transient:
                logger.exception("QA generation %s failed unexpectedly", generation_id)
        if not error.transient or attempt >= self.max_retries:
            logger.warning("QA generation %s failed: %s", generation_id, error.reason)
            qa_generation_failed(generation_id, error)
            return
        qa_generation_failed(generation_id, error, retrying=True)
        countdown = backoff(attempt)
        if not (self.request.is_eager or self.request.called_directly):
            raise self.retry(exc=error, countdown=countdown)
        time.sleep(min(countdown, EAGER_MAX_PAUSE_S))
        attempt += 1
