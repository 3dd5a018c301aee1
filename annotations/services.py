"""Writes to datasets, images and annotations. Reads live in ``selectors.py``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from annotations.errors import InvalidAnnotation, VersionConflict
from annotations.models import (
    Annotation,
    AnnotationKind,
    Dataset,
    Decision,
    Element,
    Image,
    ImageStatus,
    ImportRun,
    Triplet,
)
from annotations.validation import AnnotationInput, check_storable
from core.vocabulary import TaxonomyError, taxonomy_from_spec


def dataset_taxonomy_spec(value: Any) -> dict:
    """The stored form of a taxonomy given as a built-in name (``"ekman"``) or an object
    (docs/taxonomies.md). Raises :class:`InvalidAnnotation` naming the part that is wrong."""
    try:
        return taxonomy_from_spec(value).to_spec()
    except TaxonomyError as exc:
        raise InvalidAnnotation(exc.field, exc.detail) from None


def dataset_has_labels(dataset: Dataset) -> bool:
    """Whether any image or annotation version of ``dataset`` carries an emotion label."""
    return (Image.objects.filter(dataset=dataset, label__isnull=False).exists()
            or Annotation.objects.filter(image__dataset=dataset, ces_label__isnull=False).exists())


def dataset_check_taxonomy_change(*, dataset: Dataset, spec: dict) -> None:
    """Refuse to give ``dataset`` another taxonomy once a label is stored under its own:
    the stored labels, distributions, statistics and exports would stop meaning anything."""
    if dataset.pk is None or taxonomy_from_spec(spec) == dataset.get_taxonomy():
        return
    if dataset_has_labels(dataset):
        raise InvalidAnnotation(
            "taxonomy", f"dataset {dataset.slug} already has emotion labels under the taxonomy "
                        f"{dataset.get_taxonomy().name!r}; its taxonomy can no longer change (create a new dataset)")


def dataset_get_or_create(*, slug: str, name: str = "", created_by: AbstractBaseUser | None = None,
                          taxonomy: Any = None) -> tuple[Dataset, bool]:
    """The dataset ``slug``, created with ``taxonomy`` (a built-in name or an object; default
    Mikels') when new. An existing dataset with another taxonomy raises :class:`InvalidAnnotation`."""
    defaults: dict[str, Any] = {"name": name or slug, "created_by": created_by}
    spec = None if taxonomy is None else dataset_taxonomy_spec(taxonomy)
    if spec is not None:
        defaults["taxonomy"] = spec
    dataset, created = Dataset.objects.get_or_create(slug=slug, defaults=defaults)
    if not created and spec is not None and taxonomy_from_spec(spec) != dataset.get_taxonomy():
        raise InvalidAnnotation("taxonomy", f"dataset {slug} exists with the taxonomy {dataset.get_taxonomy().name!r}, "
                                            f"not {spec['name']!r}")
    return dataset, created


def _check_storable(**values: Any) -> None:
    """Every text and JSON value of a new version follows ``core.text``'s policy. The API and
    the importer have checked their input already; this holds any other caller (the
    pipeline saving a model's output) to the same rule. Raises :class:`InvalidAnnotation`."""
    for name, value in values.items():
        check_storable(value, name)


@transaction.atomic
def annotation_create(
    *,
    image: Image,
    data: AnnotationInput,
    kind: str,
    author_name: str,
    author_user: AbstractBaseUser | None = None,
    parent: Annotation | None = None,
    expected_version: int | None = None,
    decision: str = Decision.NONE,
    decision_reason: str = "",
    prompt_version: str = "",
    pipeline_version: str = "",
    raw_output: str = "",
    raw_distribution: dict[str, float] | None = None,
    critic: dict | None = None,
    extra: dict[str, Any] | None = None,
    import_run: ImportRun | None = None,
) -> Annotation:
    """Create a new immutable version of ``author_name``'s annotation of ``image``.

    Locks the image row (``SELECT … FOR UPDATE``) so versions are numbered without
    gaps or duplicates. The author's previous current version stays in the table
    with ``is_current=False``. With ``expected_version`` set, the image's latest
    version must still be that number, else :class:`VersionConflict` says what
    changed since (optimistic concurrency for review edits).
    """
    if kind not in AnnotationKind.values:
        raise InvalidAnnotation("kind", f"unknown annotation kind {kind!r}")
    _check_storable(author_name=author_name, decision_reason=decision_reason, prompt_version=prompt_version,
                    pipeline_version=pipeline_version, raw_output=raw_output, raw_distribution=raw_distribution,
                    critic=critic, extra=extra)
    locked = Image.objects.select_for_update().get(pk=image.pk)
    latest = locked.annotations.aggregate(v=Max("version"))["v"] or 0
    if expected_version is not None and latest != expected_version:
        newer = list(
            locked.annotations.filter(version__gt=expected_version)
            .order_by("version")
            .values("version", "kind", "author_name", "created_at")
        )
        raise VersionConflict(
            f"The image changed since version {expected_version}: it is now at version {latest}.",
            changes={"expected_version": expected_version, "current_version": latest, "newer_versions": newer},
        )
    Annotation.objects.filter(image=locked, kind=kind, author_name=author_name, is_current=True).update(is_current=False)
    annotation = Annotation.objects.create(
        image=locked,
        version=latest + 1,
        parent=parent,
        kind=kind,
        author_name=author_name,
        author_user=author_user,
        decision=decision,
        decision_reason=decision_reason,
        ces_label=data.ces.label if data.ces else None,
        ces_confidence=data.ces.confidence if data.ces else None,
        ces_distribution=data.ces.distribution if data.ces else None,
        ces_raw_distribution=raw_distribution,
        des=data.des,
        rationale=data.rationale,
        prompt_version=prompt_version,
        pipeline_version=pipeline_version,
        raw_output=raw_output,
        critic=critic,
        extra=extra or {},
        import_run=import_run,
    )
    _create_triplets([(annotation, data)])
    return annotation


@dataclass(frozen=True)
class NewAnnotation:
    """One version for :func:`annotation_bulk_create` (the fields of :func:`annotation_create`)."""

    image: Image
    data: AnnotationInput
    kind: str
    author_name: str
    decision: str = Decision.NONE
    decision_reason: str = ""
    prompt_version: str = ""
    pipeline_version: str = ""
    raw_output: str = ""
    raw_distribution: dict[str, float] | None = None
    critic: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    import_run: ImportRun | None = None


DEMOTE_CHUNK = 200  # (image, kind, author) triples per UPDATE: keeps SQLite's expression depth small


def annotation_versions_demote(items: Sequence[NewAnnotation], image_ids: list[int]) -> dict[int, int]:
    """The newest version of each image in ``image_ids``; the current annotations of every
    (image, kind, author) in ``items`` are no longer current. For a batch about to be written."""
    latest = dict(
        Annotation.objects.filter(image_id__in=image_ids).order_by().values("image_id")
        .annotate(v=Max("version")).values_list("image_id", "v")
    )
    demote = sorted({(item.image.pk, item.kind, item.author_name) for item in items if item.image.pk in latest})
    for start in range(0, len(demote), DEMOTE_CHUNK):
        where = Q()
        for image_id, kind, author in demote[start : start + DEMOTE_CHUNK]:
            where |= Q(image_id=image_id, kind=kind, author_name=author)
        Annotation.objects.filter(where, is_current=True).update(is_current=False)
    return latest


@transaction.atomic
def annotation_bulk_create(*, items: Sequence[NewAnnotation]) -> list[Annotation]:
    """:func:`annotation_create` for many versions at once, in a fixed number of queries (imports).

    Same rules: the images are locked (``SELECT … FOR UPDATE``, in id order), each
    image's versions continue its numbering in the order of ``items``, and per image
    and author only the newest version is current. Returns the annotations in the
    order of ``items``.
    """
    if not items:
        return []
    for item in items:
        if item.kind not in AnnotationKind.values:
            raise InvalidAnnotation("kind", f"unknown annotation kind {item.kind!r}")
        _check_storable(author_name=item.author_name, decision_reason=item.decision_reason,
                        prompt_version=item.prompt_version, pipeline_version=item.pipeline_version,
                        raw_output=item.raw_output, raw_distribution=item.raw_distribution, critic=item.critic,
                        extra=item.extra)
    image_ids = sorted({item.image.pk for item in items})
    list(Image.objects.select_for_update().filter(pk__in=image_ids).order_by("pk").values_list("pk", flat=True))
    latest = annotation_versions_demote(items, image_ids)
    newest = {(item.image.pk, item.kind, item.author_name): i for i, item in enumerate(items)}
    annotations = []
    for i, item in enumerate(items):
        version = latest.get(item.image.pk, 0) + 1
        latest[item.image.pk] = version
        data = item.data
        annotations.append(
            Annotation(
                image_id=item.image.pk,
                version=version,
                kind=item.kind,
                author_name=item.author_name,
                is_current=newest[(item.image.pk, item.kind, item.author_name)] == i,
                decision=item.decision,
                decision_reason=item.decision_reason,
                ces_label=data.ces.label if data.ces else None,
                ces_confidence=data.ces.confidence if data.ces else None,
                ces_distribution=data.ces.distribution if data.ces else None,
                ces_raw_distribution=item.raw_distribution,
                des=data.des,
                rationale=data.rationale,
                prompt_version=item.prompt_version,
                pipeline_version=item.pipeline_version,
                raw_output=item.raw_output,
                critic=item.critic,
                extra=item.extra or {},
                import_run=item.import_run,
            )
        )
    Annotation.objects.bulk_create(annotations)
    _create_triplets([(annotation, item.data) for annotation, item in zip(annotations, items)])
    return annotations


def _create_triplets(pairs: Sequence[tuple[Annotation, AnnotationInput]]) -> None:
    """The triplets and elements of saved annotations: two INSERTs for any number of them."""
    triplets, inputs = [], []
    for annotation, data in pairs:
        for i, t in enumerate(data.triplets):
            triplets.append(Triplet(annotation=annotation, index=i, key=uuid.UUID(t.key) if t.key else uuid.uuid4()))
            inputs.append(t)
    Triplet.objects.bulk_create(triplets)
    elements = []
    for triplet, t_input in zip(triplets, inputs):
        for e in t_input.elements:
            box = e.box or (None, None, None, None)
            elements.append(
                Element(
                    triplet=triplet,
                    role=e.role,
                    phrase=e.phrase,
                    status=e.status,
                    x0=box[0],
                    y0=box[1],
                    x1=box[2],
                    y1=box[3],
                    box_score=e.box_score,
                    mask_counts=e.mask["counts"] if e.mask else None,
                    mask_height=e.mask["size"][0] if e.mask else None,
                    mask_width=e.mask["size"][1] if e.mask else None,
                    mask_score=e.mask_score,
                )
            )
    Element.objects.bulk_create(elements)


STATUS_FIELDS = ("label", "confidence", "agreement", "priority")


def images_set_status(updates: Sequence[tuple[Image, dict[str, Any]]], *, status: str) -> None:
    """:func:`image_set_status` for many images in one UPDATE; each image comes with its own fields."""
    if status not in ImageStatus.values:
        raise InvalidAnnotation("status", f"unknown image status {status!r}")
    if not updates:
        return
    now = timezone.now()
    groups: dict[tuple[str, ...], list[Image]] = {}  # only the fields given are written, per image
    for image, fields in updates:
        unknown = set(fields) - set(STATUS_FIELDS)
        if unknown:
            raise TypeError(f"images_set_status() got unexpected fields {sorted(unknown)}")
        image.status, image.updated_at = status, now
        for name, value in fields.items():
            setattr(image, name, value)
        groups.setdefault(tuple(sorted(fields)), []).append(image)
    for names, images in groups.items():
        _update_rows(images, ["status", "updated_at", *names])


def _update_rows(images: Sequence[Image], names: Sequence[str]) -> None:
    """Write ``names`` of every image in one statement on PostgreSQL (``UPDATE … FROM unnest(…)``,
    one array per column: one statement for the server to plan, however many images); elsewhere
    one prepared ``UPDATE … WHERE id = %s`` per image (``executemany``). Both many times faster
    than ``bulk_update``'s CASE expressions for a batch of an import. An image given twice gets
    the values of its last entry, as the statements in order would give it."""
    meta = Image._meta
    fields = [meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    last = {image.pk: image for image in images}  # the last entry of an image wins
    rows = [[f.get_db_prep_save(getattr(image, f.attname), connection) for f in fields] + [pk_value]
            for pk_value, image in last.items()]
    if connection.vendor == "postgresql":
        columns = [*(f.column for f in fields), meta.pk.column]
        arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in [*fields, meta.pk])
        sql = "UPDATE {} SET {} FROM unnest({}) AS v({}) WHERE {}.{} = v.{}".format(
            table, ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in fields), arrays,
            ", ".join(quote(c) for c in columns), table, pk, pk,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [list(column) for column in zip(*rows)])
        return
    sql = "UPDATE {} SET {} WHERE {} = %s".format(table, ", ".join(f"{quote(f.column)} = %s" for f in fields), pk)
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def image_set_status(*, image: Image, status: str, **fields: Any) -> Image:
    """Set the image's workflow status (and denormalised fields such as label, priority)."""
    if status not in ImageStatus.values:
        raise InvalidAnnotation("status", f"unknown image status {status!r}")
    allowed = {"label", "confidence", "agreement", "priority"}
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"image_set_status() got unexpected fields {sorted(unknown)}")
    Image.objects.filter(pk=image.pk).update(status=status, updated_at=timezone.now(), **fields)
    image.status = status
    for name, value in fields.items():
        setattr(image, name, value)
    return image
