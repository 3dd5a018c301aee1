"""Reads of the exports app: where snapshots lie, which images and annotations an export takes, staleness.

A ``running`` snapshot whose heartbeat (``heartbeat_at``, the database's clock) is
older than ``EMOVERSE_EXPORT_STALE_SECONDS`` (default 600) is stale: its worker
died. Pages and APIs show it as such and let an admin restart it; nothing here
writes (the periodic ``exports.periodic.fail_stale_exports`` marks it failed).
The heartbeat lives in the database, so the web process judges a worker on
another machine correctly.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from annotations.models import Annotation, AnnotationKind, Dataset, Element, Image, Triplet
from annotations.selectors import final_annotation_ids
from exports.filters import ExportFilters
from exports.models import ExportSnapshot, ExportStatus
from exports.writers.items import (
    ANNOTATION_FIELDS,
    ELEMENT_FIELDS,
    IMAGE_FIELDS,
    ExportAnnotation,
    ExportElement,
    ExportImage,
    ExportTriplet,
)

# Large columns a writer never reads.
ANNOTATION_DEFERRED = ("raw_output", "critic", "ces_raw_distribution")
_MODEL = AnnotationKind.MODEL.value


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "EMOVERSE_EXPORT_STALE_SECONDS", 600))


def export_root() -> Path:
    return Path(settings.EXPORT_ROOT)


def export_images(*, dataset: Dataset, filters: ExportFilters) -> QuerySet[Image]:
    """The dataset's images that the filters select in SQL, oldest first (the final annotation is checked later).

    Iterate ``export_image_rows`` of it for the rows an export reads.
    """
    images = Image.objects.filter(dataset=dataset, status__in=filters.status)
    if filters.source:
        images = images.filter(source__in=filters.source)
    if filters.label:
        images = images.filter(label__in=filters.label)
    if filters.min_agreement is not None:
        images = images.filter(agreement__gte=filters.min_agreement)
    if filters.date_field == "image":
        if filters.since is not None:
            images = images.filter(created_at__gte=filters.since)
        if filters.until is not None:
            images = images.filter(created_at__lt=filters.until)
    return images.order_by("id")


def export_image_rows(images: QuerySet[Image], *, chunk_size: int, plain_sql: bool = False) -> Iterator[list[ExportImage]]:
    """``images`` as :class:`ExportImage` rows, ``chunk_size`` at a time (a server-side cursor on
    PostgreSQL: memory does not grow with the dataset). ``plain_sql`` (PostgreSQL): the queryset's
    SQL through a binary psycopg cursor instead of ``values_list``."""
    make = tuple.__new__
    if plain_sql:  # binary rows, no Django per-row work (a WITH HOLD cursor, as iterator())
        sql, params = images.values_list(*IMAGE_FIELDS).query.sql_with_params()
        connection.ensure_connection()
        with connection.connection.cursor(name=f"export_images_{uuid.uuid4().hex}", withhold=True) as cursor:
            cursor.execute(sql, params, binary=True)
            while chunk := cursor.fetchmany(chunk_size):
                yield [make(ExportImage, row) for row in chunk]
        return
    rows = images.values_list(*IMAGE_FIELDS).iterator(chunk_size=chunk_size)
    while chunk := list(islice(rows, chunk_size)):
        yield [make(ExportImage, row) for row in chunk]


def export_chunk(
    image_ids: list[int], *, include_auto_accepted: bool
) -> tuple[dict[int, ExportAnnotation], set[int]]:
    """The final annotation of each image (the rule of :func:`final_annotation_ids`) as plain
    rows with their triplets and elements, and the ids of the images left out because their only
    final is auto-accepted (unless ``include_auto_accepted``): four queries for any number of images.

    What :func:`final_annotations_and_withheld` gives as model instances, at a fraction of the cost.
    """
    candidates = final_annotation_ids(image_ids, include_auto_accepted=True).values()
    rows = Annotation.objects.filter(pk__in=list(candidates)).values_list(*ANNOTATION_FIELDS)
    annotations = [ExportAnnotation(*row) for row in rows]
    withheld: set[int] = set()
    if not include_auto_accepted:
        withheld = {a.image_id for a in annotations if a.kind == _MODEL}
        annotations = [a for a in annotations if a.kind != _MODEL]
    by_id = {a.id: a for a in annotations}
    triplets: dict[int, ExportTriplet] = {}
    triplet_rows = (Triplet.objects.filter(annotation_id__in=list(by_id)).order_by("annotation_id", "index")
                    .values_list("id", "annotation_id", "index", "key"))
    for pk, annotation_id, index, key in triplet_rows:
        triplet = triplets[pk] = ExportTriplet(index=index, key=str(key), elements=[])
        by_id[annotation_id].triplets.append(triplet)
    make = tuple.__new__
    element_rows = (Element.objects.filter(triplet__annotation_id__in=list(by_id)).order_by("triplet_id", "role")
                    .values_list(*ELEMENT_FIELDS))
    for row in element_rows:
        triplets[row[0]].elements.append(make(ExportElement, row))
    return {a.image_id: a for a in annotations}, withheld


def final_annotations(image_ids: Iterable[int], *, include_auto_accepted: bool = False) -> dict[int, Annotation]:
    """Each image's final annotation, with triplets and elements (4 queries for any number of images).

    The rule of :func:`annotations.selectors.final_annotation_ids`; images without
    a final annotation (model-only; auto-accepted ones too unless
    ``include_auto_accepted``) are absent.
    """
    return final_annotations_and_withheld(image_ids, include_auto_accepted=include_auto_accepted)[0]


def final_annotations_and_withheld(
    image_ids: Iterable[int], *, include_auto_accepted: bool
) -> tuple[dict[int, Annotation], set[int]]:
    """:func:`final_annotations` and the ids of the images left out because their only final is auto-accepted."""
    candidates = final_annotation_ids(image_ids, include_auto_accepted=True).values()
    annotations = list(Annotation.objects.filter(pk__in=list(candidates)).defer(*ANNOTATION_DEFERRED))
    withheld: set[int] = set()
    if not include_auto_accepted:
        withheld = {a.image_id for a in annotations if a.kind == AnnotationKind.MODEL}
        annotations = [a for a in annotations if a.kind != AnnotationKind.MODEL]
    chosen = [a.pk for a in annotations]
    triplets = list(Triplet.objects.filter(annotation_id__in=chosen).order_by("annotation_id", "index"))
    elements = Element.objects.filter(triplet__annotation_id__in=chosen).order_by("triplet_id", "role")
    _attach(triplets, "elements", Element, elements, "triplet_id")
    _attach(annotations, "triplets", Triplet, triplets, "annotation_id")
    return {annotation.image_id: annotation for annotation in annotations}, withheld


def _attach(parents: list, name: str, model: type, children: Iterable, parent_field: str) -> None:
    """Fill ``parent.<name>.all()`` from ``children`` like ``prefetch_related`` does.

    ``annotations_with_elements`` gives the same result, but Django's prefetch
    builds a filtered queryset per parent object, which made it the larger part
    of an export's time (three queries and one grouping pass here instead).
    """
    groups: dict[int, list] = defaultdict(list)
    for child in children:
        groups[getattr(child, parent_field)].append(child)
    for parent in parents:
        cached = QuerySet(model=model)
        cached._result_cache = groups.get(parent.pk, [])
        cached._prefetch_done = True
        parent._prefetched_objects_cache = {**getattr(parent, "_prefetched_objects_cache", {}), name: cached}


def last_heartbeat(snapshot: ExportSnapshot) -> datetime | None:
    """When the running attempt last reported (``heartbeat_at``, else its start); None if never started."""
    return snapshot.heartbeat_at or snapshot.started_at


def snapshot_is_stale(snapshot: ExportSnapshot, *, now: datetime | None = None) -> bool:
    """A ``running`` snapshot without progress for longer than the stale timeout (its worker died)."""
    if snapshot.status != ExportStatus.RUNNING:
        return False
    last = last_heartbeat(snapshot)
    return last is not None and (now or timezone.now()) - last > stale_after()


def final_dir(snapshot: ExportSnapshot) -> Path:
    return export_root() / snapshot.path


def partial_dir(snapshot: ExportSnapshot, token: datetime | None = None) -> Path:
    """The folder of the attempt that started at ``token`` (default: the snapshot's current attempt)."""
    token = token or snapshot.started_at
    final = final_dir(snapshot)
    return final.parent / f".{final.name}.{token.strftime('%Y%m%dT%H%M%S%f')}.partial"



def interrupted_note(snapshot: ExportSnapshot) -> str:
    """What a stale snapshot is told: since when it is silent, and what to do."""
    return (f"Interrupted: no progress since {last_heartbeat(snapshot):%Y-%m-%d %H:%M:%S} UTC "
            f"(the worker was probably stopped). Restart the export.")


def snapshot_list(*, limit: int = 200) -> list[ExportSnapshot]:
    """The newest snapshots with dataset and author; each has ``stale`` set (:func:`snapshot_is_stale`)."""
    now = timezone.now()
    snapshots = list(ExportSnapshot.objects.select_related("dataset", "created_by").order_by("-created_at", "-id")[:limit])
    for snapshot in snapshots:
        snapshot.stale = snapshot_is_stale(snapshot, now=now)
    return snapshots
