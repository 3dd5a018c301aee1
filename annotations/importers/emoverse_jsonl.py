"""Streaming import of EmoVerse JSONL (the format is documented in docs/emoverse-jsonl.md).

The file is read one line at a time and committed in batches: one transaction per
``batch_size`` lines. A bad line leaves no row behind and never costs the good lines
around it. Memory does not grow with the file.

A batch is prepared before its transaction opens (:func:`_prepare_lines`, no lock held):
:func:`~annotations.importers.emoverse_parse.parse_line` (JSON, keys, annotator, source,
critic, storable text; no file access) in this process; then the file work and the line
checks in worker processes with a time limit per file (:mod:`.file_workers`): each file
found, confined to the images folder, read when it is a regular file within the size
limit and hashed; one query for the contents the dataset holds; then one task per
content (:mod:`.line_checks`) validates its lines against the image and, for a new
content, checks its pixels and writes its files. Then one short transaction writes the
rows (:mod:`.batch_write`); on PostgreSQL a thread prepares the next batch meanwhile
(:func:`_run_batches`). An import never replaces a version made in the app (a person's
review): such a line fails. Whatever else goes wrong with a line, even an unforeseen
exception, fails that line only, with its reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from django.db import connection, connections, transaction
from django.utils import timezone

from annotations.errors import InvalidAnnotation
from annotations.image_services import ImageCandidate
from annotations.importers.batch_write import (
    AppWorkAppeared,
    LineError,
    PreparedLine,
    Tally,
    fail,
    named,
    write_batch,
    write_lines,
)
from annotations.importers.file_workers import FilePool, Found, unique
from annotations.importers.line_checks import Outcome
from annotations.importers.emoverse_parse import (
    BadLine,
    ImportOptions,
    ParsedLine,
    parse_line,
)
from annotations.importers.lines import DEFAULT_MAX_LINE_BYTES, iter_lines
from annotations.models import (
    Annotation,
    Dataset,
    Element,
    Image,
    ImageSource,
    ImportRun,
    Triplet,
)
from annotations.services import dataset_get_or_create
from annotations.signals import import_finished

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
ERRORS_KEPT_ON_RUN = 100  # ImportRun.errors: the first failed lines
ANALYZE_FIRST_AT = 5_000  # lines imported, then each doubling (PostgreSQL, :class:`_Statistics`)


@dataclass
class ImportReport:
    run: ImportRun
    imported: int = 0
    duplicates: int = 0
    failed: int = 0
    images_created: int = 0
    annotations_created: int = 0
    errors: list[LineError] = field(default_factory=list)  # the first ``max_errors``

    @property
    def ok(self) -> bool:
        return self.failed == 0


def _prepare_lines(lines: list[tuple[int, bytes | None]], *, dataset: Dataset, options: ImportOptions,
                   run: ImportRun, pool: FilePool) -> tuple[list[tuple[int, PreparedLine]], Tally]:
    """Parse each line, do its file work and its checks in ``pool`` (:mod:`.line_checks`), with
    no transaction open: the lines ready to write, and a tally of those that failed.

    Each file named is found, read and hashed once (``find``); one query tells the contents
    the dataset holds; then one task per content checks its lines (and for a new content its
    pixels, and writes its files once a line passed)."""
    parsed, failed = [], Tally()
    for number, raw in lines:
        try:
            if raw is None:
                raise BadLine(f"line longer than the limit of {options.max_line_bytes:,} bytes")
            parsed.append((number, parse_line(raw, options)))
        except Exception as exc:  # recorded: counted, reported for its line, logged if unforeseen
            fail(failed, number, exc, run)
    names = unique(line.image for _, line in parsed)
    found: dict[str, Found | Exception] = {}
    for name, (ok, value) in zip(names, pool.run("find", [(options.images_dir, name) for name in names])):
        found[name] = value if ok else named(name, value)
    groups: dict[str, list[tuple[int, ParsedLine]]] = {}  # sha256 -> its lines, in first-seen order
    first_found: dict[str, Found] = {}
    for number, line in parsed:
        f = found[line.image]
        if isinstance(f, Exception):
            fail(failed, number, f, run)
            continue
        groups.setdefault(f.sha256, []).append((number, line))
        first_found.setdefault(f.sha256, f)
    stored = {image.sha256: image for image in Image.objects.filter(dataset=dataset, sha256__in=list(groups))} \
        if groups else {}
    known = [sha for sha in groups if sha in stored]
    new = [sha for sha in groups if sha not in stored]
    checked = dict(zip(known, _run(pool, "check_known_image", [
        ([line for _, line in groups[sha]], sha, stored[sha].width, stored[sha].height, options.taxonomy) for sha in known])))
    checked.update(zip(new, _run(pool, "check_new_image", [
        (first_found[sha], [line for _, line in groups[sha]], dataset, options.taxonomy) for sha in new])))
    ready = []
    for sha, group in groups.items():
        ok, value = checked[sha]
        if sha in stored:
            candidate: Outcome | None = (True, ImageCandidate(sha256=sha, width=stored[sha].width,
                                                              height=stored[sha].height, existing=stored[sha]))
            outcomes = value if ok else [(False, value)] * len(group)
        elif ok:
            candidate, outcomes = value
        else:  # the pixels: every line of the content fails
            candidate, outcomes = None, [(False, value)] * len(group)
        for (number, line), (line_ok, result) in zip(group, outcomes):
            if not line_ok:
                fail(failed, number, named(line.image, result), run)
            elif not candidate[0]:  # the files could not be written
                fail(failed, number, named(line.image, candidate[1]), run)
            else:
                ready.append((number, PreparedLine(line, candidate[1], *result)))
    ready.sort(key=lambda item: item[0])
    return ready, failed


def _run(pool: FilePool, operation: str, tasks: list[tuple]) -> list[tuple[bool, Any]]:
    return pool.run(operation, tasks) if tasks else []


def _run_batches(lines: Iterator[tuple[int, bytes | None]], *, batch_size: int, dataset: Dataset,
                 options: ImportOptions, report: ImportReport, max_errors: int, pool: FilePool,
                 on_error: Callable[[LineError], None] | None = None) -> None:
    """Import ``lines``, ``batch_size`` at a time: each batch prepared (:func:`_prepare_lines`),
    then written in its transaction (:func:`_write_prepared`).

    On PostgreSQL, outside a caller's transaction, a thread prepares the next batch (on its
    own connection, in autocommit) while this one writes the current one, so the file
    workers, this process and the database work at the same time. The transaction never
    waits for a file: it opens once its batch is prepared and holds no lock the preparing
    thread needs. Should reading the next batch fail, the current one is written first, so
    what commits is what the sequential order commits. Elsewhere the batches go one by one.
    """
    def prepare(batch: list) -> tuple[list[tuple[int, PreparedLine]], Tally]:
        return _prepare_lines(batch, dataset=dataset, options=options, run=report.run, pool=pool)

    statistics = _Statistics()

    def write(batch: list, prepared: tuple[list[tuple[int, PreparedLine]], Tally]) -> None:
        _write_prepared(*prepared, dataset=dataset, options=options, report=report, max_errors=max_errors,
                        on_error=on_error)
        statistics.after_batch(report.imported)

    if connection.vendor != "postgresql" or connection.in_atomic_block:
        while batch := list(islice(lines, batch_size)):
            write(batch, prepare(batch))
        return
    pool.start()  # forked here, not from the preparing thread
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-prepare") as helper:
        try:
            batch = list(islice(lines, batch_size))
            future = helper.submit(prepare, batch) if batch else None
            while future is not None:
                prepared = future.result()
                try:
                    following = list(islice(lines, batch_size))
                except BaseException:
                    write(batch, prepared)
                    raise
                future = helper.submit(prepare, following) if following else None
                write(batch, prepared)
                batch = following
        finally:
            helper.submit(connections.close_all).result()  # the preparing thread's connection


class _Statistics:
    """``ANALYZE`` of the tables an import grows, on PostgreSQL, once the import has added
    :data:`ANALYZE_FIRST_AT` lines and then each time it has doubled them: without fresh
    statistics (autovacuum off or behind) the planner keeps the plans of small tables and
    each batch's lookups scan whole tables, a cost that grows with the dataset. A few
    ANALYZE per import, each a sample of the tables, outside the batches' transactions."""

    def __init__(self) -> None:
        self.next_at = ANALYZE_FIRST_AT

    def after_batch(self, imported: int) -> None:
        if imported < self.next_at or connection.vendor != "postgresql" or connection.in_atomic_block:
            return
        self.next_at = 2 * imported
        tables = ", ".join(connection.ops.quote_name(model._meta.db_table) for model in (Image, Annotation, Triplet, Element))
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {tables}")


def _write_prepared(ready: list[tuple[int, PreparedLine]], failed: Tally, *, dataset: Dataset, options: ImportOptions,
                    report: ImportReport, max_errors: int, on_error: Callable[[LineError], None] | None = None) -> None:
    """Write a prepared batch in one transaction, with the run's counters.

    Fast path (:func:`write_batch`): the new image rows in one insert, the annotations
    together at the end. Should that write fail (a concurrent writer, a constraint, a
    review made in the app meanwhile, any error), the batch is rolled back and written
    again line by line, so only the lines at fault are reported and nothing else is lost.
    ``on_error`` gets the batch's failed lines once the batch is committed.
    """
    try:
        with transaction.atomic():
            tally = write_batch(ready, failed, dataset=dataset, options=options, run=report.run)
            counters = _save_counters(report, tally)
    except Exception as exc:  # logged; the batch is written again line by line
        log = logger.info if isinstance(exc, AppWorkAppeared) else logger.warning
        log("import run %s: the batch write failed (%s); writing the batch again line by line", report.run.pk,
            type(exc).__name__, exc_info=not isinstance(exc, AppWorkAppeared))
        with transaction.atomic():
            tally = write_lines(ready, failed, dataset=dataset, options=options, run=report.run)
            counters = _save_counters(report, tally)
    _record(report, tally, counters, max_errors)
    if tally.late:
        _drop_unused_files(ready, tally.late, dataset=dataset)
    if on_error is not None:
        for error in tally.errors:
            on_error(error)


def _drop_unused_files(ready: list[tuple[int, PreparedLine]], late: frozenset[str], *, dataset: Dataset) -> None:
    """Delete the files this batch wrote for a content whose row turned out to hold other
    names (stored meanwhile by the batch before or by another import, under another name),
    as :func:`~annotations.image_services.image_store` does when it loses that race."""
    ours = {line.candidate.sha256: line.candidate.files for _, line in ready
            if line.candidate.files and line.candidate.sha256 in late}
    if not ours:
        return
    storage = Image._meta.get_field("file").storage
    rows = Image.objects.filter(dataset=dataset, sha256__in=list(ours)).values_list("sha256", "file", "thumbnail")
    for sha, *kept in rows:
        for name, kept_name in zip(ours[sha], kept):
            if name != kept_name:
                storage.delete(name)


def _save_counters(report: ImportReport, tally: Tally) -> dict[str, Any]:
    """Write the run's counters after this batch, inside the batch's transaction (so they
    commit with its lines); the objects in memory change only once it has committed."""
    run = report.run
    room = max(0, ERRORS_KEPT_ON_RUN - len(run.errors))
    counters = {
        "imported": report.imported + tally.imported,
        "duplicates": report.duplicates + tally.duplicates,
        "failed": report.failed + tally.failed,
        "errors": run.errors + [error.as_dict() for error in tally.errors[:room]],
    }
    ImportRun.objects.filter(pk=run.pk).update(**counters)
    return counters


def _record(report: ImportReport, tally: Tally, counters: dict[str, Any], max_errors: int) -> None:
    """Add a committed batch to the report and to the run object."""
    for name, value in counters.items():
        setattr(report.run, name, value)
    report.imported += tally.imported
    report.duplicates += tally.duplicates
    report.failed += tally.failed
    report.images_created += tally.images_created
    report.annotations_created += tally.annotations_created
    report.errors += tally.errors[: max(0, max_errors - len(report.errors))]


def import_emoverse_jsonl(
    *,
    stream: BinaryIO,
    images_dir: Path | str,
    dataset_slug: str,
    run_by: str,
    file_name: str = "",
    approved: bool = False,
    source_default: str = ImageSource.WEB,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_errors: int = 1000,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_error: Callable[[LineError], None] | None = None,
    taxonomy: Any = None,
) -> ImportReport:
    """Import an EmoVerse JSONL stream (opened in binary mode) into ``dataset_slug``.

    The dataset is created if needed. Every ``batch_size`` lines are committed
    together with the :class:`ImportRun` counters, so an interrupted import keeps
    the batches before the interruption and a re-run skips them as duplicates.
    Raises :class:`ValueError` for bad arguments; bad lines are reported, not raised:
    the first ``max_errors`` in the report, every one to ``on_error`` (in line
    order, as each batch commits: a caller can stream them to a file). Once the
    import commits, :data:`annotations.signals.import_finished` is sent, so a worker
    embeds the new phrases. ``taxonomy`` (a built-in name or an object, docs/taxonomies.md)
    is the emotion taxonomy of a dataset created here; an existing dataset must have it.
    The lines' emotion words go through the dataset's synonym map; a word that is neither a
    label nor a synonym fails its line, never guessed.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise ValueError(f"--images-dir {images_dir} is not a directory")
    if source_default not in ImageSource.values:
        raise ValueError(f"unknown default source {source_default!r}; expected one of {', '.join(ImageSource.values)}")
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    try:
        dataset, _ = dataset_get_or_create(slug=dataset_slug, taxonomy=taxonomy)
    except InvalidAnnotation as exc:
        raise ValueError(str(exc)) from exc
    options = ImportOptions(
        images_dir=Path(os.path.realpath(root)), approved=approved, source_default=source_default,
        max_line_bytes=max_line_bytes, taxonomy=dataset.get_taxonomy(),
    )
    run = ImportRun.objects.create(dataset=dataset, file_name=file_name[:500], approved=approved, run_by=run_by[:150])
    report = ImportReport(run=run)
    lines = iter_lines(stream, max_line_bytes=max_line_bytes)
    try:
        with FilePool() as pool:
            _run_batches(lines, batch_size=batch_size, dataset=dataset, options=options, report=report,
                         max_errors=max_errors, pool=pool, on_error=on_error)
    finally:
        run.finished_at = timezone.now()
        run.save(update_fields=["finished_at"])
    if report.imported:  # a worker embeds the new phrases (``annotations.signals``)
        transaction.on_commit(lambda: import_finished.send(sender=ImportRun, import_run_id=run.pk))
    return report
