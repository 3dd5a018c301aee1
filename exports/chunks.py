"""An export's chunks: read on PostgreSQL in two plain statements, and encoded in worker processes.

The export reads its images a chunk at a time (:func:`exports.selectors.export_image_rows`);
for each chunk it needs the final annotations with their triplets and elements. On
PostgreSQL :func:`pg_export_chunk` reads them in two statements through a binary psycopg
cursor -- the final annotation chosen in SQL by the rule of
:func:`annotations.selectors.final_annotation_ids`, the DES vector as raw bytes, the
elements as plain tuples -- instead of Django's ``values_list`` (whose per-row and per-
parameter work was most of an export's CPU, issue 16). SQLite keeps
:func:`exports.selectors.export_chunk`; both give the same records.

Encoding a chunk (choosing, counting, JSON or Arrow) needs no state of earlier chunks, so
:class:`ChunkPool` runs it in forked worker processes, each with its own database
connection, a few chunks ahead, and hands the results back in export order: the parent
only appends the encoded bytes to the files (hashing them on the way), saves the
progress and checks that it still owns the snapshot. Workers see only committed rows, so
the pool is used only outside a transaction (:func:`parallel_workers`).
"""

from __future__ import annotations

import ctypes
import gc
import json
import mmap
import multiprocessing
import os
import signal
import threading
from collections import deque
from contextlib import contextmanager
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, NamedTuple

import orjson
import psycopg
from django.conf import settings
from django.db import connection, connections

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind, Decision
from exports.writers.items import ExportAnnotation, ExportElement, ExportTriplet

# The final annotation of each image (the rule of annotations.selectors.final_annotation_ids): a
# current adjudication, else the newest current approved human review or curated import, else (a
# third tier, chosen here and withheld by the caller unless include_auto_accepted) the pipeline's
# auto-accepted model answer when no person has a current review of the image; newest version first.
_FINALS_SQL = """
WITH final AS (
    SELECT DISTINCT ON (a.image_id) a.id
    FROM annotations_annotation a
    WHERE a.image_id = ANY(%(ids)s) AND a.is_current
      AND (a.kind = %(adjudication)s
           OR (a.kind IN (%(human)s, %(import)s) AND a.decision = %(approved)s)
           OR (a.kind = %(model)s AND a.author_name = %(pipeline)s AND a.decision = %(approved)s
               AND NOT EXISTS (SELECT 1 FROM annotations_annotation h
                               WHERE h.image_id = a.image_id AND h.is_current AND h.kind = %(human)s)))
    ORDER BY a.image_id, CASE a.kind WHEN %(adjudication)s THEN 2 WHEN %(model)s THEN 0 ELSE 1 END DESC,
             a.version DESC, a.id DESC
)
SELECT a.id, a.image_id, a.kind, a.version, a.author_name, a.prompt_version, a.pipeline_version, a.ces_label,
       a.ces_confidence, a.ces_distribution::text, {des}, a.rationale, a.extra::text, a.created_at
FROM annotations_annotation a JOIN final ON final.id = a.id
"""
# A writer that does not write DES vectors (COCO) gets an empty one where the annotation has one
# (the counts' with_des): the vector (4 KB, stored out of line) is neither read nor sent.
_FINALS_WITH_DES = _FINALS_SQL.format(des="a.des")
_FINALS_WITHOUT_DES = _FINALS_SQL.format(des="CASE WHEN a.des IS NULL THEN NULL ELSE ''::bytea END")
_ELEMENTS_SQL = """
SELECT t.id, t.annotation_id, t.index, t.key::text,
       e.triplet_id, e.role, e.phrase, e.status, e.x0, e.y0, e.x1, e.y1, e.box_score,
       e.mask_counts, e.mask_height, e.mask_width, e.mask_score
FROM annotations_triplet t LEFT JOIN annotations_element e ON e.triplet_id = t.id
WHERE t.annotation_id = ANY(%(ids)s)
ORDER BY t.annotation_id, t.index, e.role
"""
_KINDS = {"adjudication": AnnotationKind.ADJUDICATION.value, "human": AnnotationKind.HUMAN.value,
          "import": AnnotationKind.IMPORT.value, "model": AnnotationKind.MODEL.value,
          "approved": Decision.APPROVED.value, "pipeline": PIPELINE_AUTHOR}
_MODEL = AnnotationKind.MODEL.value
# Allocations between two young-generation collections during an export (Python's default: 700).
_GC_THRESHOLD = 50_000
# Below this many images an export runs in one process (starting workers costs more).
PARALLEL_MIN_IMAGES = 20_000


def _json(text: str | None) -> Any:
    """A stored JSON value (``jsonb::text``): orjson, or the standard library for what orjson refuses."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def pg_export_chunk(
    image_ids: list[int], *, include_auto_accepted: bool, des: bool = True
) -> tuple[dict[int, ExportAnnotation], set[int]]:
    """:func:`exports.selectors.export_chunk` on PostgreSQL: the same records in two statements.

    ``des=False``: each annotation's ``des`` is ``b""`` where it has a vector, None where not.
    """
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(_FINALS_WITH_DES if des else _FINALS_WITHOUT_DES, {"ids": image_ids, **_KINDS}, binary=True)
        annotations = [ExportAnnotation(pk, image_id, kind, version, author, prompt, pipeline, label, confidence,
                                        _json(distribution), des, rationale, _json(extra), created_at)
                       for (pk, image_id, kind, version, author, prompt, pipeline, label, confidence, distribution,
                            des, rationale, extra, created_at) in cursor.fetchall()]
        withheld: set[int] = set()
        if not include_auto_accepted:
            withheld = {a.image_id for a in annotations if a.kind == _MODEL}
            annotations = [a for a in annotations if a.kind != _MODEL]
        by_id = {a.id: a for a in annotations}
        if by_id:
            cursor.execute(_ELEMENTS_SQL, {"ids": list(by_id)}, binary=True)
        make, triplet, current = tuple.__new__, None, None
        for row in cursor.fetchall() if by_id else ():
            if row[0] != current:
                current, triplet = row[0], ExportTriplet(index=row[2], key=row[3], elements=[])
                by_id[row[1]].triplets.append(triplet)
            if row[4] is not None:
                triplet.elements.append(make(ExportElement, row[4:]))
    return {a.image_id: a for a in annotations}, withheld


def parallel_workers(total: int) -> int:
    """How many worker processes an export of ``total`` images uses; 0: none (encode in this process).

    ``EMOVERSE_EXPORT_WORKERS`` (default: the CPU count, at most 4) on PostgreSQL, from
    ``EMOVERSE_EXPORT_PARALLEL_MIN`` images (default 20,000), and only outside a transaction:
    a worker's own connection would not see rows this connection has not committed.
    """
    workers = getattr(settings, "EMOVERSE_EXPORT_WORKERS", None)
    if workers is None:
        workers = min(multiprocessing.cpu_count(), 4)
    if (connection.vendor != "postgresql" or connection.in_atomic_block or workers < 1
            or total < getattr(settings, "EMOVERSE_EXPORT_PARALLEL_MIN", PARALLEL_MIN_IMAGES)):
        return 0
    return workers


_detached: list[Any] = []  # the parent's connections, kept (never closed) in a forked worker


def _worker_start() -> None:
    """In a forked worker: leave the parent's database connections alone and open its own.

    Closing an inherited connection would end the parent's session, so each is kept
    referenced (a forked worker exits without running finalizers) and replaced.
    """
    _die_with_parent()
    gc.freeze()  # what the worker inherited is never scanned again, and scans are rarer (collector_quiet)
    gc.set_threshold(max(gc.get_threshold()[0], _GC_THRESHOLD), *gc.get_threshold()[1:])
    for conn in connections.all(initialized_only=True):
        _detached.append(conn.connection)
        conn.connection = None
    multiprocessing.util.Finalize(None, connections.close_all, exitpriority=10)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the export's process dies (``PR_SET_PDEATHSIG``).

    A worker holds the pool's pipes open as its siblings do, so after a SIGKILL of the
    export's process (a Celery hard time limit, a killed worker) it would otherwise wait on
    them for ever. Elsewhere than Linux the workers exit when their pipes close.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


_quiet_lock = threading.Lock()
_quiet: list = []  # the state to restore, then one entry per export running in this process


@contextmanager
def collector_quiet() -> Iterator[None]:
    """Keep Python's cyclic garbage collector off the export's hot loop.

    An export frees its rows by reference counting; the collector only found the many
    rows and strings it allocates a chunk at a time worth a scan, and each full scan
    walked every object of the process (a tenth of an export's CPU). The objects alive
    when the export starts are frozen (never scanned) until it ends, unless something else
    of the process froze objects already (then its freeze is left as it is); later cycles
    are still collected, only less often.
    """
    with _quiet_lock:  # exports in threads of one process: the first sets, the last restores
        if not _quiet:
            threshold = gc.get_threshold()
            _quiet.append((threshold, gc.get_freeze_count() == 0))
            if _quiet[0][1]:
                gc.freeze()
            gc.set_threshold(max(threshold[0], _GC_THRESHOLD), *threshold[1:])
        _quiet.append(None)
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet.pop()
            if len(_quiet) == 1:
                threshold, froze = _quiet.pop()
                gc.set_threshold(*threshold)
                if froze:
                    gc.unfreeze()


@contextmanager
def _children_allowed():
    """Let this process start the pool's workers even when it is itself a daemon process.

    Celery's prefork pool runs tasks in daemon processes, and :mod:`multiprocessing` refuses
    to start children from one ("daemonic processes are not allowed to have children"),
    because it would not wait for them at exit. :class:`ChunkPool` always shuts its workers
    down itself, and they die with it (:func:`_die_with_parent`), so the flag is lifted while
    they start.
    """
    process = multiprocessing.current_process()
    daemon = process._config.get("daemon", False)
    process._config["daemon"] = False
    try:
        yield
    finally:
        process._config["daemon"] = daemon


class _Shared(NamedTuple):
    """A worker's result bytes left in the pool's shared memory: ``length`` bytes at ``offset``."""

    offset: int
    length: int


class ChunkPool:
    """``encode(chunk)`` for each chunk, in ``workers`` forked processes, results in order.

    At most ``2 * workers`` chunks are in flight, so memory stays flat however fast the
    workers are. ``encode`` must be a module-level function (workers find it by name) and
    reads what it needs from the state the parent had when the pool started (fork).

    A result's large ``bytes`` (an encoded chunk: 12 MB of JSONL for 1,000 images) come
    back through memory shared with the workers, one slot per chunk in flight, instead of
    being pickled through a pipe (four copies, and the pool's result thread, were a third
    of the parent's CPU): the parent gets a ``memoryview`` of the slot, valid until it
    asks for the next result. Bytes larger than a slot take the pipe.
    """

    SLOT_BYTES = 16 * 2**20
    SHARED_MIN = 2**20  # smaller bytes take the pipe (copying them costs less than a slot)

    def __init__(self, workers: int) -> None:
        self._ahead = 2 * workers
        self._slots = self._ahead + 1  # in flight, and the one the caller holds
        global _memory
        # Anonymous and shared: the workers forked below find it in this module's global.
        self._memory = _memory = mmap.mmap(-1, self._slots * self.SLOT_BYTES)
        self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_worker_start)
        with _children_allowed():  # with fork, the first submit starts every worker
            self._executor.submit(os.getpid).result()

    def map(self, encode: Callable[[Any], Any], chunks: Iterable[Any]) -> Iterator[Any]:
        pending: deque[tuple[Future, int]] = deque()
        free = list(range(self._slots))
        view = memoryview(self._memory)
        held: list[memoryview] = []
        try:
            for chunk in chunks:
                slot = free.pop()
                pending.append((self._executor.submit(_run_shared, encode, chunk, slot), slot))
                if len(pending) >= self._ahead:
                    yield self._result(pending, free, view, held)
            while pending:
                yield self._result(pending, free, view, held)
            self._release(held)
        finally:
            view.release()

    def _result(self, pending: deque, free: list[int], view: memoryview, held: list[memoryview]) -> Any:
        self._release(held)  # the caller is done with the previous result: its slot is free again
        future, slot = pending.popleft()
        result = _restore(future.result(), view, held)
        free.append(slot)  # reused only once the caller asks for the next result (slots: in flight + 1)
        return result

    @staticmethod
    def _release(held: list[memoryview]) -> None:
        for part in held:
            part.release()
        held.clear()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        try:
            self._memory.close()
        except BufferError:  # a memoryview of the last result is still referenced: freed with it
            pass


_memory: mmap.mmap | None = None  # the latest pool's shared slots (a worker's, inherited)


def _run_shared(encode: Callable[[Any], Any], chunk: Any, slot: int) -> Any:
    """In a worker: ``encode(chunk)``, its large bytes (in nested tuples) copied into ``slot``."""
    memory = _memory
    start = slot * ChunkPool.SLOT_BYTES
    end = [start]

    def share(value: Any) -> Any:
        if isinstance(value, tuple) and not hasattr(value, "_fields"):
            return tuple(share(v) for v in value)
        if isinstance(value, bytes) and len(value) >= ChunkPool.SHARED_MIN and end[0] + len(value) <= start + ChunkPool.SLOT_BYTES:
            memory[end[0]:end[0] + len(value)] = value
            end[0] += len(value)
            return _Shared(end[0] - len(value), len(value))
        return value

    return share(encode(chunk))


def _restore(value: Any, view: memoryview, held: list[memoryview]) -> Any:
    """A worker's result with each :class:`_Shared` replaced by a view of the shared memory."""
    if isinstance(value, _Shared):
        part = view[value.offset:value.offset + value.length]
        held.append(part)
        return part
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_restore(v, view, held) for v in value)
    return value
