"""Parquet (``data.parquet``): one row per image, written one row group per chunk.

Schema (:data:`SCHEMA`): image identity and file, nested ``triplets``
(``list<struct<key, background, attribute, subject>>``; each element a struct of
phrase, status, box ``[x0, y0, x1, y1]`` in pixels, box score, mask as compressed
COCO RLE ``mask_counts`` with ``mask_size`` ``[h, w]``, mask score; null when the
triplet has no such element; elements a reviewer or adjudicator rejected are
left out unless the ``include_rejected`` option is set, and a triplet with no
element left is dropped), the CES label, confidence and distribution (a
struct of the dataset taxonomy's labels, Mikels' 8 by default), the DES vector as ``fixed_size_list<float32, 1024>``
(null when absent), the rationale and the annotator. Readable by pyarrow, pandas
and HuggingFace ``datasets`` (``Dataset.from_parquet``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from annotations.models import Element
from core.vocabulary import DES_DIM, EMOTIONS, MIKELS, ROLES
from exports.writers.items import ExportItem, WriterResult, export_annotator, kept_elements

FILE_NAME = "data.parquet"
SCHEMA_VERSION = 1

ELEMENT = pa.struct([
    ("phrase", pa.string()),
    ("status", pa.string()),
    ("box", pa.list_(pa.float64())),
    ("box_score", pa.float64()),
    ("mask_counts", pa.string()),
    ("mask_size", pa.list_(pa.int32())),
    ("mask_score", pa.float64()),
])
TRIPLET = pa.struct([("key", pa.string()), *((role, ELEMENT) for role in ROLES)])
ANNOTATOR = pa.struct([("kind", pa.string()), ("name", pa.string()), ("prompt_version", pa.string())])
DES = pa.list_(pa.float32(), DES_DIM)


def distribution_type(labels: Sequence[str]) -> pa.StructType:
    """``ces_distribution``: one float64 field per label of the dataset's taxonomy, in its order."""
    return pa.struct([(e, pa.float64()) for e in labels])


def schema_for(labels: Sequence[str]) -> pa.Schema:
    """The file's schema for a dataset whose taxonomy has ``labels``."""
    return SCHEMA.set(SCHEMA.get_field_index("ces_distribution"), pa.field("ces_distribution", distribution_type(labels)))


DISTRIBUTION = distribution_type(EMOTIONS)
SCHEMA = pa.schema([
    ("image_id", pa.int64()),
    ("image", pa.string()),
    ("image_url", pa.string()),
    ("sha256", pa.string()),
    ("original_sha256", pa.string()),
    ("source", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("triplets", pa.list_(TRIPLET)),
    ("ces_label", pa.string()),
    ("ces_confidence", pa.float64()),
    ("ces_distribution", DISTRIBUTION),
    ("des", DES),
    ("rationale", pa.string()),
    ("annotator", ANNOTATOR),
    ("annotation_version", pa.int32()),
    ("annotated_at", pa.timestamp("us", tz="UTC")),
])


def element_row(element: Element) -> dict[str, Any]:
    return {
        "phrase": element.phrase,
        "status": element.status,
        "box": element.box,
        "box_score": element.box_score,
        "mask_counts": element.mask_counts,
        "mask_size": None if element.mask_counts is None else [element.mask_height, element.mask_width],
        "mask_score": element.mask_score,
    }


def triplet_rows(item: ExportItem, *, include_rejected: bool) -> list[dict[str, Any]]:
    rows = []
    for triplet in item.annotation.triplets.all():
        elements = kept_elements(triplet, include_rejected=include_rejected)
        if not elements:
            continue
        row: dict[str, Any] = {"key": str(triplet.key), **dict.fromkeys(ROLES)}
        for element in elements:
            row[element.role] = element_row(element)
        rows.append(row)
    return rows


def des_array(blobs: list[bytes | memoryview | None]) -> pa.FixedSizeListArray:
    """The chunk's DES column: one float32 matrix, nulls where an image has no DES."""
    missing = np.array([blob is None for blob in blobs])
    matrix = np.zeros((len(blobs), DES_DIM), dtype="<f4")
    for i, blob in enumerate(blobs):
        if blob is not None:
            matrix[i] = np.frombuffer(bytes(blob), dtype="<f4")
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), DES_DIM, mask=pa.array(missing))


def chunk_table(items: list[ExportItem], *, include_rejected: bool, schema: pa.Schema = SCHEMA) -> pa.Table:
    columns: dict[str, list] = {name: [] for name in schema.names if name != "des"}
    for item in items:
        image, final = item.image, item.annotation
        annotator = export_annotator(final)
        values = {
            "image_id": image.pk, "image": item.file_name, "image_url": item.url, "sha256": item.sha256,
            "original_sha256": image.sha256, "source": image.source, "width": image.width, "height": image.height, "triplets": triplet_rows(item, include_rejected=include_rejected),
            "ces_label": final.ces_label, "ces_confidence": final.ces_confidence,
            "ces_distribution": final.ces_distribution, "rationale": final.rationale,
            "annotator": {"kind": annotator["kind"], "name": annotator["name"], "prompt_version": annotator.get("prompt_version")},
            "annotation_version": final.version, "annotated_at": final.created_at,
        }
        for name, value in values.items():
            columns[name].append(value)
    arrays = {name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()}
    arrays["des"] = des_array([item.annotation.des for item in items])
    return pa.Table.from_arrays([arrays[name] for name in schema.names], schema=schema)


class ParquetWriter:
    OPTIONS: Mapping[str, tuple[Any, ...]] = {"include_rejected": (False, True)}

    def __init__(self, folder: Path, options: Mapping[str, Any], *, context: Mapping[str, Any]) -> None:
        self.include_rejected = bool(options.get("include_rejected", False))
        taxonomy = context.get("taxonomy", MIKELS)
        described = {k: str(v) for k, v in context.items() if k != "taxonomy"}
        metadata = {"emoverse": json.dumps({"schema_version": SCHEMA_VERSION, **described,
                                            "taxonomy": taxonomy.name, "labels": list(taxonomy.labels)})}
        self._schema = schema_for(taxonomy.labels).with_metadata(metadata)
        self._writer = pq.ParquetWriter(folder / FILE_NAME, self._schema, compression="zstd")
        self._rows = 0

    def write(self, items: list[ExportItem]) -> None:
        if items:
            self._writer.write_table(chunk_table(items, include_rejected=self.include_rejected, schema=self._schema).replace_schema_metadata(self._schema.metadata))
            self._rows += len(items)

    def close(self) -> WriterResult:
        self._writer.close()
        return WriterResult(files=[FILE_NAME], counts={"rows": self._rows})

    def abort(self) -> None:
        self._writer.close()
