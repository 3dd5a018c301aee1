"""What the export service hands to a writer, and the values every format shares.

An export reads plain rows, not model instances: building Django objects for an
image, its final annotation, two triplets and six elements cost more than all the
encoding (issue 16). :func:`exports.selectors.export_chunk` fills these records
with ``values_list`` queries, a chunk at a time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from annotations.models import AnnotationKind, ElementStatus


class ExportImage(NamedTuple):
    """An exported image's row (``Image`` columns; ``file`` is the storage name)."""

    id: int
    file: str
    original_name: str
    width: int
    height: int
    source: str
    sha256: str
    label: str | None
    status: str
    created_at: datetime

    @property
    def pk(self) -> int:
        return self.id


class ExportElement(NamedTuple):
    """One element's row (``Element`` columns), in the order of :data:`ELEMENT_FIELDS`."""

    triplet_id: int
    role: str
    phrase: str
    status: str
    x0: float | None
    y0: float | None
    x1: float | None
    y1: float | None
    box_score: float | None
    mask_counts: str | None
    mask_height: int | None
    mask_width: int | None
    mask_score: float | None

    @property
    def box(self) -> list[float] | None:
        return None if self.x0 is None else [self.x0, self.y0, self.x1, self.y1]

    @property
    def mask(self) -> dict[str, Any] | None:
        return (
            None
            if self.mask_counts is None
            else {"size": [self.mask_height, self.mask_width], "counts": self.mask_counts}
        )


@dataclass(slots=True)
class ExportTriplet:
    index: int
    key: str
    elements: list[ExportElement]  # every element, rejected ones too, ordered by role


@dataclass(slots=True)
class ExportAnnotation:
    """The final annotation's values an export writes (``Annotation`` columns) and its triplets."""

    id: int
    image_id: int
    kind: str
    version: int
    author_name: str
    prompt_version: str
    pipeline_version: str
    ces_label: str | None
    ces_confidence: float | None
    ces_distribution: dict[str, float] | None
    des: bytes | memoryview | None
    rationale: str
    extra: dict[str, Any] | None
    created_at: datetime
    triplets: list[ExportTriplet] = field(default_factory=list)


_REJECTED = ElementStatus.REJECTED.value
IMAGE_FIELDS = ExportImage._fields
ELEMENT_FIELDS = ExportElement._fields
ANNOTATION_FIELDS = tuple(name for name in ExportAnnotation.__dataclass_fields__ if name != "triplets")


@dataclass(frozen=True, slots=True)
class ExportItem:
    """One exported image and its final annotation.

    ``annotation`` holds its triplets and their elements (ordered by index and
    role). ``file_name`` is the image's path relative to the export's ``images/``
    folder (POSIX separators), the same in every format and, when files are
    copied or linked, the file's real place. ``url`` is set when images are
    referenced by storage URL. ``sha256`` is the hash of the exported file when
    files are copied or linked (it differs from ``image.sha256``, the hash of the
    bytes first imported, when the import re-encoded the image).
    """

    image: ExportImage
    annotation: ExportAnnotation
    file_name: str
    url: str | None = None
    sha256: str | None = None


@dataclass
class WriterResult:
    files: list[str]  # relative to the export folder
    counts: dict[str, int] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)  # of files hashed while written (the manifest reads the others)


class HashedFile:
    """A binary file opened for writing that hashes (SHA-256) what is written, in order.

    Writers that write a file front to back use it, so the manifest's checksum comes
    with the write instead of reading the file again.
    """

    def __init__(self, path: Path) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._digest = hashlib.sha256()
        self._size = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._digest.update(data)
        self._size += len(data)
        return self._file.write(data)

    def writelines(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.write(line)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._file.flush()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()
        self.closed = True

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of ``value``: orjson, or the standard library for what orjson refuses
    (an integer beyond 64 bits inside a stored JSON value)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def export_annotator(annotation: ExportAnnotation) -> dict[str, Any]:
    """The JSONL ``annotator`` object of a final annotation (kind ``model`` or ``human``).

    A final annotation is a person's work (review, adjudication) or an approved
    import. An approved import keeps the annotator object its file gave, so an
    export of an imported dataset names the original annotator again; one that
    named none is ``{"kind": "human", "name": "import"}``.
    """
    if annotation.kind == AnnotationKind.IMPORT:
        given = (annotation.extra or {}).get("annotator")
        if isinstance(given, dict) and given.get("kind") in ("model", "human") and given.get("name"):
            return {key: given[key] for key in ("kind", "name", "prompt_version", "pipeline_version") if given.get(key)}
    kind = "model" if annotation.kind == AnnotationKind.MODEL else "human"
    out: dict[str, Any] = {"kind": kind, "name": annotation.author_name}
    if annotation.prompt_version:
        out["prompt_version"] = annotation.prompt_version
    if annotation.pipeline_version:
        out["pipeline_version"] = annotation.pipeline_version
    return out


def kept_elements(triplet: ExportTriplet, *, include_rejected: bool) -> list[ExportElement]:
    """The elements of ``triplet`` an export keeps: every one with ``include_rejected``,
    else all but those a reviewer or adjudicator rejected."""
    if include_rejected:
        return triplet.elements
    return [e for e in triplet.elements if e.status != _REJECTED]


def grounded(element: ExportElement) -> bool:
    return element.x0 is not None or element.mask_counts is not None
