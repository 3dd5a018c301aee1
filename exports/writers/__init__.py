"""Dataset export writers: one module per format behind a small registry.

A writer receives the export's folder and its format options, then the exported
images a chunk at a time (:meth:`ExportWriter.write`), and finally
:meth:`ExportWriter.close`, which finishes its files and says what it wrote. A
writer holds at most a few chunks in memory (Parquet: the chunks of one row group). The service
(``exports.runs``) picks the images, their final annotations and the image
files; writers only encode.

Rejected elements: COCO and Parquet leave out the elements a reviewer or
adjudicator rejected unless the ``include_rejected`` option is set (then they
are kept, marked with their status); JSONL, the round-trip format, always keeps
every element with its status. Writers choose with
:func:`exports.writers.items.kept_elements`.

QA pair formats (``qa-jsonl``, ``qa-parquet``) set ``SOURCE = "qa_pairs"``: they receive
QA pair rows (:func:`qa.exporting.qa_export_chunks`) through ``write_rows`` instead of images.

Add a format: write a class with the :class:`ExportWriter` shape in its own
module and register it in :data:`WRITERS` under its ``ExportFormat`` value.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from exports.models import ExportFormat
from exports.writers.coco import CocoWriter
from exports.writers.items import ExportItem, WriterResult
from exports.writers.jsonl import JsonlWriter
from exports.writers.parquet import ParquetWriter
from exports.writers.qa import QaJsonlWriter, QaParquetWriter

__all__ = ["WRITERS", "ExportItem", "ExportWriter", "WriterResult", "writer_class"]


class ExportWriter(Protocol):
    # Options this format understands: name -> allowed values (first one is the default;
    # names, or booleans). Every format has ``include_rejected``.
    OPTIONS: Mapping[str, tuple[Any, ...]]
    # Whether rejected elements are in the files (the service counts those left out).
    include_rejected: bool

    def __init__(self, folder: Path, options: Mapping[str, Any], *, context: Mapping[str, Any]) -> None:
        """``folder`` exists and is empty; ``context`` names the dataset and snapshot version."""

    def write(self, items: list[ExportItem]) -> None:
        """Encode one chunk of images (in export order)."""

    def close(self) -> WriterResult:
        """Finish the files; return their paths relative to ``folder`` and per-format counts."""

    def abort(self) -> None:
        """Release open files after a failure (the service deletes the folder)."""


WRITERS: dict[str, type[ExportWriter]] = {
    ExportFormat.EMOVERSE_JSONL: JsonlWriter,
    ExportFormat.COCO: CocoWriter,
    ExportFormat.PARQUET: ParquetWriter,
    ExportFormat.QA_JSONL: QaJsonlWriter,
    ExportFormat.QA_PARQUET: QaParquetWriter,
}


def writer_class(export_format: str) -> type[ExportWriter]:
    try:
        return WRITERS[export_format]
    except KeyError:
        raise ValueError(f"unknown export format {export_format!r}; expected one of {', '.join(WRITERS)}") from None
