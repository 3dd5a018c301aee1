"""QA pairs as export rows: the shape of one JSONL line (docs/qa-jsonl.md), which is also
what ``import_qa`` reads, read from the database a chunk at a time.

The exports app's ``qa-jsonl`` and ``qa-parquet`` writers consume :func:`qa_export_chunks`;
nothing here writes files. Memory stays flat: rows come through a server-side cursor
(PostgreSQL) ``chunk_size`` at a time, and each chunk's element links in one more query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
from django.db.models import CharField, TextField
from django.db.models.functions import Cast

from qa.defaults import MULTIPLE_CHOICE
from qa.models import APPROVED_STATUSES, QAPair

PAIR_SELECTIONS = ("approved", "current")  # accepted or edited current versions; every current version
_FIELDS = (
    "id",
    "key_text",
    "version",
    "image__original_name",
    "image__sha256",
    "category__key",
    "dimension__key",
    "question_type",
    "question",
    "options_text",
    "answer_index",
    "answer",
    "rationale",
    "status",
    "reject_reason",
    "model_name",
    "prompt_version",
    "author_kind",
    "author_name",
    "critic_agrees",
    "created_at",
)


def qa_export_pairs(
    *,
    dataset_id: int,
    pairs: str = "approved",
    sources: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
):
    """The current pairs an export takes, in a stable order (by id): ``pairs`` ``approved``
    (accepted or edited, the default) or ``current`` (every status); the image's ``sources``;
    the pair's version made in ``[since, until)``."""
    if pairs not in PAIR_SELECTIONS:
        raise ValueError(f"pairs must be one of {PAIR_SELECTIONS}")
    qs = QAPair.objects.filter(dataset_id=dataset_id, is_current=True)
    if pairs == "approved":
        qs = qs.filter(status__in=APPROVED_STATUSES)
    if sources:
        qs = qs.filter(image__source__in=list(sources))
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs.order_by("id")


def _elements(pair_ids: list[int]) -> dict[int, list[dict[str, str]]]:
    through = QAPair.elements.through
    rows = (
        through.objects.filter(qapair_id__in=pair_ids)
        .values_list("qapair_id", "element__triplet__key", "element__role")
        .order_by("qapair_id", "element__triplet__index", "element__role")
    )
    out: dict[int, list[dict[str, str]]] = defaultdict(list)
    for pair_id, key, role in rows:
        out[pair_id].append({"triplet": str(key), "role": role})
    return out


def _row(values: tuple, elements: list[dict[str, str]] | None) -> dict[str, Any]:
    (
        pk,
        key,
        version,
        image,
        sha256,
        category,
        dimension,
        question_type,
        question,
        options,
        answer_index,
        answer,
        rationale,
        status,
        reject_reason,
        model,
        prompt_version,
        author_kind,
        author_name,
        critic_agrees,
        created_at,
    ) = values
    row: dict[str, Any] = {
        "key": key,
        "version": version,
        "image": image,
        "sha256": sha256,
        "category": category,
        "dimension": dimension,
        "type": question_type,
        "question": question,
    }
    if question_type == MULTIPLE_CHOICE:
        row["options"] = orjson.loads(options)
        row["answer"] = answer_index
    else:
        row["answer"] = answer
    if rationale:
        row["rationale"] = rationale
    if elements:
        row["elements"] = elements
    row["status"] = status
    if reject_reason:
        row["reject_reason"] = reject_reason
    if model:
        row["model"] = model
    if prompt_version:
        row["prompt_version"] = prompt_version
    row["author"] = {"kind": author_kind, "name": author_name}
    if critic_agrees is not None:
        row["critic_agrees"] = critic_agrees
    row["created_at"] = created_at
    return row


def qa_export_chunks(queryset, *, chunk_size: int = 5000) -> Iterator[list[dict[str, Any]]]:
    """Lists of export rows (dicts in the JSONL line's key order; ``created_at`` a datetime)."""
    rows = (
        queryset.annotate(key_text=Cast("key", CharField()), options_text=Cast("options", TextField()))
        .values_list(*_FIELDS)
        .iterator(chunk_size=chunk_size)
    )
    while chunk := list(islice(rows, chunk_size)):
        elements = _elements([values[0] for values in chunk])
        yield [_row(values, elements.get(values[0])) for values in chunk]
