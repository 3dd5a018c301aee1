"""EmoVerse JSONL: exactly the import format (docs/emoverse-jsonl.md), one image per line.

``import_emoverse data.jsonl --images-dir <export>/images --approved`` of an
export reproduces the same annotations (triplet keys, phrases, boxes, masks,
element statuses, CES, DES, rationale, annotator). Each line also carries the
image's ``width`` and ``height`` and, when the files are copied or linked, their
``sha256``; the importer checks them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotations.selectors import annotation_to_dict
from core.vocabulary import DES_DIM
from exports.writers.items import ExportItem, WriterResult, export_annotator

FILE_NAME = "data.jsonl"


def des_json_arrays(blobs: list[bytes | memoryview | None]) -> list[str | None]:
    """JSON arrays (``"[0.1,-2.5,...]"``) of DES vectors, the shortest text that reads back to the same float32.

    One vectorised pass for a whole chunk: formatting 1024 floats per image one
    by one in Python costs more than everything else in the line.
    """
    present = [i for i, blob in enumerate(blobs) if blob is not None]
    out: list[str | None] = [None] * len(blobs)
    if not present:
        return out
    matrix = np.frombuffer(b"".join(bytes(blobs[i]) for i in present), dtype="<f4")
    text = pa.array(matrix).cast(pa.string())
    offsets = pa.array(np.arange(0, (len(present) + 1) * DES_DIM, DES_DIM, dtype=np.int32))
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, text), ",").to_pylist()
    for i, values in zip(present, joined):
        out[i] = f"[{values}]"
    return out


def item_to_line(item: ExportItem, des_json: str | None) -> str:
    """One JSONL line (without the newline). ``des_json``: from :func:`des_json_arrays`."""
    image = item.image
    line: dict[str, Any] = {
        "image": item.file_name,
        "source": image.source,
        "width": image.width,
        "height": image.height,
    }
    if item.sha256:  # only the exported file's own hash: the importer checks it against the file
        line["sha256"] = item.sha256
    line.update(annotation_to_dict(item.annotation, include_des=False))
    line["annotator"] = export_annotator(item.annotation)
    text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
    if des_json is None:
        return text
    return f'{text[:-1]},"des":{des_json}}}'


class JsonlWriter:
    # The round-trip format keeps every element with its status, rejected ones too.
    OPTIONS: Mapping[str, tuple[Any, ...]] = {"include_rejected": (True,)}
    include_rejected = True

    def __init__(self, folder: Path, options: Mapping[str, Any], *, context: Mapping[str, Any]) -> None:
        self._path = folder / FILE_NAME
        self._file = open(self._path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed in close/abort
        self._lines = 0

    def write(self, items: list[ExportItem]) -> None:
        des = des_json_arrays([item.annotation.des for item in items])
        self._file.write("".join(f"{item_to_line(item, d)}\n" for item, d in zip(items, des)))
        self._lines += len(items)

    def close(self) -> WriterResult:
        self._file.close()
        return WriterResult(files=[FILE_NAME], counts={"lines": self._lines})

    def abort(self) -> None:
        self._file.close()
