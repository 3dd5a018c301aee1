"""EmoVerse JSONL: exactly the import format (docs/emoverse-jsonl.md), one image per line.

``import_emoverse data.jsonl --images-dir <export>/images --approved`` of an
export reproduces the same annotations (triplet keys, phrases, boxes, masks,
element statuses, CES, DES, rationale, annotator). Each line also carries the
image's ``width`` and ``height`` and, when the files are copied or linked, their
``sha256``; the importer checks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from annotations.models import ElementStatus
from core.vocabulary import ROLES
from exports.writers.items import ExportElement, ExportItem, HashedFile, WriterResult, dumps, export_annotator

FILE_NAME = "data.jsonl"
_PENDING = ElementStatus.PENDING.value


def des_json_rows(blobs: list[bytes | memoryview | None]) -> list[bytes | memoryview | None]:
    """The DES vectors as JSON array contents (``b"0.1,-2.5,..."``, no brackets), None where absent.

    orjson formats a float32 matrix in C: the chunk's vectors in one call (about 28 µs a
    vector; one call per vector cost 36, formatting them in Python ten times more). The rows
    are found by their brackets and given as views of that text, copied once by the caller's
    join. Vectors of another length than the others are formatted alone.
    """
    present = [blob for blob in blobs if blob is not None]
    sizes = {len(blob) for blob in present}
    if len(sizes) != 1 or not present or 0 in sizes:
        return [None if blob is None else _des_vector(blob)[1:-1] for blob in blobs]
    matrix = np.frombuffer(b"".join(present), dtype="<f4").reshape(len(present), -1)
    text = orjson.dumps(matrix, option=orjson.OPT_SERIALIZE_NUMPY)  # b"[[r0],[r1],...]"
    # Each row starts after a "[" (no number contains one) and ends before the next row's "],[".
    opening = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("["))
    view = memoryview(text)
    rows = [view[start:end] for start, end in zip((opening[1:] + 1).tolist(), [*(opening[2:] - 2).tolist(), len(text) - 2])]
    found = iter(rows)
    return [None if blob is None else next(found) for blob in blobs]


def _des_vector(blob: bytes | memoryview) -> bytes:
    return orjson.dumps(np.frombuffer(blob, dtype="<f4"), option=orjson.OPT_SERIALIZE_NUMPY)


def element_to_dict(element: ExportElement) -> dict[str, Any]:
    """An element as the import format writes it (:func:`annotations.selectors.element_to_dict`)."""
    out: dict[str, Any] = {"phrase": element.phrase}
    if element.x0 is not None:
        out["box"] = [element.x0, element.y0, element.x1, element.y1]
    if element.box_score is not None:
        out["box_score"] = element.box_score
    if element.mask_counts is not None:
        out["mask"] = {"size": [element.mask_height, element.mask_width], "counts": element.mask_counts}
    if element.mask_score is not None:
        out["mask_score"] = element.mask_score
    if element.status != _PENDING:
        out["status"] = element.status
    return out


def item_json(item: ExportItem) -> bytes:
    """A JSONL line's object without its ``des`` (the vector comes last, after the closing brace is cut).

    The keys of :func:`annotations.selectors.annotation_to_dict` in its order, with the
    image's metadata before them and the exported annotator in place of the stored one.
    """
    image, annotation = item.image, item.annotation
    line: dict[str, Any] = {
        "image": item.file_name,
        "source": image.source,
        "width": image.width,
        "height": image.height,
    }
    if item.sha256:  # only the exported file's own hash: the importer checks it against the file
        line["sha256"] = item.sha256
    triplets = []
    for triplet in annotation.triplets:
        out: dict[str, Any] = {"key": triplet.key}
        by_role = {e.role: e for e in triplet.elements}
        for role in ROLES:
            if role in by_role:
                out[role] = element_to_dict(by_role[role])
        triplets.append(out)
    line["triplets"] = triplets
    if annotation.ces_label:
        line["ces"] = {
            "label": annotation.ces_label,
            "confidence": annotation.ces_confidence,
            "distribution": annotation.ces_distribution,
        }
    line["rationale"] = annotation.rationale
    line["annotator"] = export_annotator(annotation)
    return dumps(line)


class JsonlWriter:
    # The round-trip format keeps every element with its status, rejected ones too.
    OPTIONS: Mapping[str, tuple[Any, ...]] = {"include_rejected": (True,)}
    include_rejected = True

    def __init__(self, folder: Path, options: Mapping[str, Any], *, context: Mapping[str, Any]) -> None:
        self._file = HashedFile(folder / FILE_NAME)
        self._lines = 0

    def encode(self, items: list[ExportItem]) -> tuple[int, bytes]:
        """A chunk's lines (no state of earlier chunks: a worker process may encode it)."""
        parts: list[bytes] = []
        add = parts.extend
        for item, des in zip(items, des_json_rows([item.annotation.des for item in items])):
            if des is None:
                add((item_json(item), b"\n"))
            else:  # one copy of the vector's text, by the join
                add((item_json(item)[:-1], b',"des":[', des, b"]}\n"))
        return len(items), b"".join(parts)

    def append(self, encoded: tuple[int, bytes]) -> None:
        """Add an encoded chunk to the file (chunks in export order)."""
        lines, data = encoded
        self._file.write(data)
        self._lines += lines

    def write(self, items: list[ExportItem]) -> None:
        self.append(self.encode(items))

    def close(self) -> WriterResult:
        self._file.close()
        return WriterResult(files=[FILE_NAME], counts={"lines": self._lines}, sha256={FILE_NAME: self._file.hexdigest()})

    def abort(self) -> None:
        self._file.close()
