"""Writing a prepared batch of EmoVerse JSONL lines, in the caller's transaction.

:func:`write_batch` is the fast way: the new images in one insert, the current versions
of the lines' authors in one query, the annotations (:func:`~.copy_write.annotations_write`)
and the routing once at the end (:func:`_flush`). Should it fail, the caller writes the
batch again with :func:`write_lines`: one savepoint per line (:func:`write_line`), so only
the lines at fault fail. Both decide the same way: a line whose author has a version made
in the app fails (an import never replaces a person's review); the same values from the
same annotator are a duplicate; anything else that goes wrong fails that line only, with
its reason (:func:`fail`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import DatabaseError, transaction

from annotations.domain import PIPELINE_AUTHOR
from annotations.errors import DomainError, InvalidAnnotation, InvalidImage
from annotations.image_services import ImageCandidate, image_store
from annotations.importers.copy_write import annotations_write, images_write
from annotations.importers.emoverse_parse import Annotator, BadLine, ImportOptions, ParsedLine
from annotations.importers.file_workers import unique
from annotations.importers.routing import image_route_imported, images_route_imported
from annotations.models import Annotation, AnnotationKind, Dataset, Decision, Image, ImageStatus, ImportRun
from annotations.services import NewAnnotation
from annotations.importers.lines import LineError
from annotations.validation import AnnotationInput

logger = logging.getLogger("annotations.importers.emoverse_jsonl")  # the importer's one log

MAX_UNEXPECTED_MESSAGE = 500  # characters of an unforeseen exception's message kept in the reason



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


class AppWorkAppeared(DomainError):
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


def named(name: str, exc: Exception) -> Exception:
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
    (the slow path, when the batch's write failed; :func:`write_batch` decides the same way).

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
    annotations_write(items=[_new_annotation(line, image, options=options, run=run)], json_checked=True)
    image_route_imported(image=image, approved=options.approved)
    return True, created, True


def _flush(batch: _Batch, created: set[int], *, approved: bool) -> None:
    """Write the batch's annotations. The lines were checked unlocked; checked again here with
    the images locked, a version made in the app since raises :class:`AppWorkAppeared`. The
    images ``created`` by this batch's transaction need neither: no one else sees them before it
    commits; the routing takes their answers from the batch itself."""
    if batch.new:
        _lock_images([pk for pk in batch.images if pk not in created])
        keys = {(item.image.pk, item.kind, item.author_name) for item in batch.new if item.image.pk not in created}
        if any(current.made_in_app for current in _current_versions(keys).values()):
            raise AppWorkAppeared("a version made in the app appeared while the batch was prepared")
    annotations_write(items=batch.new, json_checked=True)
    written: dict[int, list[NewAnnotation]] = {}
    for item in batch.new:
        if item.image.pk in created:
            written.setdefault(item.image.pk, []).append(item)
    images_route_imported(images=list(batch.images.values()), approved=approved, written=written)


def reason(exc: Exception) -> str:
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
class Tally:
    imported: int = 0
    duplicates: int = 0
    failed: int = 0
    images_created: int = 0
    annotations_created: int = 0
    errors: list[LineError] = field(default_factory=list)
    late: frozenset[str] = frozenset()  # new contents found stored at the write (files maybe unused)


def fail(tally: Tally, number: int, exc: Exception, run: ImportRun) -> None:
    """Count and report a failed line; log an unforeseen exception with its traceback."""
    if not isinstance(exc, (DomainError, DatabaseError)):  # raised here or in a file worker
        logger.error("import run %s: line %s: unexpected error", run.pk, number, exc_info=exc)
    tally.failed += 1
    tally.errors.append(LineError(number, reason(exc)))


def write_batch(ready: list[tuple[int, PreparedLine]], failed: Tally, *, dataset: Dataset, options: ImportOptions,
                 run: ImportRun) -> Tally:
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
    images_write(images=list(created.values()))
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
            fail(tally, number, exc, run)
            continue
        tally.imported += added
        tally.duplicates += not added
        tally.images_created += image_created
        tally.annotations_created += added and line.annotation is not None
    _flush(batch, {image.pk for image in created.values()}, approved=options.approved)
    tally.errors.sort(key=lambda error: error.line)
    return tally


def _batch_line(line: PreparedLine, image: Image, image_created: bool, currents: dict[AuthorKey, _Current],
                batch: _Batch, *, options: ImportOptions, run: ImportRun) -> bool:
    """Decide one line of :func:`write_batch`: whether it adds something (its annotation goes
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


def write_lines(ready: list[tuple[int, PreparedLine]], failed: Tally, *, dataset: Dataset, options: ImportOptions,
                 run: ImportRun) -> Tally:
    """Each line in its own savepoint; a line that fails, for whatever reason, is counted and
    reported and costs nothing else. The tally starts from the lines that failed to prepare."""
    tally = replace(failed, errors=list(failed.errors),
                    late=frozenset(line.candidate.sha256 for _, line in ready if line.candidate.files))
    for number, line in ready:
        try:
            with transaction.atomic():
                added, image_created, annotation_created = write_line(line, dataset=dataset, options=options, run=run)
        except Exception as exc:  # recorded: counted, reported for its line, logged if unforeseen
            fail(tally, number, exc, run)
            continue
        tally.imported += added
        tally.duplicates += not added
        tally.images_created += image_created
        tally.annotations_created += annotation_created
    tally.errors.sort(key=lambda error: error.line)
    return tally
