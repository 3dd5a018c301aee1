"""Writing a snapshot: one streaming, crash-safe attempt (the body of ``exports.tasks.export_snapshot``).

:func:`exports.services.export_create` records a snapshot (``pending``);
:func:`export_run` writes it. The images matching the filters are read with
``iterator()`` a chunk at a time; each chunk's final annotations come with
their triplets and elements in four queries
(:func:`exports.selectors.final_annotations`), go to the format's writer, and
the progress (``done``/``total``) is saved with a heartbeat (``heartbeat_at``,
the database's clock). Memory does not grow with the dataset.

The final annotation is the adjudicated one, else the approved human review or
curated import; the pipeline's auto-accepted model answer only with the
``include_auto_accepted`` filter (machine-accepted, counted apart in the
manifest). Within it, COCO and Parquet leave out rejected elements unless the
``include_rejected`` option is set; the manifest's ``left_out`` counts what was
left out and why. An image still in review is left out when its final would be a
person's answer (``skipped_in_review``): the reviews are independent until all are in.

Snapshots are crash-safe. An attempt writes into its own hidden folder
(``EXPORT_ROOT/<dataset>/.<name>.<attempt>.partial``), writes ``manifest.json``
last, renames the folder into place and only then marks the snapshot
``complete`` -- all under the snapshot's row lock and only if the attempt still
owns the snapshot. The attempt's identity is its ``started_at``: every progress
save is conditional on it, so when a fresh task run takes over (a killed
worker's task delivered again), the old attempt stops at its next chunk. A
``running`` snapshot whose heartbeat is older than
``EMOVERSE_EXPORT_STALE_SECONDS`` (default 600) is shown as interrupted and can
be restarted; Celery beat marks it failed
(:func:`exports.services.export_fail_stale`). The heartbeat lives in the
database, so the web process judges a worker on another machine correctly; the
files themselves must be on a folder (``EXPORT_ROOT``) that workers and web
share, since downloads are served from it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count
from django.db.models.functions import Now
from django.utils import timezone

from annotations.models import AnnotationKind, ElementStatus, ImageStatus
from exports.chunks import ChunkPool, collector_quiet, parallel_workers, pg_export_chunk
from exports.filters import ExportFilters
from exports.manifest import MANIFEST, build_manifest
from exports.models import ExportSnapshot, ExportStatus
from exports.selectors import export_chunk, export_image_rows, export_images, final_dir, partial_dir
from exports.writers import ExportItem, WriterResult, writer_class
from exports.writers.images import IMAGE_MODES, ImagePlacer, export_file_name
from exports.writers.items import ExportAnnotation, ExportImage
from qa.exporting import qa_export_chunks, qa_export_pairs

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000
QA_CHUNK_SIZE = 10_000  # QA pair rows are small: a bigger chunk, fewer progress saves
_MODEL = AnnotationKind.MODEL.value
_REJECTED = ElementStatus.REJECTED.value
_IN_REVIEW = ImageStatus.IN_REVIEW.value
# Progress (with the heartbeat) is saved after every chunk; within a slow chunk
# (copying images from object storage) a heartbeat alone at most this often.
KEEPALIVE_SECONDS = 30.0
# An image still in review is never exported with a person's answer: the reviews in so far are not
# final, and a snapshot (which any admin may download) would show a reviewer who holds, or may still
# be given, a slot on the image another person's review of it. Curated imports stay exportable.
PEOPLES_ANSWERS = frozenset({AnnotationKind.HUMAN, AnnotationKind.ADJUDICATION})


class Superseded(Exception):
    """A newer attempt owns the snapshot (or it was marked failed); this attempt stops."""


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
    include_rejected: bool  # the writer keeps rejected elements (JSONL always; COCO, Parquet on request)
    images: int = 0
    machine_accepted: int = 0  # exported with the pipeline's auto-accepted answer (include_auto_accepted)
    skipped_without_final: int = 0
    skipped_in_review: int = 0  # still in review: the answers people gave so far are not final (independence)
    skipped_auto_accepted: int = 0  # auto-accepted by the pipeline only, left out by default
    skipped_by_filter: int = 0
    rejected_elements_left_out: int = 0
    triplets: int = 0
    elements: int = 0
    boxes: int = 0
    masks: int = 0
    with_des: int = 0
    by_label: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)

    def add(self, image_source: str, annotation: ExportAnnotation) -> None:
        self.images += 1
        self.machine_accepted += annotation.kind == _MODEL
        self.by_label[annotation.ces_label or "none"] += 1
        self.by_source[image_source] += 1
        self.with_des += annotation.des is not None
        for triplet in annotation.triplets:
            kept = 0
            for element in triplet.elements:
                if element.status == _REJECTED and not self.include_rejected:
                    self.rejected_elements_left_out += 1
                    continue
                kept += 1
                self.boxes += element.x0 is not None
                self.masks += element.mask_counts is not None
            self.elements += kept
            self.triplets += kept > 0

    def merge(self, other: _Counts) -> None:
        """Add a chunk's counts."""
        for name, value in other.__dict__.items():
            if isinstance(value, Counter):
                getattr(self, name).update(value)
            elif not isinstance(value, bool):
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, Any]:
        """The manifest's ``counts``: what was exported (triplets, elements, boxes, masks as written) and skipped."""
        out = {k: v for k, v in self.__dict__.items() if not isinstance(v, (Counter, bool))}
        return {**out, "by_label": dict(sorted(self.by_label.items())), "by_source": dict(sorted(self.by_source.items()))}


@dataclass
class _Job:
    """What encoding a chunk needs; set before a :class:`ChunkPool` forks, so its workers have it too."""

    writer: Any
    filters: ExportFilters
    duplicates: set[str]
    placer: ImagePlacer
    keep_alive: Callable[[], None] | None  # a heartbeat within a slow chunk (in this process only)
    fetch: Callable[..., tuple[dict[int, ExportAnnotation], set[int]]]


_JOB: _Job | None = None


def _encode_chunk(chunk: list[ExportImage]) -> tuple[Any, _Counts, int]:
    """One chunk of image rows: which images are exported and why not, encoded by the writer.

    Returns ``(the writer's encoded chunk, the chunk's counts, images read)``; runs in this
    process or in a worker (:class:`exports.chunks.ChunkPool`).
    """
    job = _JOB
    filters, placer = job.filters, job.placer
    finals, withheld = job.fetch([image.id for image in chunk], include_auto_accepted=filters.include_auto_accepted)
    counts, items = _Counts(include_rejected=job.writer.include_rejected), []
    for image in chunk:
        final = finals.get(image.id)
        if image.id in withheld:
            counts.skipped_auto_accepted += 1
        elif final is None:
            counts.skipped_without_final += 1
        elif image.status == _IN_REVIEW and final.kind in PEOPLES_ANSWERS:
            counts.skipped_in_review += 1
        elif not filters.accepts(final):
            counts.skipped_by_filter += 1
        else:
            file_name = export_file_name(image, job.duplicates)
            url, digest = placer.place(image, file_name)
            if job.keep_alive is not None:
                job.keep_alive()
            items.append(ExportItem(image=image, annotation=final, file_name=file_name, url=url, sha256=digest))
            counts.add(image.source, final)
    return job.writer.encode(items), counts, len(chunk)


def _export(attempt: _Attempt) -> None:
    global _JOB
    snapshot = attempt.snapshot
    filters = ExportFilters.parse(snapshot.filters, snapshot.dataset.get_taxonomy().labels)
    if getattr(writer_class(snapshot.format), "SOURCE", "images") == "qa_pairs":
        _export_qa(attempt, filters)
        return
    images = export_images(dataset=snapshot.dataset, filters=filters)
    total = images.count()
    _progress(attempt, total=total, done=0)
    names = images.order_by().values("original_name").annotate(n=Count("id")).filter(n__gt=1)
    duplicates = set(names.values_list("original_name", flat=True))
    context = {"dataset": snapshot.dataset.slug, "version": snapshot.version, "taxonomy": snapshot.dataset.get_taxonomy()}
    writer = writer_class(snapshot.format)(attempt.folder, snapshot.options, context=context)
    placer = ImagePlacer(attempt.folder, snapshot.options.get("images", IMAGE_MODES[0]))
    # PostgreSQL reads plain binary rows (exports.chunks); EMOVERSE_EXPORT_FAST_PATH = False keeps Django's
    # values_list path there too. Workers only where placing an image is nothing to do (no files copied,
    # no storage URLs asked).
    fast = connection.vendor == "postgresql" and getattr(settings, "EMOVERSE_EXPORT_FAST_PATH", True)
    workers = parallel_workers(total) if fast and placer.mode == "none" else 0
    fetch = functools.partial(pg_export_chunk, des=getattr(writer, "WRITES_DES", True)) if fast else export_chunk
    _JOB = _Job(writer=writer, filters=filters, duplicates=duplicates, placer=placer, fetch=fetch,
                keep_alive=None if workers else functools.partial(_keep_alive, attempt))
    counts, done = _Counts(include_rejected=writer.include_rejected), 0
    pool = ChunkPool(workers) if workers else None
    try:
        # closing(): the rows' server-side cursor is closed when the export stops, however it stops,
        # not by the garbage collector later (in whatever transaction is open then).
        with collector_quiet(), closing(export_image_rows(images, chunk_size=CHUNK_SIZE, plain_sql=fast)) as chunks:
            for encoded, chunk_counts, read in (pool.map if pool else map)(_encode_chunk, chunks):
                writer.append(encoded)
                counts.merge(chunk_counts)
                done += read
                _progress(attempt, done=done)
            if pool is not None:
                pool.close()
        results = [writer.close(), placer.close()]
    except BaseException:
        writer.abort()
        placer.abort()
        raise
    finally:
        _JOB = None
        if pool is not None:
            pool.close()
    _finish(attempt, counts, results)


def _export_qa(attempt: _Attempt, filters: ExportFilters) -> None:
    """QA pair formats: the dataset's current pairs (approved by default, option ``pairs``), with
    the ``source`` filter on their image and ``since``/``until`` on when the version was made;
    the image filters that judge B-A-S annotations (status, label, agreement) do not apply."""
    snapshot = attempt.snapshot
    pairs = qa_export_pairs(dataset_id=snapshot.dataset_id, pairs=snapshot.options.get("pairs", "approved"),
                            sources=filters.source, since=filters.since, until=filters.until)
    _progress(attempt, total=pairs.count(), done=0)
    context = {"dataset": snapshot.dataset.slug, "version": snapshot.version}
    writer = writer_class(snapshot.format)(attempt.folder, snapshot.options, context=context)
    counts: dict[str, Any] = {"pairs": 0, "by_status": Counter(), "by_category": Counter(), "by_dimension": Counter(),
                              "by_type": Counter()}
    try:
        for rows in qa_export_chunks(pairs, chunk_size=QA_CHUNK_SIZE):
            writer.write_rows(rows)
            counts["pairs"] += len(rows)
            for counter, name in (("by_status", "status"), ("by_category", "category"),
                                  ("by_dimension", "dimension"), ("by_type", "type")):
                counts[counter].update(row[name] for row in rows)
            _progress(attempt, done=counts["pairs"])
        results = [writer.close()]
    except BaseException:
        writer.abort()
        raise
    counts["pairs_left_out"] = qa_export_pairs(dataset_id=snapshot.dataset_id, pairs="current").count() - counts["pairs"]
    as_dict = {k: dict(sorted(v.items())) if isinstance(v, Counter) else v for k, v in counts.items()}
    _finish_with(attempt, as_dict, results)


def _finish(attempt: _Attempt, counts: _Counts, results: list[WriterResult]) -> None:
    _finish_with(attempt, counts.as_dict(), results)


def _finish_with(attempt: _Attempt, counts: dict[str, Any], results: list[WriterResult]) -> None:
    """Write the manifest last, move the folder into place, then mark the snapshot complete."""
    manifest = build_manifest(
        snapshot=attempt.snapshot, folder=attempt.folder, started_at=attempt.token, counts=counts, results=results
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
