"""Celery tasks of the exports app (routed to the ``io`` queue by settings); queued by ``exports.services``."""

from __future__ import annotations

from celery import shared_task

from exports import runs


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def export_snapshot(snapshot_id: int) -> None:
    """Write one export snapshot. Delivered again after a worker dies, it restarts the export cleanly."""
    runs.export_run(snapshot_id=snapshot_id)
