"""Parquet (``data.parquet``): one row per image, in row groups of up to :data:`ROW_GROUP_CHUNKS` chunks.

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

from core.vocabulary import DES_DIM, EMOTIONS, MIKELS, ROLES
from exports.writers.items import ExportElement, ExportItem, HashedFile, WriterResult, export_annotator, kept_elements

FILE_NAME = "data.parquet"
SCHEMA_VERSION = 1
# Encoded chunks written together as one row group. pyarrow keeps the metadata of every row group
# written (about 50 KB for this schema's 47 leaf columns) in memory until the file is closed, and
# copies it once more to write the footer: with a row group per 1,000-image chunk a million images
# held 50 MB and peaked 56 MB higher at the end (issue 16). Four chunks per row group keep that a
# quarter as large for the cost of three chunks' tables (about 5 MB each, mostly DES) held.
ROW_GROUP_CHUNKS = 4

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


_ELEMENT_COLUMNS = [f.name for f in ELEMENT]


def _element_arrays(elements: list[ExportElement | None]) -> pa.StructArray:
    """The struct column of one role: a row per triplet, null where the triplet has no such element."""
    present = [e for e in elements if e is not None]
    columns: dict[str, list] = {name: [] for name in _ELEMENT_COLUMNS}
    phrase, status, box, box_score = columns["phrase"], columns["status"], columns["box"], columns["box_score"]
    mask_counts, mask_size, mask_score = columns["mask_counts"], columns["mask_size"], columns["mask_score"]
    for e in elements:
        if e is None:
            for values in columns.values():
                values.append(None)
            continue
        phrase.append(e.phrase)
        status.append(e.status)
        box.append(None if e.x0 is None else [e.x0, e.y0, e.x1, e.y1])
        box_score.append(e.box_score)
        mask_counts.append(e.mask_counts)
        mask_size.append(None if e.mask_counts is None else [e.mask_height, e.mask_width])
        mask_score.append(e.mask_score)
    arrays = [pa.array(columns[f.name], type=f.type) for f in ELEMENT]
    missing = None if len(present) == len(elements) else pa.array([e is None for e in elements])
    return pa.StructArray.from_arrays(arrays, fields=list(ELEMENT), mask=missing)


def triplets_array(items: list[ExportItem], *, include_rejected: bool) -> pa.ListArray:
    """The ``triplets`` column, built column by column (no Python dict per element).

    Elements a reviewer or adjudicator rejected are left out unless ``include_rejected``;
    a triplet with no element left is dropped.
    """
    offsets, keys = [0], []
    by_role: dict[str, list[ExportElement | None]] = {role: [] for role in ROLES}
    for item in items:
        for triplet in item.annotation.triplets:
            elements = kept_elements(triplet, include_rejected=include_rejected)
            if not elements:
                continue
            keys.append(triplet.key)
            found = {e.role: e for e in elements}
            for role, column in by_role.items():
                column.append(found.get(role))
        offsets.append(len(keys))
    children = [pa.array(keys, type=pa.string()), *(_element_arrays(by_role[role]) for role in ROLES)]
    triplets = pa.StructArray.from_arrays(children, fields=list(TRIPLET))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), triplets, type=SCHEMA.field("triplets").type)


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The leaf columns written with dictionary encoding: all but the DES floats.

    Parquet tries a dictionary for every column by default; for a chunk's million DES
    floats, nearly all distinct, that attempt cost three times the rest of the write and
    the fallback page came out larger than plain encoding. The values are the same.
    """
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    columns = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    paths = [columns.column(i).path for i in range(len(columns))]
    return [path for path in paths if path.split(".")[0] != "des"]


def des_array(blobs: list[bytes | memoryview | None]) -> pa.FixedSizeListArray:
    """The chunk's DES column: one float32 matrix, nulls where an image has no DES."""
    missing = np.array([blob is None for blob in blobs])
    matrix = np.zeros((len(blobs), DES_DIM), dtype="<f4")
    for i, blob in enumerate(blobs):
        if blob is not None:
            matrix[i] = np.frombuffer(blob, dtype="<f4")
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), DES_DIM, mask=pa.array(missing))


def chunk_table(items: list[ExportItem], *, include_rejected: bool, schema: pa.Schema = SCHEMA) -> pa.Table:
    columns: dict[str, list] = {name: [] for name in schema.names if name not in ("des", "triplets")}
    append = [(columns[name].append, name) for name in columns]
    for item in items:
        image, final = item.image, item.annotation
        annotator = export_annotator(final)
        values = {
            "image_id": image.id, "image": item.file_name, "image_url": item.url, "sha256": item.sha256,
            "original_sha256": image.sha256, "source": image.source, "width": image.width, "height": image.height,
            "ces_label": final.ces_label, "ces_confidence": final.ces_confidence,
            "ces_distribution": final.ces_distribution, "rationale": final.rationale,
            "annotator": {"kind": annotator["kind"], "name": annotator["name"], "prompt_version": annotator.get("prompt_version")},
            "annotation_version": final.version, "annotated_at": final.created_at,
        }
        for add, name in append:
            add(values[name])
    arrays = {name: pa.array(values, type=schema.field(name).type) for name, values in columns.items()}
    arrays["triplets"] = triplets_array(items, include_rejected=include_rejected)
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
        self._file = HashedFile(folder / FILE_NAME)  # Parquet is written front to back: hashed as written
        self._writer = pq.ParquetWriter(self._file, self._schema, compression="zstd",
                                        use_dictionary=dictionary_columns(self._schema))
        self._rows = 0
        self._pending: list[pa.Table] = []  # encoded chunks of the next row group

    def encode(self, items: list[ExportItem]) -> bytes | None:
        """A chunk's rows as an Arrow IPC stream, None for no rows (no state of earlier chunks: a worker
        process may build it). Bytes, so a worker's chunk comes back through the pool's shared memory
        and is read there without a copy (:class:`exports.chunks.ChunkPool`)."""
        if not items:
            return None
        table = chunk_table(items, include_rejected=self.include_rejected, schema=self._schema)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as stream:
            stream.write_table(table)
        return sink.getvalue().to_pybytes()

    def append(self, encoded: bytes | memoryview | None) -> None:
        """Add an encoded chunk (chunks in export order); every :data:`ROW_GROUP_CHUNKS` chunks make a row group.

        ``encoded`` may be a view of the pool's shared memory, valid until the next chunk: a chunk
        kept for a later row group is copied into Arrow's memory first.
        """
        if encoded is None:
            return
        if len(self._pending) + 1 < ROW_GROUP_CHUNKS:
            owned = pa.allocate_buffer(len(encoded))
            pa.FixedSizeBufferWriter(owned).write(encoded)
            encoded = owned
        table = pa.ipc.open_stream(encoded).read_all()
        self._pending.append(table.replace_schema_metadata(self._schema.metadata))
        self._rows += table.num_rows
        del table, encoded
        if len(self._pending) >= ROW_GROUP_CHUNKS:
            self._flush()

    def _flush(self) -> None:
        """Write the pending chunks as one row group."""
        if self._pending:
            table, self._pending = pa.concat_tables(self._pending), []
            self._writer.write_table(table, row_group_size=table.num_rows)

    def write(self, items: list[ExportItem]) -> None:
        if items:
            self.append(self.encode(items))

    def close(self) -> WriterResult:
        self._flush()
        self._writer.close()
        self._file.close()
        return WriterResult(files=[FILE_NAME], counts={"rows": self._rows}, sha256={FILE_NAME: self._file.hexdigest()})

    def abort(self) -> None:
        self._pending = []
        self._writer.close()
        self._file.close()
