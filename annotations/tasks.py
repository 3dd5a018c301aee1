"""Celery tasks of the annotations app (routed to the ``io`` queue by settings)."""

from __future__ import annotations

import uuid

from celery import shared_task
from django.db import transaction

from annotations import exports
from annotations.models import ExportSnapshot


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def export_snapshot(snapshot_id: int) -> None:
    """Write one export snapshot. Delivered again after a worker dies, it restarts the export cleanly."""
    exports.export_run(snapshot_id=snapshot_id)


def export_enqueue(snapshot: ExportSnapshot) -> ExportSnapshot:
    """Queue the snapshot's task once the current transaction commits (eager without a broker)."""
    task_id = str(uuid.uuid4())
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(task_id=task_id)
    snapshot.task_id = task_id
    transaction.on_commit(lambda: export_snapshot.apply_async(args=[snapshot.pk], task_id=task_id))
    return snapshot
