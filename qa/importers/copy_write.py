"""How the QA importer (``qa.importers.jsonl``) writes a batch's pair rows: PostgreSQL's
``COPY FROM STDIN``, else ``bulk_create``, over the columns :data:`COPY_COLUMNS`."""

from __future__ import annotations

import orjson
from django.db import connection

from qa.models import QAPair

COPY_COLUMNS = (
    "dataset_id",
    "image_id",
    "key",
    "version",
    "is_current",
    "category_id",
    "dimension_id",
    "question_type",
    "question",
    "options",
    "answer_index",
    "answer",
    "rationale",
    "content_hash",
    "status",
    "reject_reason",
    "review_note",
    "priority",
    "critic_answer",
    "critic_agrees",
    "author_kind",
    "author_name",
    "model_name",
    "prompt_version",
    "import_run_id",
    "created_at",
)
_OPTIONS = COPY_COLUMNS.index("options")
USE_COPY = True  # tests switch it off to check the portable path on PostgreSQL too


def insert_pairs(rows: list[tuple]) -> None:
    """Insert pair rows (:data:`COPY_COLUMNS`): PostgreSQL's ``COPY FROM STDIN`` (psycopg 3),
    else ``bulk_create``. Call inside a transaction; constraints hold either way."""
    if not rows:
        return
    if connection.vendor == "postgresql" and USE_COPY:
        table = QAPair._meta.db_table
        columns = ", ".join(connection.ops.quote_name(c) for c in COPY_COLUMNS)
        with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                options = row[_OPTIONS]
                if options is not None:
                    row = (*row[:_OPTIONS], orjson.dumps(options).decode(), *row[_OPTIONS + 1 :])
                copy.write_row(row)
        return
    QAPair.objects.bulk_create([QAPair(**dict(zip(COPY_COLUMNS, row))) for row in rows])
