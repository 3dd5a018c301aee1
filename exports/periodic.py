"""Periodic tasks, run by Celery beat (``CELERY_BEAT_SCHEDULE`` in the settings).

Kept apart from ``exports.tasks``: ``exports.services`` sends those tasks, and this
task calls ``exports.services``.
"""

from __future__ import annotations

from celery import shared_task

from exports import services


@shared_task(acks_late=False, soft_time_limit=120, time_limit=150, ignore_result=True)
def fail_stale_exports() -> dict:
    """Mark running exports whose worker died as failed (``services.export_fail_stale``)."""
    return {"failed": services.export_fail_stale()}
