"""Periodic tasks, run by Celery beat (``CELERY_BEAT_SCHEDULE`` in the settings).

Kept apart from ``ml.tasks``: ``ml.services`` sends the pipeline's tasks, and these
tasks call ``ml.services``.
"""

from __future__ import annotations

import logging

from celery import shared_task

from ml import services
from ml.stages.types import BackendNotConfigured

logger = logging.getLogger(__name__)


@shared_task(acks_late=False, soft_time_limit=120, time_limit=150, ignore_result=True)
def sweep_stale_runs() -> dict:
    """Send stuck pre-annotation runs again (``services.sweep_stale_runs``)."""
    try:
        result = services.sweep_stale_runs()
    except BackendNotConfigured as exc:
        logger.info("stale-run sweep skipped: %s", str(exc).splitlines()[0])
        return {"resent": 0, "gave_up": 0, "skipped": "not configured"}
    return {"resent": result.resent, "gave_up": result.gave_up}
