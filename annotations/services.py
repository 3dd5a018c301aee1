"""Writes to datasets, images and annotations. Reads live in ``selectors.py``."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
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
from annotations.validation import AnnotationInput


def dataset_get_or_create(*, slug: str, name: str = "", created_by: AbstractBaseUser | None = None) -> tuple[Dataset, bool]:
    return Dataset.objects.get_or_create(slug=slug, defaults={"name": name or slug, "created_by": created_by})


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
    _create_triplets(annotation, data)
    return annotation


def _create_triplets(annotation: Annotation, data: AnnotationInput) -> None:
    triplets = [
        Triplet(annotation=annotation, index=i, key=uuid.UUID(t.key) if t.key else uuid.uuid4())
        for i, t in enumerate(data.triplets)
    ]
    Triplet.objects.bulk_create(triplets)
    elements = []
    for triplet, t_input in zip(triplets, data.triplets):
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
