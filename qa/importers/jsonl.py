"""Streaming import of QA pairs from JSONL (one pair per line; docs/qa-jsonl.md).

Built for millions of lines: the file is read one line at a time
(:func:`annotations.importers.lines.iter_lines`) and handled in batches of ``batch_size``
lines. A batch is parsed and validated in Python first (orjson, then ``core.text``'s policy
on every value, then :func:`qa.validation.validate_pair`); its images, existing keys and
existing questions are then looked up in three queries, and the good lines are written
with one ``bulk_create`` in one short transaction. A bad line is reported with its number
and reason and never costs the good lines around it. Memory stays flat: one batch, plus a
bounded cache of image names.

Dedupe: a line is a duplicate (counted, not an error) when its ``key`` is already stored,
or when its image already has a current pair asking the same question
(:func:`qa.text.pair_content_hash`), in the database or earlier in the file.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, BinaryIO

import orjson
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.importers.lines import DEFAULT_MAX_LINE_BYTES, LineError, iter_lines
from annotations.models import Dataset, Image
from core.text import TextPolicyError, check_json_tree, parse_json
from core.vocabulary import ROLES
from qa.errors import InvalidPair
from qa.importers.copy_write import COPY_COLUMNS, insert_pairs
from qa.models import AuthorKind, QAImportRun, QAPair, QAStatus, RejectReason
from qa.selectors import DatasetAxes, element_refs, qa_axes
from qa.services import qa_config_install_defaults
from qa.validation import MAX_QUESTION, PairInput, validate_pair

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5000
ERRORS_KEPT_ON_RUN = 100
IMAGE_CACHE_LIMIT = 200_000
LINE_KEYS = frozenset(
    {
        "key",
        "image",
        "sha256",
        "category",
        "dimension",
        "type",
        "question",
        "options",
        "answer",
        "rationale",
        "elements",
        "status",
        "reject_reason",
        "model",
        "prompt_version",
        "author",
        "version",
        "critic_agrees",
        "created_at",
    }
)
IMPORTABLE_STATUSES = (QAStatus.PENDING, QAStatus.ACCEPTED, QAStatus.EDITED, QAStatus.REJECTED)
MAX_ELEMENTS = 30


@dataclass
class QAImportReport:
    run: QAImportRun
    imported: int = 0
    duplicates: int = 0
    failed: int = 0
    errors: list[LineError] = field(default_factory=list)  # the first ``max_errors``

    @property
    def ok(self) -> bool:
        return self.failed == 0


class BadLine(Exception):
    pass


@dataclass
class _Line:
    number: int
    values: PairInput
    image_name: str | None
    image_sha: str | None
    key: uuid.UUID | None
    status: str
    reject_reason: str
    model: str
    prompt_version: str
    author_name: str
    elements: tuple[tuple[str | int, str], ...]
    critic_agrees: bool | None
    image_id: int = 0


def _text_field(data: dict, name: str, limit: int = 150) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise BadLine(f"{name}: must be text of at most {limit} characters")
    return value.strip()


def _elements(value: Any) -> tuple[tuple[str | int, str], ...]:
    if value in (None, []):
        return ()
    if not isinstance(value, list) or len(value) > MAX_ELEMENTS:
        raise BadLine(f'elements: a list of at most {MAX_ELEMENTS} {{"triplet", "role"}} objects')
    refs = []
    for i, ref in enumerate(value):
        if not isinstance(ref, dict) or set(ref) != {"triplet", "role"} or ref["role"] not in ROLES:
            raise BadLine(f'elements[{i}]: must be {{"triplet": key or index, "role": {"|".join(ROLES)}}}')
        triplet = ref["triplet"]
        if isinstance(triplet, str):
            try:
                triplet = str(uuid.UUID(triplet))
            except ValueError:
                raise BadLine(f"elements[{i}].triplet: not a triplet key (UUID) nor an index") from None
        elif isinstance(triplet, bool) or not isinstance(triplet, int) or triplet < 0:
            raise BadLine(f"elements[{i}].triplet: not a triplet key (UUID) nor an index")
        refs.append((triplet, ref["role"]))
    return tuple(refs)


def _status(data: dict, approved: bool) -> tuple[str, str]:
    status = data.get("status") or (QAStatus.ACCEPTED if approved else QAStatus.PENDING)
    if status not in IMPORTABLE_STATUSES:
        raise BadLine(f"status: must be one of {', '.join(IMPORTABLE_STATUSES)}")
    reason = data.get("reject_reason") or ""
    if status == QAStatus.REJECTED and reason not in RejectReason.values[1:]:
        raise BadLine(f"reject_reason: a rejected pair needs one of {', '.join(RejectReason.values[1:])}")
    if status != QAStatus.REJECTED and reason:
        raise BadLine("reject_reason: only a rejected pair has one")
    return status, reason


def parse_line(number: int, raw: bytes | None, *, axes: DatasetAxes, approved: bool) -> _Line:
    """One line's checked values. Raises :class:`BadLine` or :class:`InvalidPair`."""
    if raw is None:
        raise BadLine(f"line longer than {DEFAULT_MAX_LINE_BYTES} bytes")
    try:
        data = orjson.loads(raw)  # refuses NaN, infinities and unpaired surrogates; reads a NUL escape
        if b"\\u0000" in raw:
            check_json_tree(data)
    except orjson.JSONDecodeError:
        try:  # the standard parser names what the text policy refuses (an unpaired surrogate, NaN)
            parse_json(raw)
        except TextPolicyError:
            raise
        except (ValueError, RecursionError) as exc:
            raise BadLine(f"not valid JSON: {exc}") from None
        raise BadLine("not valid JSON") from None
    if not isinstance(data, dict):
        raise BadLine("a line is one JSON object")
    unknown = sorted(set(data) - LINE_KEYS)
    if unknown:
        raise BadLine(f"unknown key(s) {', '.join(map(repr, unknown))}; see docs/qa-jsonl.md")
    values = validate_pair(data, categories=axes.categories, dimensions=axes.dimensions)
    image_name, image_sha = data.get("image"), data.get("sha256")
    if image_name is not None and (not isinstance(image_name, str) or not image_name or len(image_name) > 500):
        raise BadLine("image: the image's path as imported (its original name), text")
    if image_sha is not None and (not isinstance(image_sha, str) or len(image_sha) != 64):
        raise BadLine("sha256: 64 hex digits")
    if image_name is None and image_sha is None:
        raise BadLine("image: each line names its image (image, sha256 or both)")
    key = data.get("key")
    if key is not None:
        try:
            key = uuid.UUID(key) if isinstance(key, str) else None
        except ValueError:
            key = None
        if key is None:
            raise BadLine("key: must be a UUID")
    status, reason = _status(data, approved)
    critic_agrees = data.get("critic_agrees")
    if critic_agrees is not None and not isinstance(critic_agrees, bool):
        raise BadLine("critic_agrees: true, false or null")
    author = data.get("author")
    if author is not None and not isinstance(author, dict):
        raise BadLine("author: an object {kind, name}")
    model = _text_field(data, "model")
    author_name = _text_field(author or {}, "name") or model or "import"
    return _Line(
        number=number,
        values=values,
        image_name=image_name,
        image_sha=image_sha.lower() if image_sha else None,
        key=key,
        status=status,
        reject_reason=reason,
        model=model,
        prompt_version=_text_field(data, "prompt_version", 64),
        author_name=author_name,
        elements=_elements(data.get("elements")),
        critic_agrees=critic_agrees,
    )


class _ImageCache:
    """Image ids by original name and by content hash, looked up a batch at a time; bounded."""

    def __init__(self, dataset_id: int):
        self.dataset_id = dataset_id
        self.by_name: dict[str, tuple[int, str]] = {}
        self.by_sha: dict[str, tuple[int, str]] = {}

    def load(self, lines: list[_Line]) -> None:
        names = {ln.image_name for ln in lines if ln.image_name and ln.image_name not in self.by_name}
        shas = {ln.image_sha for ln in lines if ln.image_sha and not ln.image_name and ln.image_sha not in self.by_sha}
        if len(self.by_name) + len(self.by_sha) > IMAGE_CACHE_LIMIT:
            self.by_name.clear()
            self.by_sha.clear()
        for field_name, wanted in (("original_name__in", names), ("sha256__in", shas)):
            if wanted:
                rows = Image.objects.filter(dataset_id=self.dataset_id, **{field_name: list(wanted)}).values_list(
                    "id", "original_name", "sha256"
                )
                for pk, name, sha in rows:
                    self.by_name[name] = (pk, sha)
                    self.by_sha[sha] = (pk, sha)

    def resolve(self, line: _Line) -> int:
        if line.image_name:
            found = self.by_name.get(line.image_name)
            if found is None:
                raise BadLine(f"image: no image {line.image_name!r} in this dataset")
            if line.image_sha and found[1] != line.image_sha:
                raise BadLine(
                    f"sha256: image {line.image_name!r} has content hash {found[1]}, the line says {line.image_sha}"
                )
            return found[0]
        found = self.by_sha.get(line.image_sha or "")
        if found is None:
            raise BadLine(f"sha256: no image with content hash {line.image_sha} in this dataset")
        return found[0]


def _batches(lines: Iterator[tuple[int, bytes | None]], size: int) -> Iterator[list[tuple[int, bytes | None]]]:
    while batch := list(islice(lines, size)):
        yield batch


class _Importer:
    def __init__(
        self,
        report: QAImportReport,
        dataset: Dataset,
        *,
        approved: bool,
        max_errors: int,
        on_error: Callable[[LineError], None] | None,
    ):
        self.report, self.dataset, self.approved = report, dataset, approved
        self.max_errors, self.on_error = max_errors, on_error
        self.axes = qa_axes(dataset_id=dataset.pk)
        self.images = _ImageCache(dataset.pk)

    def fail(self, number: int, reason: str) -> None:
        error = LineError(number, reason)
        self.report.failed += 1
        if len(self.report.errors) < self.max_errors:
            self.report.errors.append(error)
        if self.on_error is not None:
            self.on_error(error)

    def parse(self, batch: list[tuple[int, bytes | None]]) -> list[_Line]:
        good = []
        for number, raw in batch:
            try:
                good.append(parse_line(number, raw, axes=self.axes, approved=self.approved))
            except (BadLine, InvalidPair, TextPolicyError) as exc:
                self.fail(number, _reason(exc))
        return good

    def resolve(self, lines: list[_Line]) -> list[_Line]:
        self.images.load(lines)
        good = []
        for line in lines:
            try:
                line.image_id = self.images.resolve(line)
            except BadLine as exc:
                self.fail(line.number, str(exc))
                continue
            good.append(line)
        return good

    def dedupe(self, lines: list[_Line]) -> list[_Line]:
        """Drop lines whose key is stored, or whose question the image has (stored or earlier in the batch)."""
        keys = [ln.key for ln in lines if ln.key is not None]
        stored_keys = (
            set(QAPair.objects.filter(key__in=keys).values_list("key", flat=True).distinct()) if keys else set()
        )
        image_ids = {ln.image_id for ln in lines}
        hashes = {ln.values.content_hash for ln in lines}
        stored = set(
            QAPair.objects.filter(image_id__in=image_ids, content_hash__in=hashes, is_current=True).values_list(
                "image_id", "content_hash"
            )
        )
        good = []
        for line in lines:
            identity = (line.image_id, line.values.content_hash)
            if identity in stored or (line.key is not None and line.key in stored_keys):
                self.report.duplicates += 1
                continue
            stored.add(identity)
            if line.key is not None:
                stored_keys.add(line.key)
            good.append(line)
        return good

    def elements(self, lines: list[_Line]) -> dict[int, list[int]]:
        """Element ids per line number; lines naming an element their image lacks fail."""
        wanted = [ln for ln in lines if ln.elements]
        if not wanted:
            return {}
        refs = element_refs(image_ids={ln.image_id for ln in wanted})
        out = {}
        for line in wanted:
            found = refs.get(line.image_id, {})
            missing = [ref for ref in line.elements if ref not in found]
            if missing:
                triplet, role = missing[0]
                self.fail(line.number, f"elements: the image's newest annotation has no {role} in triplet {triplet!r}")
                continue
            out[line.number] = sorted({found[ref] for ref in line.elements})
        return out

    def write(self, lines: list[_Line]) -> None:
        element_ids = self.elements(lines)
        lines = [ln for ln in lines if not ln.elements or ln.number in element_ids]
        now = timezone.now()
        rows = [self.row(line, now) for line in lines]
        try:
            with transaction.atomic():
                insert_pairs(rows)
                self.link_elements(lines, element_ids)
        except IntegrityError:  # a concurrent writer stored the same key or question: line by line
            logger.info("QA import batch hit a conflict; writing it line by line")
            self.write_one_by_one(lines, rows, element_ids)
            return
        self.report.imported += len(rows)

    def link_elements(self, lines: list[_Line], element_ids: dict[int, list[int]]) -> None:
        linked = [ln for ln in lines if ln.number in element_ids]
        if not linked:
            return
        ids = dict(QAPair.objects.filter(key__in=[ln.key for ln in linked], is_current=True).values_list("key", "id"))
        through = QAPair.elements.through
        through.objects.bulk_create(
            [
                through(qapair_id=ids[ln.key], element_id=element_id)
                for ln in linked
                for element_id in element_ids[ln.number]
            ]
        )

    def write_one_by_one(self, lines: list[_Line], rows: list[tuple], element_ids: dict[int, list[int]]) -> None:
        for line, row in zip(lines, rows):
            try:
                with transaction.atomic():
                    pair = QAPair.objects.create(**dict(zip(COPY_COLUMNS, row)))
                    pair.elements.set(element_ids.get(line.number, ()))
            except IntegrityError:
                self.report.duplicates += 1
                continue
            self.report.imported += 1

    def row(self, line: _Line, now) -> tuple:
        """The line as a row of :data:`COPY_COLUMNS` (every line gets its key here)."""
        values = line.values
        line.key = line.key or uuid.uuid4()
        return (
            self.dataset.pk,
            line.image_id,
            line.key,
            1,
            True,
            self.axes.category_ids[values.category],
            self.axes.dimension_ids[values.dimension],
            values.question_type,
            values.question,
            list(values.options) if values.options is not None else None,
            values.answer_index,
            values.answer,
            values.rationale,
            values.content_hash,
            line.status,
            line.reject_reason,
            "",
            0.0 if line.critic_agrees is False else 1.0,
            "",
            line.critic_agrees,
            AuthorKind.IMPORT,
            line.author_name,
            line.model,
            line.prompt_version,
            self.report.run.pk,
            now,
        )


def _reason(exc: Exception) -> str:
    if isinstance(exc, InvalidPair | TextPolicyError):
        field_name = exc.field
        detail = exc.message if isinstance(exc, InvalidPair) else exc.detail
        return f"{field_name}: {detail}" if field_name else detail
    return str(exc)


def import_qa_jsonl(
    stream: BinaryIO,
    *,
    dataset: Dataset,
    file_name: str,
    run_by: str,
    approved: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_errors: int = 1000,
    on_error: Callable[[LineError], None] | None = None,
    on_batch: Callable[[QAImportReport], None] | None = None,
) -> QAImportReport:
    """Import every line of ``stream`` into ``dataset`` (its default QA configuration is
    installed first when it has none). ``approved``: lines without a ``status`` are imported
    as accepted. ``on_error`` hears every failed line as it happens; the report keeps the
    first ``max_errors`` and the run the first 100."""
    qa_config_install_defaults(dataset=dataset)
    run = QAImportRun.objects.create(dataset=dataset, file_name=file_name[:500], approved=approved, run_by=run_by[:150])
    report = QAImportReport(run=run)
    importer = _Importer(report, dataset, approved=approved, max_errors=max_errors, on_error=on_error)
    for batch in _batches(iter_lines(stream), batch_size):
        lines = importer.dedupe(importer.resolve(importer.parse(batch)))
        if lines:
            importer.write(lines)
        if on_batch is not None:
            on_batch(report)
    run.imported, run.duplicates, run.failed = report.imported, report.duplicates, report.failed
    run.errors = [e.as_dict() for e in report.errors[:ERRORS_KEPT_ON_RUN]]
    run.finished_at = timezone.now()
    run.save(update_fields=["imported", "duplicates", "failed", "errors", "finished_at"])
    return report


__all__ = ["DEFAULT_BATCH_SIZE", "LineError", "QAImportReport", "import_qa_jsonl", "MAX_QUESTION"]
