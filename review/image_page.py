"""Reads for the read-only image page: which annotations and versions a user may see.

A person who only reviews must not see another reviewer's answer to an image
they may still be asked to review independently: until they have submitted
their own review of it (or the image is finished), other people's human
versions are hidden from them. Adjudicators, researchers and admins see all.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, AnnotationKind, Image, ImageStatus
from annotations.roles import has_role
from annotations.selectors import annotations_with_elements, image_current_annotations
from core.vocabulary import ADJUDICATOR, ADMIN, EMOTIONS, RESEARCHER, ROLES
from review.selectors import annotation_payload, reviewer_has_submitted

FINISHED = (ImageStatus.APPROVED, ImageStatus.REJECTED, ImageStatus.FLAGGED)
PERSON_KINDS = (AnnotationKind.HUMAN, AnnotationKind.ADJUDICATION)


def sees_all_reviews(*, image: Image, user: AbstractBaseUser) -> bool:
    if has_role(user, ADJUDICATOR, RESEARCHER, ADMIN) or image.status in FINISHED:
        return True
    return reviewer_has_submitted(image=image, user=user)


def _hidden(user: AbstractBaseUser) -> Q:
    """Other people's review versions."""
    return Q(kind__in=PERSON_KINDS) & ~Q(author_user=user)


def visible_versions(*, image: Image, user: AbstractBaseUser) -> QuerySet[Annotation]:
    """Every version of the image the user may see, newest first."""
    qs = image.annotations.select_related("author_user").order_by("-version")
    return qs if sees_all_reviews(image=image, user=user) else qs.exclude(_hidden(user))


def image_page_annotations(*, image: Image, user: AbstractBaseUser, version: int | None = None) -> list[dict[str, Any]]:
    """The current annotation of every author the user may see, as review API payloads
    plus ``is_current``; with ``version``, that version too (first) when it is visible."""
    everything = sees_all_reviews(image=image, user=user)
    current = [a for a in image_current_annotations(image=image)
               if everything or a.kind not in PERSON_KINDS or a.author_user_id == user.pk]
    current.sort(key=_shown_first)
    out = []
    if version is not None and not any(a.version == version for a in current):
        found = annotations_with_elements(visible_versions(image=image, user=user).filter(version=version))[:1]
        out += [_for_page(a, is_current=a.is_current) for a in found]
    out += [_for_page(a, is_current=True) for a in current]
    return out


def _shown_first(annotation: Annotation) -> tuple[int, int]:
    """People's answers first (adjudication, then reviews), then the pipeline's, then the annotators'; newest first."""
    rank = {AnnotationKind.ADJUDICATION: 0, AnnotationKind.HUMAN: 1, AnnotationKind.IMPORT: 2}.get(annotation.kind, 4)
    if annotation.kind == AnnotationKind.MODEL and annotation.author_name == PIPELINE_AUTHOR:
        rank = 3
    return rank, -annotation.version


def _for_page(annotation: Annotation, *, is_current: bool) -> dict[str, Any]:
    """The API payload plus what the template needs: elements as (role, element) rows and the
    distribution as (emotion, probability) rows in Mikels' order."""
    payload = annotation_payload(annotation)
    payload["is_current"] = is_current
    payload["rows"] = [[(role, t[role]) for role in ROLES if role in t] for t in payload["triplets"]]
    distribution = (payload["ces"] or {}).get("distribution") or {}
    payload["distribution"] = [(e, distribution.get(e, 0.0)) for e in EMOTIONS] if distribution else []
    return payload
