"""What the export service hands to a writer, and the values every format shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotations.models import Annotation, AnnotationKind, Element, ElementStatus, Image, Triplet


@dataclass(frozen=True)
class ExportItem:
    """One exported image and its final annotation.

    ``annotation`` has its triplets and elements prefetched (ordered by index and
    role). ``file_name`` is the image's path relative to the export's ``images/``
    folder (POSIX separators), the same in every format and, when files are
    copied or linked, the file's real place. ``url`` is set when images are
    referenced by storage URL. ``sha256`` is the hash of the exported file when
    files are copied or linked (it differs from ``image.sha256``, the hash of the
    bytes first imported, when the import re-encoded the image).
    """

    image: Image
    annotation: Annotation
    file_name: str
    url: str | None = None
    sha256: str | None = None


@dataclass
class WriterResult:
    files: list[str]  # relative to the export folder
    counts: dict[str, int] = field(default_factory=dict)


def export_annotator(annotation: Annotation) -> dict[str, Any]:
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


def kept_elements(triplet: Triplet, *, include_rejected: bool) -> list[Element]:
    """The elements of ``triplet`` an export keeps: every one with ``include_rejected``,
    else all but those a reviewer or adjudicator rejected."""
    return [e for e in triplet.elements.all() if include_rejected or e.status != ElementStatus.REJECTED]


def grounded(element: Element) -> bool:
    return element.x0 is not None or element.mask_counts is not None
