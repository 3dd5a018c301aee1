"""Streaming import of EmoVerse JSONL (the format is documented in docs/emoverse-jsonl.md).

The file is read one line at a time and committed in batches: one transaction per
``batch_size`` lines, one savepoint per line, so a bad line leaves no row behind
and never costs the good lines around it. Memory does not grow with the file.

A line goes through three steps: :func:`parse_line` (JSON, keys, annotator,
source, critic; no file access), then the image (path confined to the images
folder, content hash, Pillow checks) and the annotation values, validated
against the stored image size by :func:`annotations.validation.validate_annotation`;
only then anything is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO

from django.db import DatabaseError, transaction
from django.utils import timezone

from annotations.domain import EMOTIONS, ROLES
from annotations.errors import DomainError, InvalidAnnotation, InvalidImage
from annotations.importers.lines import DEFAULT_MAX_LINE_BYTES, iter_lines
from annotations.importers.routing import image_route_imported, images_route_imported
from annotations.models import (
    Annotation,
    AnnotationKind,
    Dataset,
    Decision,
    Image,
    ImageSource,
    ImportRun,
)
from annotations.services import NewAnnotation, annotation_bulk_create, dataset_get_or_create
from annotations.services_images import (
    image_find_or_prepare,
    image_store,
    read_image_file,
)
from annotations.validation import AnnotationInput, validate_annotation

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
ERRORS_KEPT_ON_RUN = 100  # ImportRun.errors: the first failed lines
ANNOTATION_KEYS = ("triplets", "ces", "des", "rationale", "critic")
METADATA_KEYS = ("width", "height", "sha256")  # written by exports; checked when present
KNOWN_KEYS = frozenset({"image", "source", "annotator", *ANNOTATION_KEYS, *METADATA_KEYS})
ANNOTATOR_KINDS = {"model": AnnotationKind.MODEL, "human": AnnotationKind.HUMAN}
ANNOTATOR_KEYS = frozenset({"kind", "name", "prompt_version", "pipeline_version", "raw_output"})
VERDICTS = ("ok", "doubtful", "wrong")
APPROVED_AUTHOR = "import"  # author of --approved lines that name no annotator


class BadLine(DomainError):
    """A line that cannot be imported; the message is the reason shown to the user."""


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


@dataclass(frozen=True)
class Annotator:
    kind: str  # an AnnotationKind value
    name: str
    prompt_version: str = ""
    pipeline_version: str = ""
    raw_output: str = ""
    given: Mapping[str, Any] | None = None  # the annotator object as written in the file


@dataclass(frozen=True)
class ParsedLine:
    data: Mapping[str, Any]
    image: str
    source: str
    annotator: Annotator | None  # None: an image-only line
    critic: dict | None


@dataclass(frozen=True)
class ImportOptions:
    images_dir: Path  # resolved
    approved: bool = False
    source_default: str = ImageSource.WEB
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES


# --- parsing (no files, no database) ---------------------------------------------


def _text(value: Any, name: str, max_length: int | None = None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadLine(f"{name}: must be a string")
    if max_length is not None and len(value) > max_length:
        raise BadLine(f"{name}: longer than {max_length} characters")
    return value


def parse_annotator(value: Any, *, approved: bool) -> Annotator:
    """The ``annotator`` object; optional with ``--approved`` (the author is then ``import``)."""
    if value is None:
        if approved:
            return Annotator(kind=AnnotationKind.IMPORT, name=APPROVED_AUTHOR)
        raise BadLine('annotator: required ({"kind": "model" or "human", "name": ...}) unless importing with --approved')
    if not isinstance(value, Mapping):
        raise BadLine("annotator: must be an object with kind and name")
    unknown = sorted(set(value) - ANNOTATOR_KEYS)
    if unknown:
        raise BadLine(f"annotator: unknown key(s) {', '.join(unknown)}")
    kind = value.get("kind")
    if kind not in ANNOTATOR_KINDS:
        raise BadLine(f"annotator.kind: must be 'model' or 'human', got {kind!r}")
    name = _text(value.get("name"), "annotator.name", 150).strip()
    if not name:
        raise BadLine("annotator.name: must be a non-empty string")
    return Annotator(
        kind=AnnotationKind.IMPORT if approved else ANNOTATOR_KINDS[kind],
        name=name,
        prompt_version=_text(value.get("prompt_version"), "annotator.prompt_version", 64),
        pipeline_version=_text(value.get("pipeline_version"), "annotator.pipeline_version", 64),
        raw_output=_text(value.get("raw_output"), "annotator.raw_output"),
        given=dict(value),
    )


def validate_critic(value: Any, n_triplets: int) -> dict:
    """The critic's verdicts: ``elements`` (triplet_index, role, verdict, reasoning), ``label_verdict``, reasoning."""
    if not isinstance(value, Mapping):
        raise BadLine("critic: must be an object")
    elements = value.get("elements", [])
    if not isinstance(elements, list):
        raise BadLine("critic.elements: must be a list")
    for i, item in enumerate(elements):
        where = f"critic.elements[{i}]"
        if not isinstance(item, Mapping):
            raise BadLine(f"{where}: must be an object")
        index = item.get("triplet_index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n_triplets:
            raise BadLine(f"{where}.triplet_index: must be an index into the line's {n_triplets} triplet(s), got {index!r}")
        if item.get("role") not in ROLES:
            raise BadLine(f"{where}.role: must be one of {', '.join(ROLES)}, got {item.get('role')!r}")
        if item.get("verdict") not in VERDICTS:
            raise BadLine(f"{where}.verdict: must be one of {', '.join(VERDICTS)}, got {item.get('verdict')!r}")
        _text(item.get("reasoning"), f"{where}.reasoning")
    if value.get("label_verdict") is not None and value["label_verdict"] not in VERDICTS:
        raise BadLine(f"critic.label_verdict: must be one of {', '.join(VERDICTS)}, got {value['label_verdict']!r}")
    suggested = value.get("suggested_label")
    if suggested is not None and suggested not in EMOTIONS:
        raise BadLine(f"critic.suggested_label: unknown emotion {suggested!r}")
    for key in ("label_reasoning", "reasoning"):
        _text(value.get(key), f"critic.{key}")
    return dict(value)


def parse_line(raw: bytes, options: ImportOptions) -> ParsedLine:
    """JSON and the keys that need no image: raises :class:`BadLine`."""
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise BadLine(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise BadLine(f"malformed JSON: {exc.msg} (column {exc.colno})") from exc
    except RecursionError as exc:
        raise BadLine("malformed JSON: nested too deeply") from exc
    if not isinstance(data, dict):
        raise BadLine(f"not a JSON object (got {type(data).__name__})")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise BadLine(f"unknown key(s) {', '.join(map(repr, unknown))}; see docs/emoverse-jsonl.md")
    if "image" not in data:
        raise BadLine('missing "image" (the image path, relative to --images-dir)')
    image = data["image"]
    if not isinstance(image, str) or not image.strip():
        raise BadLine("image: must be a non-empty relative path")
    source = data.get("source", options.source_default)
    if source not in ImageSource.values:
        raise BadLine(f"unknown source {source!r}; expected one of {', '.join(ImageSource.values)}")
    has_annotation = any(data.get(key) is not None for key in ANNOTATION_KEYS)
    annotator = parse_annotator(data.get("annotator"), approved=options.approved) if has_annotation else None
    critic = data.get("critic")
    if critic is not None:
        triplets = data.get("triplets")
        critic = validate_critic(critic, len(triplets) if isinstance(triplets, list) else 0)
    return ParsedLine(data=data, image=image, source=source, annotator=annotator, critic=critic)


def resolve_image_path(images_dir: Path, name: str) -> Path:
    """``name`` inside ``images_dir`` (already resolved); refuses anything that leads outside it."""
    if "\x00" in name:
        raise BadLine("image: path contains a NUL character")
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive:
        raise BadLine(f"image: absolute path {name!r} refused; paths are relative to --images-dir")
    if ".." in posix.parts:
        raise BadLine(f"image: path {name!r} escapes --images-dir ('..')")
    resolved = Path(os.path.realpath(images_dir.joinpath(*posix.parts)))
    if not resolved.is_relative_to(images_dir):
        raise BadLine(f"image: path {name!r} escapes --images-dir (it resolves to {resolved}, through a symbolic link)")
    return resolved


# --- one line ---------------------------------------------------------------------


def _fingerprint(parsed: ParsedLine, data: AnnotationInput) -> str:
    """Identity of an imported annotation: the same values from the same annotator give the same print."""
    annotator = parsed.annotator
    payload = {
        "kind": annotator.kind,
        "name": annotator.name,
        "prompt_version": annotator.prompt_version,
        "pipeline_version": annotator.pipeline_version,
        "triplets": [
            {"key": t.key, "elements": [e.__dict__ for e in t.elements]} for t in data.triplets
        ],
        "ces": data.ces.__dict__ if data.ces else None,
        "des": hashlib.sha256(data.des).hexdigest() if data.des else None,
        "rationale": data.rationale,
        "critic": parsed.critic,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()


def _check_metadata(data: Mapping[str, Any], sha256: str, width: int, height: int) -> None:
    if "sha256" in data and data["sha256"] != sha256:
        raise BadLine(f"sha256: the file's content hash is {sha256}, the line says {data['sha256']!r}")
    for key, actual in (("width", width), ("height", height)):
        if key in data and data[key] != actual:
            raise BadLine(f"{key}: the stored image is {width}x{height} (EXIF orientation applied), the line says {key} {data[key]!r}")


def _current_fingerprint(image_id: int, annotator: Annotator) -> str | None:
    current = Annotation.objects.filter(image_id=image_id, kind=annotator.kind, author_name=annotator.name, is_current=True)
    return next((extra.get("import_fingerprint") for extra in current.values_list("extra", flat=True)), None)


@dataclass
class _Batch:
    """What a batch has prepared but not yet written: the annotations go in with one
    :func:`annotation_bulk_create`, the routing once per image, at the end of the batch."""

    new: list[NewAnnotation] = field(default_factory=list)
    fingerprints: dict[tuple[int, str, str], str] = field(default_factory=dict)  # newest pending per author
    images: dict[int, Image] = field(default_factory=dict)  # to route, in first-seen order

    def current_fingerprint(self, image_id: int, annotator: Annotator) -> str | None:
        key = (image_id, annotator.kind, annotator.name)
        return self.fingerprints[key] if key in self.fingerprints else _current_fingerprint(image_id, annotator)


def import_line(
    raw: bytes, *, dataset: Dataset, options: ImportOptions, run: ImportRun, batch: _Batch | None = None
) -> tuple[bool, bool, bool]:
    """Import one line: ``(added_something, image_created, annotation_created)``.

    Call inside a savepoint: every check happens before the first write, and a
    failed write rolls back the line. Raises :class:`BadLine`,
    :class:`InvalidAnnotation` or :class:`InvalidImage`. With ``batch`` the image is
    stored now and the annotation (and routing) is left in ``batch`` for
    :func:`_flush`; without, everything is written now.
    """
    parsed = parse_line(raw, options)
    path = resolve_image_path(options.images_dir, parsed.image)
    try:
        candidate = image_find_or_prepare(dataset=dataset, data=read_image_file(path))
    except InvalidImage as exc:
        raise InvalidImage(f"{parsed.image}: {exc}") from exc
    _check_metadata(parsed.data, candidate.sha256, candidate.width, candidate.height)
    annotation = None
    if parsed.annotator is not None:
        annotation = validate_annotation(parsed.data, candidate.width, candidate.height)
        fingerprint = _fingerprint(parsed, annotation)
        if candidate.existing is not None:
            current = (
                batch.current_fingerprint(candidate.existing.pk, parsed.annotator)
                if batch is not None
                else _current_fingerprint(candidate.existing.pk, parsed.annotator)
            )
            if current == fingerprint:
                return False, False, False
    image, created = image_store(dataset=dataset, candidate=candidate, original_name=parsed.image, source=parsed.source)
    if annotation is None:
        return created, created, False
    annotator = parsed.annotator
    extra: dict[str, Any] = {"import_fingerprint": fingerprint}
    if annotator.given is not None and options.approved:
        extra["annotator"] = annotator.given
    new = NewAnnotation(
        image=image, data=annotation, kind=annotator.kind, author_name=annotator.name,
        decision=Decision.APPROVED if options.approved else Decision.NONE,
        decision_reason=f"imported as approved by {run.run_by} (import run {run.pk})" if options.approved else "",
        prompt_version=annotator.prompt_version, pipeline_version=annotator.pipeline_version,
        raw_output=annotator.raw_output, critic=parsed.critic, extra=extra, import_run=run,
    )
    if batch is None:
        annotation_bulk_create(items=[new])
        image_route_imported(image=image, approved=options.approved)
    else:
        batch.new.append(new)
        batch.fingerprints[(image.pk, annotator.kind, annotator.name)] = fingerprint
        batch.images.setdefault(image.pk, image)
    return True, created, True


def _flush(batch: _Batch, *, approved: bool) -> None:
    annotation_bulk_create(items=batch.new)
    images_route_imported(images=list(batch.images.values()), approved=approved)


# --- the whole file -----------------------------------------------------------------


def _reason(exc: Exception) -> str:
    if isinstance(exc, InvalidAnnotation):
        return f"{exc.field}: {exc.message}"
    if isinstance(exc, DatabaseError):
        return f"the database refused the line ({type(exc).__name__}: {exc})"
    return str(exc)


@dataclass
class _Tally:
    imported: int = 0
    duplicates: int = 0
    failed: int = 0
    images_created: int = 0
    annotations_created: int = 0
    errors: list[LineError] = field(default_factory=list)


def _import_lines(lines: list[tuple[int, bytes | None]], *, dataset: Dataset, options: ImportOptions, run: ImportRun,
                  batch: _Batch | None) -> _Tally:
    tally = _Tally()
    for number, raw in lines:
        try:
            if raw is None:
                raise BadLine(f"line longer than the limit of {options.max_line_bytes:,} bytes")
            with transaction.atomic():
                added, image_created, annotation_created = import_line(
                    raw, dataset=dataset, options=options, run=run, batch=batch
                )
        except (DomainError, DatabaseError) as exc:
            tally.failed += 1
            tally.errors.append(LineError(number, _reason(exc)))
            continue
        tally.imported += added
        tally.duplicates += not added
        tally.images_created += image_created
        tally.annotations_created += annotation_created
    if batch is not None:
        _flush(batch, approved=options.approved)
    return tally


def _run_batch(lines, *, dataset: Dataset, options: ImportOptions, report: ImportReport, max_errors: int) -> int:
    """Import ``lines`` (at most a batch) in one transaction; returns how many there were.

    Fast path: images are stored line by line (each line in a savepoint), the
    annotations are written together at the end. Should that write fail (a
    concurrent writer, a constraint), the batch is rolled back and imported again
    line by line, so only the lines at fault are reported and nothing else is lost.
    """
    run = report.run
    lines = list(lines)
    if not lines:
        return 0
    before = (report.imported, report.duplicates, report.failed, report.images_created, report.annotations_created,
              len(report.errors), list(run.errors), run.imported, run.duplicates, run.failed)
    try:
        with transaction.atomic():
            tally = _import_lines(lines, dataset=dataset, options=options, run=run, batch=_Batch())
            _record(report, tally, max_errors)
    except DatabaseError:
        logger.warning("import run %s: the batch write failed; importing the batch again line by line", run.pk, exc_info=True)
        (report.imported, report.duplicates, report.failed, report.images_created, report.annotations_created,
         n_errors, run.errors, run.imported, run.duplicates, run.failed) = before
        del report.errors[n_errors:]
        with transaction.atomic():
            tally = _import_lines(lines, dataset=dataset, options=options, run=run, batch=None)
            _record(report, tally, max_errors)
    return len(lines)


def _record(report: ImportReport, tally: _Tally, max_errors: int) -> None:
    """Add a batch's counts to the report and save them on the run (inside the batch's transaction)."""
    run = report.run
    report.imported += tally.imported
    report.duplicates += tally.duplicates
    report.failed += tally.failed
    report.images_created += tally.images_created
    report.annotations_created += tally.annotations_created
    for error in tally.errors:
        if len(report.errors) < max_errors:
            report.errors.append(error)
        if len(run.errors) < ERRORS_KEPT_ON_RUN:
            run.errors.append(error.as_dict())
    run.imported, run.duplicates, run.failed = report.imported, report.duplicates, report.failed
    run.save(update_fields=["imported", "duplicates", "failed", "errors"])


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
) -> ImportReport:
    """Import an EmoVerse JSONL stream (opened in binary mode) into ``dataset_slug``.

    The dataset is created if needed. Every ``batch_size`` lines are committed
    together with the :class:`ImportRun` counters, so an interrupted import keeps
    the batches before the interruption and a re-run skips them as duplicates.
    Raises :class:`ValueError` for bad arguments; bad lines are reported, not raised.
    """
    root = Path(images_dir)
    if not root.is_dir():
        raise ValueError(f"--images-dir {images_dir} is not a directory")
    if source_default not in ImageSource.values:
        raise ValueError(f"unknown default source {source_default!r}; expected one of {', '.join(ImageSource.values)}")
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    options = ImportOptions(
        images_dir=Path(os.path.realpath(root)), approved=approved, source_default=source_default, max_line_bytes=max_line_bytes
    )
    dataset, _ = dataset_get_or_create(slug=dataset_slug)
    run = ImportRun.objects.create(dataset=dataset, file_name=file_name[:500], approved=approved, run_by=run_by[:150])
    report = ImportReport(run=run)
    lines = iter_lines(stream, max_line_bytes=max_line_bytes)
    try:
        while _run_batch(islice(lines, batch_size), dataset=dataset, options=options, report=report, max_errors=max_errors):
            pass
    finally:
        run.finished_at = timezone.now()
        run.save(update_fields=["finished_at"])
    return report
