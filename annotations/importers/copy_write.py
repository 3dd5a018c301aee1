"""A batch's new images and annotation versions written with PostgreSQL's ``COPY`` (the importer's write).

:func:`images_write` inserts new image rows as ``bulk_create`` does (ids set on the
instances, ``auto_now``/``auto_now_add`` filled, one statement), with one ``COPY``;
a row the table refuses (the unique content per dataset, a check) raises the
database's error, as the insert would.

:func:`annotations_write` makes the same rows as
:func:`annotations.services.annotation_bulk_create`, under the same rules (checked kinds
and storable values; versions numbered per image in the order given, after the image's
newest; per image and author only the newest current, the older ones demoted), in the
caller's transaction. On PostgreSQL the rows go in with one ``COPY`` per table, their ids
drawn from the tables' sequences first (one query each), instead of multi-row ``INSERT``
statements built through model instances: about a tenth of the CPU per row, in this
process and in the server. Any other database takes ``annotation_bulk_create``.

Every column is written: the values of the version, else the field's default (a callable
one called per row), ``auto_now_add`` the time of the row, else NULL; a field added to a
model later is written the same way, or refused by its NOT NULL constraint (the batch
then goes line by line, through the services).
"""

from __future__ import annotations

import uuid
from itertools import chain
from operator import itemgetter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from django.db import connection, models
from django.utils import timezone

from annotations.errors import InvalidAnnotation
from annotations.models import Annotation, AnnotationKind, Element, Image, Triplet
from annotations.services import NewAnnotation, annotation_bulk_create, annotation_versions_demote
from annotations.validation import check_storable


_CHECKED_TEXT = ("author_name", "decision_reason", "prompt_version", "pipeline_version", "raw_output")
_CHECKED_JSON = ("raw_distribution", "critic", "extra")


def annotations_write(*, items: Sequence[NewAnnotation], json_checked: bool = False) -> None:
    """Write ``items`` as :func:`~annotations.services.annotation_bulk_create` does. Call
    inside a transaction with the items' images locked (``SELECT … FOR UPDATE``, id order).
    ``json_checked``: the items' JSON values (raw distribution, critic, extra) are made of
    values read under the text policy (an import line, :func:`~annotations.importers.emoverse_parse.load_json`)
    and are not walked again (PostgreSQL; the other databases check them in the service)."""
    if not items:
        return
    if connection.vendor != "postgresql":
        annotation_bulk_create(items=items)
        return
    kinds, checked = frozenset(AnnotationKind.values), set()
    for item in items:
        if item.kind not in kinds:
            raise InvalidAnnotation("kind", f"unknown annotation kind {item.kind!r}")
        for name in _CHECKED_TEXT:  # the same few values on most lines: each checked once
            value = getattr(item, name)
            if (name, value) not in checked:
                check_storable(value, name)
                checked.add((name, value))
        for name in () if json_checked else _CHECKED_JSON:
            check_storable(getattr(item, name), name)
    image_ids = sorted({item.image.pk for item in items})
    latest = annotation_versions_demote(items, image_ids)
    newest = {(item.image.pk, item.kind, item.author_name): i for i, item in enumerate(items)}
    annotation_ids = _reserve_ids(Annotation, len(items))
    annotations, triplets, elements = [], [], []
    for i, (item, annotation_id) in enumerate(zip(items, annotation_ids)):
        version = latest.get(item.image.pk, 0) + 1
        latest[item.image.pk] = version
        annotations.append(_annotation_row(item, annotation_id, version, newest[(item.image.pk, item.kind, item.author_name)] == i))
        for index, triplet in enumerate(item.data.triplets):
            triplets.append({"annotation_id": annotation_id, "index": index,
                             "key": uuid.UUID(triplet.key) if triplet.key else uuid.uuid4()})
            elements.append(triplet.elements)
    triplet_ids = _reserve_ids(Triplet, len(triplets))
    for row, triplet_id in zip(triplets, triplet_ids):
        row["id"] = triplet_id
    _copy(Annotation, annotations)
    _copy(Triplet, triplets)
    _copy(Element, (_element_row(triplet_id, e) for triplet_id, found in zip(triplet_ids, elements) for e in found),
          with_id=False)


def images_write(*, images: Sequence[Image]) -> None:
    """Insert ``images`` (new, unsaved instances) as ``Image.objects.bulk_create`` does: each
    instance gets its id, and its ``auto_now``/``auto_now_add`` fields the time of the write."""
    if not images:
        return
    if connection.vendor != "postgresql":
        Image.objects.bulk_create(list(images))
        return
    now = timezone.now()
    fields = Image._meta.concrete_fields
    stamped = [f.attname for f in fields if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False)]
    files = {f.attname for f in fields if isinstance(f, models.FileField)}
    for image, image_id in zip(images, _reserve_ids(Image, len(images))):
        image.pk = image_id
        for name in stamped:
            setattr(image, name, now)
        image._state.adding, image._state.db = False, connection.alias
    _copy(Image, ({f.attname: (getattr(image, f.attname).name if f.attname in files else getattr(image, f.attname))
                   for f in fields} for image in images))


def _annotation_row(item: NewAnnotation, annotation_id: int, version: int, is_current: bool) -> dict[str, Any]:
    data, ces = item.data, item.data.ces
    return {
        "id": annotation_id, "image_id": item.image.pk, "version": version, "kind": item.kind,
        "author_name": item.author_name, "is_current": is_current, "decision": item.decision,
        "decision_reason": item.decision_reason, "ces_label": ces.label if ces else None,
        "ces_confidence": ces.confidence if ces else None, "ces_distribution": ces.distribution if ces else None,
        "ces_raw_distribution": item.raw_distribution, "des": data.des, "rationale": data.rationale,
        "prompt_version": item.prompt_version, "pipeline_version": item.pipeline_version,
        "raw_output": item.raw_output, "critic": item.critic, "extra": item.extra or {},
        "import_run_id": item.import_run.pk if item.import_run is not None else None,
    }


def _element_row(triplet_id: int, e: Any) -> dict[str, Any]:
    box = e.box or (None, None, None, None)
    return {
        "triplet_id": triplet_id, "role": e.role, "phrase": e.phrase, "status": e.status,
        "x0": box[0], "y0": box[1], "x1": box[2], "y1": box[3], "box_score": e.box_score,
        "mask_counts": e.mask["counts"] if e.mask else None, "mask_height": e.mask["size"][0] if e.mask else None,
        "mask_width": e.mask["size"][1] if e.mask else None, "mask_score": e.mask_score,
    }


def _reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """``count`` fresh ids from the sequence behind ``model``'s primary key (one query)."""
    if not count:
        return []
    table, column = model._meta.db_table, model._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)", [table, column, count])
        return [row[0] for row in cursor.fetchall()]


def _json_text(value: Any) -> str | None:
    """A JSON column's value as the text COPY reads (None: SQL NULL, as the ORM writes it)."""
    return None if value is None else orjson.dumps(value).decode()


def _column_value(field: models.Field, given: bool) -> Callable[[dict[str, Any]], Any]:
    """How one column of a row is found: the row's value (``given``: the rows hold it), else
    what the ORM would write."""
    name = field.attname
    json = isinstance(field, models.JSONField)
    if given:
        return (lambda row: _json_text(row[name])) if json else itemgetter(name)
    if getattr(field, "auto_now_add", False) or getattr(field, "auto_now", False):
        fallback: Callable[[], Any] = timezone.now
    elif field.has_default():
        fallback = field.get_default
    else:
        return lambda row: None  # NULL, or the NOT NULL constraint refuses the row
    return (lambda row: _json_text(fallback())) if json else (lambda row: fallback())


def _copy(model: type[models.Model], rows: Iterable[dict[str, Any]], *, with_id: bool = True) -> None:
    """``COPY`` ``rows`` (column attnames to values, the same keys in every row) into
    ``model``'s table, every column written (see the module docstring); without ``with_id``
    the table numbers the rows. A refused row raises Django's database error (``IntegrityError``…)."""
    fields = [f for f in model._meta.concrete_fields if with_id or not f.primary_key]
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    if len(fields) > 1 and all(f.attname in first and not isinstance(f, models.JSONField) for f in fields):
        row_values: Callable[[dict[str, Any]], Any] = itemgetter(*(f.attname for f in fields))  # every value given
    else:
        values = [_column_value(f, f.attname in first) for f in fields]
        row_values = lambda row: [value(row) for value in values]  # noqa: E731
    with connection.wrap_database_errors, connection.cursor() as cursor, cursor.cursor.copy(
        f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    ) as copy:
        for row in chain((first,), rows):
            copy.write_row(row_values(row))
