"""Reads of datasets, images and annotations."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Max, OuterRef, Prefetch, Q, QuerySet, Subquery

from annotations.domain import PIPELINE_AUTHOR
from annotations.filters import ImageFilter
from annotations.models import (
    Annotation,
    AnnotationKind,
    Dataset,
    Decision,
    Element,
    Image,
    ImageStatus,
    Triplet,
)
from annotations.roles import has_role
from annotations.validation import des_to_list
from core.vocabulary import ADJUDICATOR, ADMIN, RESEARCHER, ROLES

# A rule that says which annotations a user must not read: a ``Q`` over Annotation.
HiddenAnswers = Callable[[AbstractBaseUser], Q]
_hidden_answer_rules: list[HiddenAnswers] = []


def annotations_with_elements(queryset: QuerySet[Annotation] | None = None) -> QuerySet[Annotation]:
    """Annotations with triplets and elements prefetched (two extra queries in all)."""
    queryset = Annotation.objects.all() if queryset is None else queryset
    return queryset.prefetch_related(
        Prefetch(
            "triplets",
            queryset=Triplet.objects.order_by("index").prefetch_related(
                Prefetch("elements", queryset=Element.objects.order_by("role"))
            ),
        )
    )


def elements_attach(annotations: list[Annotation]) -> list[Annotation]:
    """Load the triplets and elements of ``annotations`` in one query (elements joined with their
    triplets) and attach them as :func:`annotations_with_elements` would (two queries there):
    ``annotation.triplets.all()`` in index order, ``triplet.elements.all()`` in role order.
    For the review hot path, where every query counts."""
    by_id = {a.pk: a for a in annotations}
    triplets: dict[int, list[Triplet]] = {pk: [] for pk in by_id}
    elements: dict[int, list[Element]] = {}
    rows = (Element.objects.filter(triplet__annotation_id__in=list(by_id)).select_related("triplet")
            .order_by("triplet__annotation_id", "triplet__index", "role"))
    for element in rows:
        triplet = element.triplet
        if triplet.pk not in elements:
            elements[triplet.pk] = []
            triplets[triplet.annotation_id].append(triplet)
        elements[triplet.pk].append(element)
    # A triplet without elements cannot be stored (validation asks for at least one), so the
    # join misses none.
    for pk, annotation in by_id.items():
        for triplet in triplets[pk]:
            triplet.annotation = annotation
            _prefetched(triplet, "elements", elements[triplet.pk])
        _prefetched(annotation, "triplets", triplets[pk])
    return annotations


def _prefetched(instance: Any, name: str, rows: list) -> None:
    """Store ``rows`` as the prefetched result of ``instance.<name>.all()``, the way
    ``prefetch_related`` stores it (a queryset whose results are filled in)."""
    queryset = getattr(instance, name).get_queryset()  # lazy: no query
    queryset._result_cache, queryset._prefetch_done = rows, True
    if not hasattr(instance, "_prefetched_objects_cache"):
        instance._prefetched_objects_cache = {}
    instance._prefetched_objects_cache[name] = queryset


def hidden_answers_register(rule: HiddenAnswers) -> None:
    """Add a rule to :func:`visible_annotations` (idempotent).

    ``annotations`` knows nothing of leases and review slots (``review`` depends
    on it, not the reverse), so ``review`` registers its independence rule here
    when it loads (``review.apps``): other people's answers on an image the user
    holds or may still be given a review slot on (``review.visibility.others_answers``).
    """
    if rule not in _hidden_answer_rules:
        _hidden_answer_rules.append(rule)


def visible_annotations(user: AbstractBaseUser) -> QuerySet[Annotation]:
    """The annotations ``user`` may read through the annotations API.

    A user who is only a reviewer sees model and imported annotations and their
    own, never another person's answer; researchers, adjudicators and admins see
    the rest too. Then, whatever the roles, every registered rule
    (:func:`hidden_answers_register`) takes its annotations out: other people's
    answers on images the user holds or may still be given a review slot on.
    """
    queryset = Annotation.objects.all()
    if not has_role(user, ADMIN, RESEARCHER, ADJUDICATOR):
        queryset = queryset.filter(Q(kind__in=[AnnotationKind.MODEL, AnnotationKind.IMPORT]) | Q(author_user=user))
    for rule in _hidden_answer_rules:
        queryset = queryset.exclude(rule(user))
    return queryset


def image_current_annotations(*, image: Image) -> list[Annotation]:
    """The current version of every author's annotation, model answers first."""
    order = {AnnotationKind.MODEL: 0, AnnotationKind.IMPORT: 1, AnnotationKind.HUMAN: 2, AnnotationKind.ADJUDICATION: 3}
    rows = list(annotations_with_elements(image.annotations.filter(is_current=True)))
    return sorted(rows, key=lambda a: (order.get(a.kind, 9), a.author_name))


def final_annotation_ids(image_ids: Iterable[int], *, include_auto_accepted: bool = False) -> dict[int, int]:
    """Each image's final annotation id, in one query (images without one are absent).

    The rule (issue 5), newest version first within a tier:
    1. a current adjudication;
    2. else a current approved human review or curated import;
    3. else nothing: a model-only item has no final annotation.

    ``include_auto_accepted`` (opt-in, exports only) adds a third tier: the
    pipeline's merged model answer when the pipeline auto-accepted it
    (``decision`` approved, see the dataset's ``auto_accept_threshold``) and no
    person has reviewed the image since -- a current human version with any
    decision overrules it. Such an answer is machine-accepted, not human-approved;
    callers that mean "what people decided" (agreement, calibration, review)
    keep the default.
    """
    ids = list(image_ids)
    kinds = Q(kind__in=[AnnotationKind.ADJUDICATION, AnnotationKind.HUMAN, AnnotationKind.IMPORT])
    if include_auto_accepted:
        kinds |= Q(kind=AnnotationKind.MODEL, author_name=PIPELINE_AUTHOR, decision=Decision.APPROVED)
    rows = Annotation.objects.filter(image_id__in=ids, is_current=True).filter(kinds).values_list(
        "image_id", "id", "kind", "decision", "version"
    )
    best: dict[int, tuple[int, int, int]] = {}
    reviewed: set[int] = set()
    for image_id, pk, kind, decision, version in rows:
        if kind == AnnotationKind.ADJUDICATION:
            tier = 2
        elif kind == AnnotationKind.MODEL:
            tier = 0
        else:
            if kind == AnnotationKind.HUMAN:
                reviewed.add(image_id)
            if decision != Decision.APPROVED:
                continue
            tier = 1
        rank = (tier, version, pk)
        if image_id not in best or rank > best[image_id]:
            best[image_id] = rank
    return {
        image_id: rank[2] for image_id, rank in best.items() if not (rank[0] == 0 and image_id in reviewed)
    }


def image_final_annotation(*, image: Image) -> Annotation | None:
    """The image's final annotation (the rule of :func:`final_annotation_ids`), or None."""
    found = final_annotation_ids([image.pk]).get(image.pk)
    return None if found is None else annotations_with_elements(Annotation.objects.filter(pk=found)).first()


def element_to_dict(element: Element) -> dict[str, Any]:
    out: dict[str, Any] = {"phrase": element.phrase}
    if element.box is not None:
        out["box"] = element.box
    if element.box_score is not None:
        out["box_score"] = element.box_score
    if element.mask is not None:
        out["mask"] = element.mask
    if element.mask_score is not None:
        out["mask_score"] = element.mask_score
    if element.status != "pending":
        out["status"] = element.status
    return out


def triplets_to_list(triplets: Iterable[Triplet]) -> list[dict[str, Any]]:
    out = []
    for triplet in triplets:
        item: dict[str, Any] = {"key": str(triplet.key)}
        by_role = {e.role: e for e in triplet.elements.all()}
        for role in ROLES:
            if role in by_role:
                item[role] = element_to_dict(by_role[role])
        out.append(item)
    return out


def annotation_to_dict(annotation: Annotation, *, include_des: bool = True) -> dict[str, Any]:
    """The annotation part of an EmoVerse JSONL line (docs/emoverse-jsonl.md)."""
    out: dict[str, Any] = {"triplets": triplets_to_list(annotation.triplets.all())}
    if annotation.ces_label:
        out["ces"] = {
            "label": annotation.ces_label,
            "confidence": annotation.ces_confidence,
            "distribution": annotation.ces_distribution,
        }
    if include_des and annotation.des is not None:
        out["des"] = des_to_list(annotation.des)
    out["rationale"] = annotation.rationale
    annotator: dict[str, Any] = {"kind": annotation.kind, "name": annotation.author_name}
    if annotation.prompt_version:
        annotator["prompt_version"] = annotation.prompt_version
    out["annotator"] = annotator
    return out


def review_base_of(current: Iterable[Annotation]) -> Annotation | None:
    """The rule of :func:`image_review_base` over an image's current annotations."""
    current = list(current)
    for tier in (
        [a for a in current if a.kind == AnnotationKind.MODEL and a.author_name == PIPELINE_AUTHOR],
        [a for a in current if a.kind in (AnnotationKind.IMPORT, AnnotationKind.MODEL)],
    ):
        if tier:
            return max(tier, key=lambda a: a.version)
    return None


@dataclass(frozen=True)
class ReviewSources:
    """What a reviewer starts from (:func:`image_review_sources`)."""

    base: Annotation | None
    models: list[Annotation]  # the current model annotations other than the pipeline's, by author
    latest_version: int
    answers: list[Annotation]  # every current model and import annotation, by author


def image_review_sources(*, image_id: int) -> ReviewSources:
    """The image's review base (:func:`image_review_base`), its current model annotations other
    than the pipeline's merged one (the annotators, by author name) and its latest version, with
    triplets and elements, in two queries."""
    latest = Annotation.objects.filter(image_id=OuterRef("image_id")).order_by().values("image_id").annotate(v=Max("version"))
    current = list(
        Annotation.objects.filter(image_id=image_id, is_current=True, kind__in=[AnnotationKind.MODEL, AnnotationKind.IMPORT])
        .annotate(latest_version=Subquery(latest.values("v")))
    )
    elements_attach(current)
    current.sort(key=lambda a: a.author_name)
    models = [a for a in current if a.kind == AnnotationKind.MODEL and a.author_name != PIPELINE_AUTHOR]
    if current:
        latest_version = current[0].latest_version
    else:
        latest_version = Annotation.objects.filter(image_id=image_id).aggregate(v=Max("version"))["v"] or 0
    return ReviewSources(base=review_base_of(current), models=models, latest_version=latest_version, answers=current)


def image_review_base(*, image: Image) -> Annotation | None:
    """The annotation a reviewer starts from.

    The pipeline's merged annotation when there is one, else the newest current
    import or model annotation (an imported dataset with a single annotator).
    """
    current = image.annotations.filter(is_current=True)
    for qs in (
        current.filter(kind=AnnotationKind.MODEL, author_name=PIPELINE_AUTHOR),
        current.filter(kind__in=[AnnotationKind.IMPORT, AnnotationKind.MODEL]),
    ):
        found = annotations_with_elements(qs.order_by("-version"))[:1]
        if found:
            return found[0]
    return None


def dataset_summaries():
    """Datasets with image counts per status (one grouped query)."""
    annotations = {f"n_{s}": Count("images", filter=Q(images__status=s)) for s in ImageStatus.values}
    return Dataset.objects.annotate(n_images=Count("images"), **annotations).order_by("slug")


def dataset_images(*, dataset, params=None):
    """The dataset's images filtered by ``params`` (a QueryDict), oldest first, and the filter."""
    base = Image.objects.filter(dataset=dataset).order_by("id")
    image_filter = ImageFilter(params or {}, queryset=base, dataset=dataset)
    return image_filter.qs, image_filter
