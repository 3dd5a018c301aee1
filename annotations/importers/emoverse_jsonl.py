"""Streaming import of EmoVerse JSONL (the format is documented in docs/emoverse-jsonl.md).

The file is read one line at a time and committed in batches: one transaction per
``batch_size`` lines. A bad line leaves no row behind and never costs the good lines
around it. Memory does not grow with the file.

A batch is prepared before its transaction opens (no lock held):
:func:`~annotations.importers.emoverse_parse.parse_line` (JSON, keys, annotator,
source, critic, storable text; no file access); then the file work, in worker
processes with a time limit per file (:mod:`annotations.importers.file_workers`):
the path confined to the images folder, only a regular file within a size limit,
its content hash, and for content the dataset does not hold yet the Pillow checks
and the stored files; then the annotation values, validated against the image size
by :func:`annotations.validation.validate_annotation` (:func:`prepare_line`). Then
one short transaction writes the rows (:func:`_write_batch`: new images in one
insert, annotations in a fixed number of queries). Should that fail, the batch is
written again line by line, one savepoint per line (:func:`write_line`). An import
never replaces a version made in the app (a person's review): such a line fails.
Whatever else goes wrong with a line, even an unforeseen exception, fails that line
only, with its reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from annotations.domain import PIPELINE_AUTHOR
from annotations.errors import DomainError, InvalidAnnotation, InvalidImage
from annotations.image_services import ImageCandidate, image_store
from annotations.importers.copy_write import annotations_write
from annotations.importers.file_workers import FilePool, Found, unique
from annotations.importers.line_checks import Outcome
from annotations.importers.emoverse_parse import (
    Annotator,
    BadLine,
    ImportOptions,
    ParsedLine,
    parse_line,
)
from annotations.importers.lines import DEFAULT_MAX_LINE_BYTES, iter_lines
from annotations.importers.routing import image_route_imported, images_route_imported
from annotations.models import (
    Annotation,
    AnnotationKind,
    Dataset,
    Decision,
    Image,
    ImageSource,
    ImageStatus,
    ImportRun,
)
from annotations.services import NewAnnotation, dataset_get_or_create
from annotations.signals import import_finished
from annotations.validation import AnnotationInput

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
ERRORS_KEPT_ON_RUN = 100  # ImportRun.errors: the first failed lines
MAX_UNEXPECTED_MESSAGE = 500  # characters of an unforeseen exception's message kept in the reason


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


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


# --- one line ---------------------------------------------------------------------


AuthorKey = tuple[int, str, str]  # (image id, annotation kind, author name): one current version each


@dataclass(frozen=True)
class _Current:
    """The current version of one author's annotation of an image, as far as an import cares."""

    fingerprint: str | None  # set on versions written by an import
    made_in_app: bool  # written in the app (a review, an adjudication, the pipeline), not by an import


def _made_in_app(extra: Any, import_run_id: int | None, author_user_id: int | None) -> bool:
    """Imports link their run (``import_run``, cleared if the run is deleted) and leave their
    fingerprint in ``extra``; work done in the app has neither, and a person's has ``author_user``."""
    from_import = import_run_id is not None or (isinstance(extra, dict) and "import_fingerprint" in extra)
    return author_user_id is not None or not from_import


def _current_versions(keys: set[AuthorKey]) -> dict[AuthorKey, _Current]:
    """The current version of each (image, kind, author) of ``keys`` that has one (one query)."""
    if not keys:
        return {}
    rows = Annotation.objects.filter(image_id__in={image_id for image_id, _, _ in keys}, is_current=True).values_list(
        "image_id", "kind", "author_name", "extra", "import_run_id", "author_user_id"
    )
    found = {}
    for image_id, kind, author, extra, run_id, user_id in rows:
        if (image_id, kind, author) in keys:
            fingerprint = extra.get("import_fingerprint") if isinstance(extra, dict) else None
            found[(image_id, kind, author)] = _Current(fingerprint, _made_in_app(extra, run_id, user_id))
    return found


def _key(image_id: int, annotator: Annotator) -> AuthorKey:
    return (image_id, annotator.kind, annotator.name)


def _replaces_app_work(kind: str, author: str) -> str:
    """The reason a line fails whose annotator already has a current version made in the app."""
    what = "a review" if kind == AnnotationKind.HUMAN else f"a {kind} annotation"
    return f"image already has {what} by {author} made in this app; an import never replaces it (import under another annotator name)"


def _lock_images(image_ids: list[int]) -> None:
    """``SELECT … FOR UPDATE`` the images, in id order (as :func:`~annotations.services.annotation_bulk_create` and
    the review services do): nobody adds a version to them until this transaction ends."""
    list(Image.objects.select_for_update().filter(pk__in=sorted(image_ids)).order_by("pk").values_list("pk", flat=True))


@dataclass
class _Batch:
    """What a batch has prepared but not yet written: the annotations go in with one
    :func:`~annotations.importers.copy_write.annotations_write`, the routing once per image, at the end of the batch."""

    new: list[NewAnnotation] = field(default_factory=list)
    fingerprints: dict[AuthorKey, str] = field(default_factory=dict)  # newest pending per author
    images: dict[int, Image] = field(default_factory=dict)  # to route, in first-seen order


class _AppWorkAppeared(DomainError):
    """Work made in the app appeared, for an author of the batch, after the line's check."""


def _model_raw_distribution(annotator: Annotator, annotation: AnnotationInput) -> dict[str, float] | None:
    """A model annotator's distribution is its own output, never scaled by this app's
    temperatures: stored as the raw distribution that recalibration fits on. The merged
    pipeline answer and people's labels have none."""
    if annotator.kind != AnnotationKind.MODEL or annotator.name == PIPELINE_AUTHOR or annotation.ces is None:
        return None
    return annotation.ces.distribution


@dataclass(frozen=True)
class PreparedLine:
    """A line checked, and its image read, checked and (when new) its files written:
    everything :func:`write_line` needs, without the pixels."""

    parsed: ParsedLine
    candidate: ImageCandidate
    annotation: AnnotationInput | None  # None: an image-only line
    fingerprint: str | None


def _named(name: str, exc: Exception) -> Exception:
    """A file's error for the lines that name it: an image error starts with the image's name."""
    return InvalidImage(f"{name}: {exc}") if isinstance(exc, InvalidImage) else exc


def _new_annotation(line: PreparedLine, image: Image, *, options: ImportOptions, run: ImportRun) -> NewAnnotation:
    """The annotation a prepared line adds to ``image``."""
    annotator, annotation = line.parsed.annotator, line.annotation
    extra: dict[str, Any] = {"import_fingerprint": line.fingerprint}
    if annotator.given is not None and options.approved:
        extra["annotator"] = annotator.given
    return NewAnnotation(
        image=image, data=annotation, kind=annotator.kind, author_name=annotator.name,
        decision=Decision.APPROVED if options.approved else Decision.NONE,
        decision_reason=f"imported as approved by {run.run_by} (import run {run.pk})" if options.approved else "",
        prompt_version=annotator.prompt_version, pipeline_version=annotator.pipeline_version,
        raw_output=annotator.raw_output, raw_distribution=_model_raw_distribution(annotator, annotation),
        critic=line.parsed.critic, extra=extra, import_run=run,
    )


def write_line(
    line: PreparedLine, *, dataset: Dataset, options: ImportOptions, run: ImportRun
) -> tuple[bool, bool, bool]:
    """Write one prepared line: ``(added_something, image_created, annotation_created)``
    (the slow path, when the batch's write failed; :func:`_write_batch` decides the same way).

    Call inside a savepoint: the checks that need the database's current state come
    before the first write, and a failed write rolls back the line. The image is locked,
    checked and everything written now. An import never replaces a version made in the
    app (a person's review): the line fails with :class:`BadLine`.
    """
    parsed, candidate, annotation, fingerprint = line.parsed, line.candidate, line.annotation, line.fingerprint
    if candidate.existing is None:  # stored since the line was prepared (an earlier line, another import)?
        existing = Image.objects.filter(dataset=dataset, sha256=candidate.sha256).first()
        candidate = replace(candidate, existing=existing) if existing is not None else candidate
    if annotation is not None and candidate.existing is not None:
        key = _key(candidate.existing.pk, parsed.annotator)
        _lock_images([candidate.existing.pk])
        current = _current_versions({key}).get(key)
        if current is not None and current.made_in_app:
            raise BadLine(_replaces_app_work(parsed.annotator.kind, parsed.annotator.name))
        if current is not None and current.fingerprint == fingerprint:
            return False, False, False
    image, created = image_store(dataset=dataset, candidate=candidate, original_name=parsed.image, source=parsed.source)
    if annotation is None:
        return created, created, False
    annotations_write(items=[_new_annotation(line, image, options=options, run=run)])
    image_route_imported(image=image, approved=options.approved)
    return True, created, True


def _flush(batch: _Batch, *, approved: bool) -> None:
    """Write the batch's annotations. The lines were checked unlocked; checked again here with
    the images locked, a version made in the app since raises :class:`_AppWorkAppeared`."""
    if batch.new:
        _lock_images(list(batch.images))
        keys = {(item.image.pk, item.kind, item.author_name) for item in batch.new}
        if any(current.made_in_app for current in _current_versions(keys).values()):
            raise _AppWorkAppeared("a version made in the app appeared while the batch was prepared")
    annotations_write(items=batch.new)
    images_route_imported(images=list(batch.images.values()), approved=approved)


# --- the whole file -----------------------------------------------------------------


def _reason(exc: Exception) -> str:
    if isinstance(exc, InvalidAnnotation):
        reason = f"{exc.field}: {exc.message}"
    elif isinstance(exc, DatabaseError):
        reason = f"the database refused the line ({type(exc).__name__}: {exc})"
    elif isinstance(exc, DomainError):
        reason = str(exc)
    else:
        reason = f"unexpected error ({type(exc).__name__}: {str(exc)[:MAX_UNEXPECTED_MESSAGE]})"
    return reason.encode("utf-8", "backslashreplace").decode("utf-8")  # printable, storable


@dataclass
class _Tally:
    imported: int = 0
    duplicates: int = 0
    failed: int = 0
    images_created: int = 0
    annotations_created: int = 0
    errors: list[LineError] = field(default_factory=list)
    late: frozenset[str] = frozenset()  # new contents found stored at the write (files maybe unused)


def _fail(tally: _Tally, number: int, exc: Exception, run: ImportRun) -> None:
    """Count and report a failed line; log an unforeseen exception with its traceback."""
    if not isinstance(exc, (DomainError, DatabaseError)):  # raised here or in a file worker
        logger.error("import run %s: line %s: unexpected error", run.pk, number, exc_info=exc)
    tally.failed += 1
    tally.errors.append(LineError(number, _reason(exc)))


def _prepare_lines(lines: list[tuple[int, bytes | None]], *, dataset: Dataset, options: ImportOptions,
                   run: ImportRun, pool: FilePool) -> tuple[list[tuple[int, PreparedLine]], _Tally]:
    """Parse each line, do its file work and its checks in ``pool`` (:mod:`.line_checks`), with
    no transaction open: the lines ready to write, and a tally of those that failed.

    Each file named is found, read and hashed once (``find``); one query tells the contents
    the dataset holds; then one task per content checks its lines (and for a new content its
    pixels, and writes its files once a line passed)."""
    parsed, failed = [], _Tally()
    for number, raw in lines:
        try:
            if raw is None:
                raise BadLine(f"line longer than the limit of {options.max_line_bytes:,} bytes")
            parsed.append((number, parse_line(raw, options)))
        except Exception as exc:  # recorded: counted, reported for its line, logged if unforeseen
            _fail(failed, number, exc, run)
    names = unique(line.image for _, line in parsed)
    found: dict[str, Found | Exception] = {}
    for name, (ok, value) in zip(names, pool.run("find", [(options.images_dir, name) for name in names])):
        found[name] = value if ok else _named(name, value)
    groups: dict[str, list[tuple[int, ParsedLine]]] = {}  # sha256 -> its lines, in first-seen order
    first_found: dict[str, Found] = {}
    for number, line in parsed:
        f = found[line.image]
        if isinstance(f, Exception):
            _fail(failed, number, f, run)
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
                _fail(failed, number, _named(line.image, result), run)
            elif not candidate[0]:  # the files could not be written
                _fail(failed, number, _named(line.image, candidate[1]), run)
            else:
                ready.append((number, PreparedLine(line, candidate[1], *result)))
    ready.sort(key=lambda item: item[0])
    return ready, failed


def _run(pool: FilePool, operation: str, tasks: list[tuple]) -> list[tuple[bool, Any]]:
    return pool.run(operation, tasks) if tasks else []


def _write_batch(ready: list[tuple[int, PreparedLine]], failed: _Tally, *, dataset: Dataset, options: ImportOptions,
                 run: ImportRun) -> _Tally:
    """The fast write of a prepared batch, in the caller's transaction: the new images in one
    insert, the current versions of the lines' authors in one query, the annotations and the
    routing at the end (:func:`_flush`). The same decisions as :func:`write_line` line by line:
    a line whose author has a version made in the app fails; the same values from the same
    annotator are a duplicate. Any database error propagates: the caller writes the batch again
    line by line."""
    tally = replace(failed, errors=list(failed.errors))
    images: dict[str, Image] = {line.candidate.sha256: line.candidate.existing for _, line in ready
                                if line.candidate.existing is not None}
    unseen = unique(line.candidate.sha256 for _, line in ready if line.candidate.sha256 not in images)
    if unseen:  # stored since the lines were prepared (the batch before, another import)
        images.update((image.sha256, image) for image in Image.objects.filter(dataset=dataset, sha256__in=unseen))
        tally.late = frozenset(sha for sha in unseen if sha in images)
    created: dict[str, Image] = {}
    for _, line in ready:
        candidate = line.candidate
        if candidate.sha256 not in images and candidate.sha256 not in created:
            file_name, thumbnail_name = candidate.files
            created[candidate.sha256] = Image(
                dataset=dataset, sha256=candidate.sha256, original_name=line.parsed.image[:500], width=candidate.width,
                height=candidate.height, source=line.parsed.source, status=ImageStatus.NEW, file=file_name,
                thumbnail=thumbnail_name,
            )
    Image.objects.bulk_create(list(created.values()))
    keys = {_key(images[line.candidate.sha256].pk, line.parsed.annotator) for _, line in ready
            if line.annotation is not None and line.candidate.sha256 in images}
    currents = _current_versions(keys)
    images.update(created)
    batch, first_lines = _Batch(), set()
    for number, line in ready:
        sha = line.candidate.sha256
        image_created = sha in created and sha not in first_lines
        first_lines.add(sha)
        try:
            added = _batch_line(line, images[sha], image_created, currents, batch, options=options, run=run)
        except DomainError as exc:
            _fail(tally, number, exc, run)
            continue
        tally.imported += added
        tally.duplicates += not added
        tally.images_created += image_created
        tally.annotations_created += added and line.annotation is not None
    _flush(batch, approved=options.approved)
    tally.errors.sort(key=lambda error: error.line)
    return tally


def _batch_line(line: PreparedLine, image: Image, image_created: bool, currents: dict[AuthorKey, _Current],
                batch: _Batch, *, options: ImportOptions, run: ImportRun) -> bool:
    """Decide one line of :func:`_write_batch`: whether it adds something (its annotation goes
    to ``batch``). Raises :class:`BadLine` when its author has a version made in the app."""
    if line.annotation is None:
        return image_created
    key = _key(image.pk, line.parsed.annotator)
    if key in batch.fingerprints:  # an earlier line of this batch
        current = _Current(batch.fingerprints[key], made_in_app=False)
    else:
        current = currents.get(key)
    if current is not None and current.made_in_app:
        raise BadLine(_replaces_app_work(line.parsed.annotator.kind, line.parsed.annotator.name))
    if current is not None and current.fingerprint == line.fingerprint:
        return False
    batch.new.append(_new_annotation(line, image, options=options, run=run))
    batch.fingerprints[key] = line.fingerprint
    batch.images.setdefault(image.pk, image)
    return True


def _write_lines(ready: list[tuple[int, PreparedLine]], failed: _Tally, *, dataset: Dataset, options: ImportOptions,
                 run: ImportRun) -> _Tally:
    """Each line in its own savepoint; a line that fails, for whatever reason, is counted and
    reported and costs nothing else. The tally starts from the lines that failed to prepare."""
    tally = replace(failed, errors=list(failed.errors),
                    late=frozenset(line.candidate.sha256 for _, line in ready if line.candidate.files))
    for number, line in ready:
        try:
            with transaction.atomic():
                added, image_created, annotation_created = write_line(line, dataset=dataset, options=options, run=run)
        except Exception as exc:  # recorded: counted, reported for its line, logged if unforeseen
            _fail(tally, number, exc, run)
            continue
        tally.imported += added
        tally.duplicates += not added
        tally.images_created += image_created
        tally.annotations_created += annotation_created
    tally.errors.sort(key=lambda error: error.line)
    return tally


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
    def prepare(batch: list) -> tuple[list[tuple[int, PreparedLine]], _Tally]:
        return _prepare_lines(batch, dataset=dataset, options=options, run=report.run, pool=pool)

    def write(batch: list, prepared: tuple[list[tuple[int, PreparedLine]], _Tally]) -> None:
        _write_prepared(*prepared, dataset=dataset, options=options, report=report, max_errors=max_errors,
                        on_error=on_error)

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


def _write_prepared(ready: list[tuple[int, PreparedLine]], failed: _Tally, *, dataset: Dataset, options: ImportOptions,
                    report: ImportReport, max_errors: int, on_error: Callable[[LineError], None] | None = None) -> None:
    """Write a prepared batch in one transaction, with the run's counters.

    Fast path (:func:`_write_batch`): the new image rows in one insert, the annotations
    together at the end. Should that write fail (a concurrent writer, a constraint, a
    review made in the app meanwhile, any error), the batch is rolled back and written
    again line by line, so only the lines at fault are reported and nothing else is lost.
    ``on_error`` gets the batch's failed lines once the batch is committed.
    """
    try:
        with transaction.atomic():
            tally = _write_batch(ready, failed, dataset=dataset, options=options, run=report.run)
            counters = _save_counters(report, tally)
    except Exception as exc:  # logged; the batch is written again line by line
        log = logger.info if isinstance(exc, _AppWorkAppeared) else logger.warning
        log("import run %s: the batch write failed (%s); writing the batch again line by line", report.run.pk,
            type(exc).__name__, exc_info=not isinstance(exc, _AppWorkAppeared))
        with transaction.atomic():
            tally = _write_lines(ready, failed, dataset=dataset, options=options, run=report.run)
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


def _save_counters(report: ImportReport, tally: _Tally) -> dict[str, Any]:
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


def _record(report: ImportReport, tally: _Tally, counters: dict[str, Any], max_errors: int) -> None:
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
