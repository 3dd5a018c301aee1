"""The importer's file work in worker processes: each file within a time limit, in parallel.

Everything an import does with a file happens here, never in the importing process and
never while a transaction is open: the path is resolved and confined to the images folder
(:func:`~annotations.importers.emoverse_parse.resolve_image_path`), the file is read when it
is a regular file within the size limit (:func:`annotations.image_services.read_image_file`'s
rules) and hashed; when its content is new to the dataset, decoded and checked
(:func:`annotations.image_files.image_prepare`); and once its lines passed their checks, its
stored file and thumbnail written (:func:`annotations.importers.file_store.store_image_files`).

Each file has ``EMOVERSE_IMAGE_READ_TIMEOUT_S`` for all of that. A worker that overruns it
(a FIFO that blocks, a stalled network mount, a pathological image) is killed (SIGKILL)
and replaced; its file fails with the timeout message and the files queued behind it go
to the fresh worker. Nothing is left blocked in the importing process: a read stuck in the
kernel stays with the killed process.

Workers are forked from the importing process (they inherit its settings, test overrides
included) and touch no database: they get the dataset, names and pixels, and send back
hashes, checked pixels and stored file names. :class:`FilePool` is a context manager; leaving it stops the
workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import selectors
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from django.conf import settings

from annotations.errors import InvalidImage
from annotations.image_files import PreparedImage, image_prepare, sha256_of
from annotations.image_services import ImageCandidate, read_image_file
from annotations.importers.emoverse_parse import resolve_image_path
from annotations.importers.file_store import store_image_files
from annotations.models import Dataset

logger = logging.getLogger(__name__)

TASKS_PER_MESSAGE = 16  # files sent to a worker at once (one result comes back per file)
_STAGES = {"find": "read", "prepare": "checked", "store": "stored"}  # what a task overrunning its limit was not


@dataclass(frozen=True)
class Found:
    """A file read and hashed: its resolved path (a string: cheaper to send between processes
    than a ``Path``) and the SHA-256 of its bytes."""

    path: str
    sha256: str


# In a worker: the bytes of the files it found and hashed lately, so that the check of a new
# content that comes to the same worker reads no file again (and checks exactly the bytes hashed).
_READ_CACHE: dict[str, tuple[str, bytes]] = {}
READ_CACHE_BYTES = 32 * 1024 * 1024
READ_CACHE_FILES = 1024  # more than a batch's files: the entries of files another worker checked go soon
_cached_bytes = [0]


def _remember(path: str, sha256: str, data: bytes) -> None:
    """Keep ``data`` for :func:`prepare_file`, within ``READ_CACHE_BYTES`` and ``READ_CACHE_FILES`` (the oldest dropped first)."""
    if len(data) > READ_CACHE_BYTES // 4:
        return
    _forget(path)
    _READ_CACHE[path] = (sha256, data)
    _cached_bytes[0] += len(data)
    while _cached_bytes[0] > READ_CACHE_BYTES or len(_READ_CACHE) > READ_CACHE_FILES:
        _forget(next(iter(_READ_CACHE)))


def _forget(path: str) -> tuple[str, bytes] | None:
    entry = _READ_CACHE.pop(path, None)
    if entry is not None:
        _cached_bytes[0] -= len(entry[1])
    return entry


def find_file(images_dir: Path, name: str) -> Found:
    """Resolve ``name`` in ``images_dir``, read it within the limits, hash it (in a worker)."""
    path = resolve_image_path(images_dir, name)
    data = read_image_file(path)
    found = Found(str(path), sha256_of(data))
    _remember(found.path, found.sha256, data)
    return found


def prepare_file(found: Found) -> PreparedImage:
    """Check and normalise the pixels of a file found by :func:`find_file` (in a worker): the
    bytes it hashed when this worker found it, else the file read again, whose content must
    still be the one hashed."""
    cached = _forget(found.path)
    if cached is not None and cached[0] == found.sha256:
        data = cached[1]
    else:
        data = read_image_file(Path(found.path))
        if sha256_of(data) != found.sha256:
            raise InvalidImage("the file changed while the import read it")
    return image_prepare(data, sha256=found.sha256)


def store_file(dataset: Dataset, candidate: ImageCandidate, original_name: str) -> ImageCandidate:
    """Write a new image's stored file and thumbnail (in a worker): the candidate with their names."""
    return store_image_files(dataset=dataset, candidate=candidate, original_name=original_name)


_OPERATIONS: dict[str, Callable[..., Any]] = {"find": find_file, "prepare": prepare_file, "store": store_file}


def register(name: str, operation: Callable[..., Any]) -> None:
    """Make ``operation`` (a module-level function of picklable arguments, no database access)
    available to the workers under ``name``; call at import time, before a pool forks."""
    _OPERATIONS[name] = operation


def portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


_current: list = []  # in a worker: [connection, id of the task under way]


def progress(stage: str) -> None:
    """Tell the importing process that the task under way reached ``stage`` (a past participle:
    ``"stored"``): from now on it has a time limit of its own, and overrunning it names the
    stage. Does nothing outside a worker."""
    if _current:
        conn, task_id = _current
        conn.send((task_id, None, stage))


def _serve(conn: Connection) -> None:
    """A worker's loop: receive ``[(task id, operation, args), ...]``, send ``(task id, ok, value)`` per task
    (and ``(task id, None, stage)`` for each :func:`progress`)."""
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        for task_id, operation, args in message:
            _current[:] = [conn, task_id]
            try:
                conn.send((task_id, True, _OPERATIONS[operation](*args)))
            except Exception as exc:  # sent back: the line of that file fails with it
                conn.send((task_id, False, portable(exc)))


def _worker_main(conn: Connection) -> None:
    try:
        _serve(conn)
    finally:
        os._exit(0)  # no inherited clean-up (the parent's database connection is not this process's)


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    pending: deque = field(default_factory=deque)  # task ids sent, not yet answered, in order
    deadline: float = 0.0  # when the task at the head of ``pending`` must be answered
    stage: str = ""  # what the task at the head of ``pending`` reported last (:func:`progress`)


class FilePool:
    """Worker processes that run the registered operations (:func:`find_file`, the line checks of
    :mod:`annotations.importers.line_checks`) with a time limit per task. Used by one thread."""

    def __init__(self, workers: int | None = None, timeout_s: float | None = None) -> None:
        self.size = max(1, workers or import_workers())
        self.timeout_s = settings.EMOVERSE_IMAGE_READ_TIMEOUT_S if timeout_s is None else timeout_s
        self._context = multiprocessing.get_context("fork")
        self._workers: list[_Worker] = []
        self.killed = 0

    def __enter__(self) -> FilePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start every worker now (else each starts with the first task it gets)."""
        while len(self._workers) < self.size:
            self._start()

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child,), daemon=True, name="import-files")
        process.start()
        child.close()
        worker = _Worker(process, parent)
        self._workers.append(worker)
        return worker

    def _kill(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        worker.process.kill()
        worker.conn.close()
        worker.process.join(0.1)  # reaped now if it died; a process stuck in the kernel is left to exit
        self.killed += 1

    def close(self) -> None:
        for worker in list(self._workers):
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in list(self._workers):
            worker.process.join(1)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(0.1)
            worker.conn.close()
        self._workers.clear()

    def run(self, operation: str, tasks: Sequence[tuple]) -> list[tuple[bool, Any]]:
        """Run ``operation`` on each argument tuple of ``tasks``; ``(True, value)`` or ``(False, exception)``
        per task, in order. A task whose worker does not answer within the time limit gets
        ``(False, InvalidImage(...))`` naming the limit, and its worker is replaced. A worker
        gets its next tasks once it answered all it had: it is then reading, never left to
        block this process on a full pipe."""
        results: list[tuple[bool, Any] | None] = [None] * len(tasks)
        queue = deque(range(len(tasks)))
        while len(self._workers) < min(self.size, len(tasks)):
            self._start()
        busy: dict[Connection, _Worker] = {}
        per_message = max(1, min(TASKS_PER_MESSAGE, len(tasks) // (2 * self.size) or 1))
        with selectors.DefaultSelector() as selector:  # registered while busy: no set-up per wait

            def release(worker: _Worker) -> None:
                del busy[worker.conn]
                selector.unregister(worker.conn)

            def feed(worker: _Worker) -> None:
                batch = [queue.popleft() for _ in range(min(per_message, len(queue)))]
                if not batch:
                    if worker.conn in busy:
                        release(worker)
                    return
                worker.conn.send([(i, operation, tasks[i]) for i in batch])
                worker.deadline = time.monotonic() + self.timeout_s
                worker.pending.extend(batch)
                if worker.conn not in busy:
                    busy[worker.conn] = worker
                    selector.register(worker.conn, selectors.EVENT_READ)

            for worker in self._workers:
                feed(worker)
            while busy:
                now = time.monotonic()
                for worker in [w for w in busy.values() if w.deadline <= now]:
                    release(worker)
                    stuck = worker.pending.popleft()
                    results[stuck] = (False, self._timeout_error(worker.stage or _STAGES.get(operation, "checked")))
                    queue.extendleft(reversed(worker.pending))  # the files behind it go to a fresh worker
                    self._kill(worker)
                    logger.warning("import: a file worker overran %g s and was killed", self.timeout_s)
                    feed(self._start())
                if not busy:
                    break
                ready = selector.select(timeout=max(0.0, min(w.deadline for w in busy.values()) - time.monotonic()))
                for key, _ in ready:
                    worker = busy.get(key.fileobj)
                    if worker is not None:
                        self._receive(worker, results, queue, feed, release)
        return results  # type: ignore[return-value]

    def _receive(self, worker: _Worker, results: list, queue: deque, feed: Callable[[_Worker], None],
                 release: Callable[[_Worker], None]) -> None:
        """Read one message of ``worker`` (a result or a progress report); replace it when it died."""
        try:
            task_id, ok, value = worker.conn.recv()
        except (EOFError, OSError):  # the worker died (killed from outside, out of memory)
            release(worker)
            lost = worker.pending.popleft()
            results[lost] = (False, RuntimeError("the file worker died while it handled this file"))
            queue.extendleft(reversed(worker.pending))
            self._kill(worker)
            feed(self._start())
            return
        worker.deadline = time.monotonic() + self.timeout_s
        if ok is None:  # progress of the task under way
            worker.stage = value
            return
        worker.pending.popleft()
        worker.stage = ""
        results[task_id] = (ok, value)
        if not worker.pending:
            feed(worker)

    def _timeout_error(self, what: str) -> InvalidImage:
        return InvalidImage(
            f"not {what} within {self.timeout_s:g} s (EMOVERSE_IMAGE_READ_TIMEOUT_S); is its mount stalled?"
        )


def import_workers() -> int:
    """Worker processes per import: ``EMOVERSE_IMPORT_WORKERS``, by default one per CPU (at most 8)."""
    configured = getattr(settings, "EMOVERSE_IMPORT_WORKERS", 0)
    return configured or min(8, os.cpu_count() or 1)


def unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))
