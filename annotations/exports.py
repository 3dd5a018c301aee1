"""Dataset exports: versioned snapshots written by a streaming task.

:func:`export_create` records a snapshot (``pending``); :func:`export_run` (the
Celery task's body) writes it. The images matching the filters are read with
``iterator()`` a chunk at a time; each chunk's final annotations come with
their triplets and elements in four queries (:func:`final_annotations`), go
to the format's writer, and the progress (``done``/``total``) is saved with a
heartbeat (``heartbeat_at``, the database's clock). Memory does not grow with
the dataset.

The final annotation is the adjudicated one, else the approved human review or
curated import; the pipeline's auto-accepted model answer only with the
``include_auto_accepted`` filter (machine-accepted, counted apart in the
manifest).

Snapshots are crash-safe. An attempt writes into its own hidden folder
(``EXPORT_ROOT/<dataset>/.<name>.<attempt>.partial``), writes ``manifest.json``
last, renames the folder into place and only then marks the snapshot
``complete`` -- all under the snapshot's row lock and only if the attempt still
owns the snapshot. The attempt's identity is its ``started_at``: every progress
save is conditional on it, so when a fresh task run takes over (a killed
worker's task delivered again), the old attempt stops at its next chunk. A
``running`` snapshot whose heartbeat is older than
``EMOVERSE_EXPORT_STALE_SECONDS`` (default 600) is shown and marked as failed
(interrupted) by :func:`export_fail_stale`, and can be restarted. The heartbeat
lives in the database, so the web process judges a worker on another machine
correctly; the files themselves must be on a folder (``EXPORT_ROOT``) that
workers and web share, since downloads are served from it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Max, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from annotations.errors import NotAllowed
from annotations.export_filters import (
    ExportFilters,
    InvalidExportRequest,
    parse_options,
)
from annotations.export_manifest import MANIFEST, build_manifest
from annotations.exporters import ExportItem, WriterResult, writer_class
from annotations.exporters.images import IMAGE_MODES, ImagePlacer, export_file_name, url_mode_problem
from annotations.models import (
    Annotation,
    AnnotationKind,
    Dataset,
    Element,
    ExportFormat,
    ExportSnapshot,
    ExportStatus,
    Image,
    Triplet,
)
from annotations.selectors import final_annotation_ids

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
# Progress (with the heartbeat) is saved after every chunk; within a slow chunk
# (copying images from object storage) a heartbeat alone at most this often.
KEEPALIVE_SECONDS = 30.0
IMAGE_FIELDS = ("id", "dataset_id", "file", "original_name", "width", "height", "source", "sha256", "label", "created_at")
# Large columns a writer never reads.
ANNOTATION_DEFERRED = ("raw_output", "critic", "ces_raw_distribution")

__all__ = [
    "ExportFilters",
    "InvalidExportRequest",
    "export_create",
    "export_fail_stale",
    "export_file_name",
    "export_restart",
    "export_run",
    "final_annotations",
    "snapshot_is_stale",
]


class Superseded(Exception):
    """A newer attempt owns the snapshot (or it was marked failed); this attempt stops."""


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "EMOVERSE_EXPORT_STALE_SECONDS", 600))


def export_root() -> Path:
    return Path(settings.EXPORT_ROOT)


# --- reads ---------------------------------------------------------------------------


def export_images(*, dataset: Dataset, filters: ExportFilters) -> QuerySet[Image]:
    """The dataset's images that the filters select in SQL, oldest first (the final annotation is checked later)."""
    images = Image.objects.filter(dataset=dataset, status__in=filters.status)
    if filters.source:
        images = images.filter(source__in=filters.source)
    if filters.label:
        images = images.filter(label__in=filters.label)
    if filters.min_agreement is not None:
        images = images.filter(agreement__gte=filters.min_agreement)
    if filters.date_field == "image":
        if filters.since is not None:
            images = images.filter(created_at__gte=filters.since)
        if filters.until is not None:
            images = images.filter(created_at__lt=filters.until)
    return images.only(*IMAGE_FIELDS).order_by("id")


def final_annotations(image_ids: Iterable[int], *, include_auto_accepted: bool = False) -> dict[int, Annotation]:
    """Each image's final annotation, with triplets and elements (4 queries for any number of images).

    The rule of :func:`annotations.selectors.final_annotation_ids`; images without
    a final annotation (model-only; auto-accepted ones too unless
    ``include_auto_accepted``) are absent.
    """
    return _final_annotations(image_ids, include_auto_accepted=include_auto_accepted)[0]


def _final_annotations(image_ids: Iterable[int], *, include_auto_accepted: bool) -> tuple[dict[int, Annotation], set[int]]:
    """:func:`final_annotations` and the ids of the images left out because their only final is auto-accepted."""
    candidates = final_annotation_ids(image_ids, include_auto_accepted=True).values()
    annotations = list(Annotation.objects.filter(pk__in=list(candidates)).defer(*ANNOTATION_DEFERRED))
    withheld: set[int] = set()
    if not include_auto_accepted:
        withheld = {a.image_id for a in annotations if a.kind == AnnotationKind.MODEL}
        annotations = [a for a in annotations if a.kind != AnnotationKind.MODEL]
    chosen = [a.pk for a in annotations]
    triplets = list(Triplet.objects.filter(annotation_id__in=chosen).order_by("annotation_id", "index"))
    elements = Element.objects.filter(triplet__annotation_id__in=chosen).order_by("triplet_id", "role")
    _attach(triplets, "elements", Element, elements, "triplet_id")
    _attach(annotations, "triplets", Triplet, triplets, "annotation_id")
    return {annotation.image_id: annotation for annotation in annotations}, withheld


def _attach(parents: list, name: str, model: type, children: Iterable, parent_field: str) -> None:
    """Fill ``parent.<name>.all()`` from ``children`` like ``prefetch_related`` does.

    ``annotations_with_elements`` gives the same result, but Django's prefetch
    builds a filtered queryset per parent object, which made it the larger part
    of an export's time (three queries and one grouping pass here instead).
    """
    groups: dict[int, list] = defaultdict(list)
    for child in children:
        groups[getattr(child, parent_field)].append(child)
    for parent in parents:
        cached = QuerySet(model=model)
        cached._result_cache = groups.get(parent.pk, [])
        cached._prefetch_done = True
        parent._prefetched_objects_cache = {**getattr(parent, "_prefetched_objects_cache", {}), name: cached}


def last_heartbeat(snapshot: ExportSnapshot) -> datetime | None:
    """When the running attempt last reported (``heartbeat_at``, else its start); None if never started."""
    return snapshot.heartbeat_at or snapshot.started_at


def snapshot_is_stale(snapshot: ExportSnapshot, *, now: datetime | None = None) -> bool:
    """A ``running`` snapshot without progress for longer than the stale timeout (its worker died)."""
    if snapshot.status != ExportStatus.RUNNING:
        return False
    last = last_heartbeat(snapshot)
    return last is not None and (now or timezone.now()) - last > stale_after()


def final_dir(snapshot: ExportSnapshot) -> Path:
    return export_root() / snapshot.path


def partial_dir(snapshot: ExportSnapshot, token: datetime | None = None) -> Path:
    """The folder of the attempt that started at ``token`` (default: the snapshot's current attempt)."""
    token = token or snapshot.started_at
    final = final_dir(snapshot)
    return final.parent / f".{final.name}.{token.strftime('%Y%m%dT%H%M%S%f')}.partial"


# --- writes ----------------------------------------------------------------------------


@transaction.atomic
def export_create(
    *, dataset: Dataset, export_format: str, filters: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None, created_by: AbstractBaseUser | None = None, run_by: str = "",
) -> ExportSnapshot:
    """A new pending snapshot, numbered per dataset. Raises :class:`InvalidExportRequest`.

    ``run_by`` names who ran it (the command passes the OS account when no user is
    given); it defaults to ``created_by``'s username. The caller queues the task
    (``annotations.tasks.export_enqueue``) or calls :func:`export_run` itself.
    """
    if export_format not in ExportFormat.values:
        raise InvalidExportRequest("format", f"unknown format {export_format!r}; expected one of {', '.join(ExportFormat.values)}")
    parsed = ExportFilters.parse(filters or {})
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


def export_restart(*, snapshot: ExportSnapshot) -> ExportSnapshot:
    """Put a failed or interrupted snapshot back to pending (the caller queues the task again)."""
    if snapshot.status == ExportStatus.COMPLETE:
        raise NotAllowed("This snapshot is complete; start a new export instead.")
    if snapshot.status == ExportStatus.RUNNING and not snapshot_is_stale(snapshot):
        raise NotAllowed("This export is still running.")
    ExportSnapshot.objects.filter(pk=snapshot.pk, status=snapshot.status, started_at=snapshot.started_at).update(
        status=ExportStatus.PENDING, done=0, error="", finished_at=None, heartbeat_at=None,
    )
    snapshot.refresh_from_db()
    return snapshot


def export_fail_stale(*, now: datetime | None = None) -> int:
    """Mark stale ``running`` snapshots as failed (interrupted); returns how many."""
    now = now or timezone.now()
    marked = 0
    for snapshot in ExportSnapshot.objects.filter(status=ExportStatus.RUNNING).select_related("dataset"):
        if not snapshot_is_stale(snapshot, now=now):
            continue
        error = (f"Interrupted: no progress since {last_heartbeat(snapshot):%Y-%m-%d %H:%M:%S} UTC "
                 f"(the worker was probably stopped). Restart the export.")
        marked += ExportSnapshot.objects.filter(pk=snapshot.pk, status=ExportStatus.RUNNING, started_at=snapshot.started_at).update(
            status=ExportStatus.FAILED, error=error, finished_at=now,
        )
        shutil.rmtree(partial_dir(snapshot), ignore_errors=True)
    return marked


@dataclass
class _Attempt:
    snapshot: ExportSnapshot
    token: datetime
    folder: Path
    beat: float = field(default_factory=time.monotonic)  # when this attempt last wrote its heartbeat


def _claim(snapshot_id: int) -> _Attempt | None:
    """Take the snapshot for a new attempt: pending, or running (a task delivered again takes over)."""
    with transaction.atomic():
        snapshot = ExportSnapshot.objects.select_for_update().filter(pk=snapshot_id).first()
        if snapshot is None or snapshot.status not in (ExportStatus.PENDING, ExportStatus.RUNNING):
            return None
        token = timezone.now()
        snapshot.status, snapshot.started_at, snapshot.finished_at = ExportStatus.RUNNING, token, None
        snapshot.done, snapshot.total, snapshot.error, snapshot.manifest = 0, 0, "", None
        snapshot.heartbeat_at = Now()
        snapshot.save(update_fields=["status", "started_at", "heartbeat_at", "finished_at", "done", "total", "error", "manifest"])
    snapshot = ExportSnapshot.objects.select_related("dataset", "created_by").get(pk=snapshot_id)
    folder = partial_dir(snapshot, token)
    for old in folder.parent.glob(f".{final_dir(snapshot).name}.*.partial"):  # earlier attempts' leftovers
        shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True)
    return _Attempt(snapshot=snapshot, token=token, folder=folder)


def _progress(attempt: _Attempt, **fields: int) -> None:
    """Save the counters and the heartbeat in one conditional update; raises :class:`Superseded` if not owned."""
    owned = ExportSnapshot.objects.filter(pk=attempt.snapshot.pk, status=ExportStatus.RUNNING, started_at=attempt.token)
    if not owned.update(heartbeat_at=Now(), **fields):
        raise Superseded(f"export snapshot {attempt.snapshot.pk}: another attempt took over")
    attempt.beat = time.monotonic()


def _keep_alive(attempt: _Attempt) -> None:
    """A heartbeat within a chunk, written at most every ``KEEPALIVE_SECONDS`` (cheap to call per image)."""
    if time.monotonic() - attempt.beat >= KEEPALIVE_SECONDS:
        _progress(attempt)


def export_run(*, snapshot_id: int) -> ExportSnapshot | None:
    """Write the snapshot; safe to call again for the same snapshot (see module docstring).

    A complete or failed snapshot is left alone. Errors are recorded on the
    snapshot (status ``failed``), not raised. Returns the snapshot as it ends, or
    None when there was nothing to run.
    """
    attempt = _claim(snapshot_id)
    if attempt is None:
        return None
    try:
        _export(attempt)
    except Superseded as exc:
        logger.info("%s", exc)
        shutil.rmtree(attempt.folder, ignore_errors=True)
    except Exception as exc:
        logger.exception("export snapshot %s failed", snapshot_id)
        shutil.rmtree(attempt.folder, ignore_errors=True)
        ExportSnapshot.objects.filter(pk=snapshot_id, status=ExportStatus.RUNNING, started_at=attempt.token).update(
            status=ExportStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now(),
        )
    return ExportSnapshot.objects.get(pk=snapshot_id)


@dataclass
class _Counts:
    images: int = 0
    machine_accepted: int = 0  # exported with the pipeline's auto-accepted answer (include_auto_accepted)
    skipped_without_final: int = 0
    skipped_auto_accepted: int = 0  # auto-accepted by the pipeline only, left out by default
    skipped_by_filter: int = 0
    triplets: int = 0
    elements: int = 0
    boxes: int = 0
    masks: int = 0
    with_des: int = 0
    by_label: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)

    def add(self, item: ExportItem) -> None:
        self.images += 1
        self.machine_accepted += item.annotation.kind == AnnotationKind.MODEL
        self.by_label[item.annotation.ces_label or "none"] += 1
        self.by_source[item.image.source] += 1
        self.with_des += item.annotation.des is not None
        for triplet in item.annotation.triplets.all():
            self.triplets += 1
            for element in triplet.elements.all():
                self.elements += 1
                self.boxes += element.x0 is not None
                self.masks += element.mask_counts is not None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if not isinstance(v, Counter)}
        return {**out, "by_label": dict(sorted(self.by_label.items())), "by_source": dict(sorted(self.by_source.items()))}


def _chunks(iterator: Iterator[Image], size: int) -> Iterator[list[Image]]:
    while chunk := list(islice(iterator, size)):
        yield chunk


def _export(attempt: _Attempt) -> None:
    snapshot = attempt.snapshot
    filters = ExportFilters.parse(snapshot.filters)
    images = export_images(dataset=snapshot.dataset, filters=filters)
    _progress(attempt, total=images.count(), done=0)
    names = images.order_by().values("original_name").annotate(n=Count("id")).filter(n__gt=1)
    duplicates = set(names.values_list("original_name", flat=True))
    context = {"dataset": snapshot.dataset.slug, "version": snapshot.version}
    writer = writer_class(snapshot.format)(attempt.folder, snapshot.options, context=context)
    placer = ImagePlacer(attempt.folder, snapshot.options.get("images", IMAGE_MODES[0]))
    counts, done = _Counts(), 0
    try:
        for chunk in _chunks(images.iterator(chunk_size=CHUNK_SIZE), CHUNK_SIZE):
            finals, withheld = _final_annotations((image.pk for image in chunk),
                                                  include_auto_accepted=filters.include_auto_accepted)
            items = []
            for image in chunk:
                final = finals.get(image.pk)
                if image.pk in withheld:
                    counts.skipped_auto_accepted += 1
                elif final is None:
                    counts.skipped_without_final += 1
                elif not filters.accepts(final):
                    counts.skipped_by_filter += 1
                else:
                    file_name = export_file_name(image, duplicates)
                    url, digest = placer.place(image, file_name)
                    _keep_alive(attempt)
                    items.append(ExportItem(image=image, annotation=final, file_name=file_name, url=url, sha256=digest))
                    counts.add(items[-1])
            writer.write(items)
            done += len(chunk)
            _progress(attempt, done=done)
        results = [writer.close(), placer.close()]
    except BaseException:
        writer.abort()
        placer.abort()
        raise
    _finish(attempt, counts, results)


def _finish(attempt: _Attempt, counts: _Counts, results: list[WriterResult]) -> None:
    """Write the manifest last, move the folder into place, then mark the snapshot complete."""
    manifest = build_manifest(
        snapshot=attempt.snapshot, folder=attempt.folder, started_at=attempt.token, counts=counts.as_dict(), results=results
    )
    staging = attempt.folder / f".{MANIFEST}.tmp"
    with open(staging, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, attempt.folder / MANIFEST)
    target = final_dir(attempt.snapshot)
    with transaction.atomic():
        snapshot = ExportSnapshot.objects.select_for_update().get(pk=attempt.snapshot.pk)
        if snapshot.status != ExportStatus.RUNNING or snapshot.started_at != attempt.token:
            raise Superseded(f"export snapshot {snapshot.pk}: another attempt took over before the end")
        if target.exists():  # a previous attempt died between its rename and its commit
            shutil.rmtree(target)
        os.rename(attempt.folder, target)
        snapshot.status, snapshot.manifest = ExportStatus.COMPLETE, manifest
        snapshot.done, snapshot.finished_at = snapshot.total, timezone.now()
        snapshot.save(update_fields=["status", "manifest", "done", "finished_at"])
