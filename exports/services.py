"""Writes of the exports app: request a snapshot (queued when the transaction commits), restart it, fail stale ones.

:func:`export_request` is what pages and APIs call; the ``export_dataset`` command
calls :func:`export_create` and runs the snapshot itself
(:func:`exports.runs.export_run`). :func:`export_fail_stale` is run by Celery beat
(``exports.periodic``), never by a page.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotations.errors import NotAllowed
from annotations.models import Dataset
from exports.filters import ExportFilters, InvalidExportRequest, parse_options
from exports.models import ExportFormat, ExportSnapshot, ExportStatus
from exports.selectors import interrupted_note, partial_dir, snapshot_is_stale
from exports.tasks import export_snapshot
from exports.writers import writer_class
from exports.writers.images import url_mode_problem


@transaction.atomic
def export_create(
    *, dataset: Dataset, export_format: str, filters: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None, created_by: AbstractBaseUser | None = None, run_by: str = "",
) -> ExportSnapshot:
    """A new pending snapshot, numbered per dataset. Raises :class:`InvalidExportRequest`.

    ``run_by`` names who ran it (the command passes the OS account when no user is
    given); it defaults to ``created_by``'s username. Nothing is queued: pages and
    APIs call :func:`export_request`; the command runs :func:`exports.runs.export_run` itself.
    """
    if export_format not in ExportFormat.values:
        raise InvalidExportRequest("format", f"unknown format {export_format!r}; expected one of {', '.join(ExportFormat.values)}")
    parsed = ExportFilters.parse(filters or {}, dataset.get_taxonomy().labels)
    cleaned = parse_options(writer_class(export_format).OPTIONS, options or {})
    if cleaned["images"] == "url" and (problem := url_mode_problem()):
        raise InvalidExportRequest("images", problem)
    run_by = run_by or (created_by.get_username() if created_by is not None else "")
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()  # numbers versions one at a time
    version = (ExportSnapshot.objects.filter(dataset=dataset).aggregate(v=Max("version"))["v"] or 0) + 1
    return ExportSnapshot.objects.create(
        dataset=dataset, version=version, format=export_format, filters=parsed.as_dict(), options=cleaned,
        created_by=created_by, run_by=run_by[:150], path=f"{dataset.slug}/v{version:04d}-{export_format}",
    )


@transaction.atomic
def export_request(
    *, dataset: Dataset, export_format: str, filters: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None, created_by: AbstractBaseUser | None = None,
) -> ExportSnapshot:
    """:func:`export_create`, and its task queued once the transaction commits. Raises :class:`InvalidExportRequest`."""
    snapshot = export_create(dataset=dataset, export_format=export_format, filters=filters, options=options,
                             created_by=created_by)
    return _enqueue(snapshot)


@transaction.atomic
def export_restart(*, snapshot: ExportSnapshot) -> ExportSnapshot:
    """Put a failed or interrupted snapshot back to pending and queue its task again (on commit).

    A ``running`` snapshot may be restarted only when it is stale
    (:func:`exports.selectors.snapshot_is_stale`, read here): no sweep has to have
    marked it failed first.
    """
    if snapshot.status == ExportStatus.COMPLETE:
        raise NotAllowed("This snapshot is complete; start a new export instead.")
    if snapshot.status == ExportStatus.RUNNING and not snapshot_is_stale(snapshot):
        raise NotAllowed("This export is still running.")
    ExportSnapshot.objects.filter(pk=snapshot.pk, status=snapshot.status, started_at=snapshot.started_at).update(
        status=ExportStatus.PENDING, done=0, error="", finished_at=None, heartbeat_at=None,
    )
    snapshot.refresh_from_db()
    return _enqueue(snapshot)


def _enqueue(snapshot: ExportSnapshot) -> ExportSnapshot:
    """Queue the snapshot's task once the current transaction commits (eager without a broker)."""
    task_id = str(uuid.uuid4())
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(task_id=task_id)
    snapshot.task_id = task_id
    transaction.on_commit(lambda: export_snapshot.apply_async(args=[snapshot.pk], task_id=task_id))
    return snapshot


def export_fail_stale(*, now: datetime | None = None) -> int:
    """Mark stale ``running`` snapshots as failed (interrupted) and remove their partial folders; returns how many.

    Run periodically by Celery beat (``exports.periodic.fail_stale_exports``).
    """
    now = now or timezone.now()
    marked = 0
    for snapshot in ExportSnapshot.objects.filter(status=ExportStatus.RUNNING).select_related("dataset"):
        if not snapshot_is_stale(snapshot, now=now):
            continue
        marked += ExportSnapshot.objects.filter(pk=snapshot.pk, status=ExportStatus.RUNNING, started_at=snapshot.started_at).update(
            status=ExportStatus.FAILED, error=interrupted_note(snapshot), finished_at=now,
        )
        shutil.rmtree(partial_dir(snapshot), ignore_errors=True)
    return marked

