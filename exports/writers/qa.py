"""QA pair formats: ``qa-jsonl`` (``qa.jsonl``, one pair per line, exactly what ``import_qa``
reads: docs/qa-jsonl.md) and ``qa-parquet`` (``qa.parquet``, one row per pair, one row group
per chunk). Their rows come from :func:`qa.exporting.qa_export_chunks` (``SOURCE``), not
from images: the export service hands them chunk by chunk to :meth:`write_rows`.

Option ``pairs``: ``approved`` (accepted or edited pairs, the default) or ``current``
(every current version, with its status and reject reason: the round trip of a review).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from exports.writers.items import WriterResult
from qa.exporting import PAIR_SELECTIONS

JSONL_FILE = "qa.jsonl"
PARQUET_FILE = "qa.parquet"
SCHEMA_VERSION = 1

SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("version", pa.int32()),
        ("image", pa.string()),
        ("sha256", pa.string()),
        ("category", pa.string()),
        ("dimension", pa.string()),
        ("type", pa.string()),
        ("question", pa.string()),
        ("options", pa.list_(pa.string())),
        ("answer_index", pa.int32()),
        ("answer", pa.string()),
        ("rationale", pa.string()),
        ("elements", pa.list_(pa.struct([("triplet", pa.string()), ("role", pa.string())]))),
        ("status", pa.string()),
        ("reject_reason", pa.string()),
        ("model", pa.string()),
        ("prompt_version", pa.string()),
        ("author", pa.struct([("kind", pa.string()), ("name", pa.string())])),
        ("critic_agrees", pa.bool_()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


class _QAWriter:
    SOURCE = "qa_pairs"
    OPTIONS: Mapping[str, tuple[Any, ...]] = {"images": ("none",), "pairs": PAIR_SELECTIONS}
    include_rejected = False  # elements are not exported here; pairs are chosen by the ``pairs`` option

    def write(self, items: list) -> None:  # the image-based interface: QA writers take rows
        raise TypeError("QA writers take pair rows (write_rows)")


class QaJsonlWriter(_QAWriter):
    def __init__(self, folder: Path, options: Mapping[str, Any], *, context: Mapping[str, Any]) -> None:
        self._file = open(folder / JSONL_FILE, "wb")  # noqa: SIM115 - closed in close/abort
        self._lines = 0

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        dumps = orjson.dumps
        self._file.write(b"".join(dumps(row) + b"\n" for row in rows))
        self._lines += len(rows)

    def close(self) -> WriterResult:
        self._file.close()
        return WriterResult(files=[JSONL_FILE], counts={"lines": self._lines})

    def abort(self) -> None:
        self._file.close()


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """One chunk of rows as a table of :data:`SCHEMA` (the answer split into ``answer_index``
    for multiple choice and ``answer`` text for the other types)."""
    choice = [row["type"] == "multiple_choice" for row in rows]
    columns: dict[str, list] = {}
    for name in SCHEMA.names:
        if name == "answer_index":
            columns[name] = [row["answer"] if mc else None for row, mc in zip(rows, choice)]
        elif name == "answer":
            columns[name] = [None if mc else row["answer"] for row, mc in zip(rows, choice)]
        else:
            columns[name] = [row.get(name) for row in rows]
    return pa.Table.from_arrays([pa.array(columns[n], type=SCHEMA.field(n).type) for n in SCHEMA.names], schema=SCHEMA)


class QaParquetWriter(_QAWriter):
    def __init__(self, folder: Path, options: Mapping[str, Any], *, context: Mapping[str, Any]) -> None:
        metadata = {
            "emoverse": json.dumps({"schema_version": SCHEMA_VERSION, **{k: str(v) for k, v in context.items()}})
        }
        self._schema = SCHEMA.with_metadata(metadata)
        self._writer = pq.ParquetWriter(folder / PARQUET_FILE, self._schema, compression="zstd")
        self._rows = 0

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._writer.write_table(rows_table(rows).replace_schema_metadata(self._schema.metadata))
            self._rows += len(rows)

    def close(self) -> WriterResult:
        self._writer.close()
        return WriterResult(files=[PARQUET_FILE], counts={"rows": self._rows})

    def abort(self) -> None:
        self._writer.close()
