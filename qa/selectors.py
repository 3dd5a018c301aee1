"""Reads: the dataset's QA configuration as validation needs it, pairs, rating aggregates."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Avg, Count, F, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from scipy import stats

from annotations.models import Annotation, Element, Image
from qa.models import APPROVED_STATUSES, AssessmentScale, QACategory, QADimension, QAPair, Rating, RaterKind
from qa.validation import AxisConfig


@dataclass(frozen=True)
class DatasetAxes:
    """A dataset's active categories and dimensions: for validation and for ids."""

    categories: dict[str, AxisConfig]
    dimensions: dict[str, AxisConfig]
    category_ids: dict[str, int]
    dimension_ids: dict[str, int]


def qa_axes(*, dataset_id: int) -> DatasetAxes:
    found = {}
    for model in (QACategory, QADimension):
        rows = list(model.objects.filter(dataset_id=dataset_id, active=True).values_list("id", "key", "question_types"))
        found[model] = (
            {key: AxisConfig(key=key, question_types=frozenset(types or ())) for _, key, types in rows},
            {key: pk for pk, key, _ in rows},
        )
    (categories, category_ids), (dimensions, dimension_ids) = found[QACategory], found[QADimension]
    return DatasetAxes(
        categories=categories, dimensions=dimensions, category_ids=category_ids, dimension_ids=dimension_ids
    )


def qa_pairs_current(*, dataset_id: int, approved_only: bool = False) -> QuerySet[QAPair]:
    qs = QAPair.objects.filter(dataset_id=dataset_id, is_current=True)
    if approved_only:
        qs = qs.filter(status__in=APPROVED_STATUSES)
    return qs


@dataclass(frozen=True)
class RatingAggregate:
    """Per image and scale: mean, sample standard deviation, count and the 95 % confidence
    interval of the mean (Student's t with ``count - 1`` degrees of freedom; ``None`` below two
    ratings)."""

    image_id: int
    scale_id: int
    mean: float
    sd: float | None
    count: int
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict:
        return {
            "image": self.image_id,
            "scale": self.scale_id,
            "mean": self.mean,
            "sd": self.sd,
            "count": self.count,
            "ci95": [self.ci_low, self.ci_high] if self.ci_low is not None else None,
        }


def rating_aggregates(
    *,
    scale: AssessmentScale | None = None,
    dataset_id: int | None = None,
    image_ids: Iterable[int] | None = None,
    rater_kind: str = RaterKind.HUMAN,
) -> list[RatingAggregate]:
    """Aggregates of the ratings by ``rater_kind`` (people by default), one per image and scale,
    from sums computed in the database (``AVG``, ``SUM`` of squares, ``COUNT``: the same on
    PostgreSQL and SQLite, whose ``STDDEV_SAMP`` fails on a single value), ordered by image, scale."""
    qs = Rating.objects.filter(rater_kind=rater_kind)
    if scale is not None:
        qs = qs.filter(scale=scale)
    if dataset_id is not None:
        qs = qs.filter(scale__dataset_id=dataset_id)
    if image_ids is not None:
        qs = qs.filter(image_id__in=list(image_ids))
    rows = (
        qs.values("image_id", "scale_id")
        .annotate(mean=Avg("value"), squares=Sum(F("value") * F("value")), n=Count("id"))
        .order_by("image_id", "scale_id")
    )
    out = []
    for row in rows:
        n, mean = row["n"], row["mean"]
        # sample SD from the sums; max() keeps rounding from going below zero when all agree
        sd = math.sqrt(max(row["squares"] - n * mean * mean, 0.0) / (n - 1)) if n >= 2 else None
        low = high = None
        if n >= 2 and sd is not None:
            half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
            low, high = mean - half, mean + half
        out.append(
            RatingAggregate(
                image_id=row["image_id"],
                scale_id=row["scale_id"],
                mean=mean,
                sd=sd if n >= 2 else None,
                count=n,
                ci_low=low,
                ci_high=high,
            )
        )
    return out


ElementRef = tuple[str | int, str]  # (triplet key as text, or triplet index; role)


def element_refs(*, image_ids: Iterable[int]) -> dict[int, dict[ElementRef, int]]:
    """Per image, the elements of its newest current annotation by ``(triplet key, role)`` and
    by ``(triplet index, role)``: how a QA pair names the B-A-S elements it is about."""
    newest: dict[int, tuple[int, int]] = {}
    rows = Annotation.objects.filter(image_id__in=list(image_ids), is_current=True).values_list(
        "image_id", "id", "version"
    )
    for image_id, pk, version in rows:
        if image_id not in newest or version > newest[image_id][1]:
            newest[image_id] = (pk, version)
    by_annotation = {pk: image_id for image_id, (pk, _) in newest.items()}
    out: dict[int, dict[ElementRef, int]] = {image_id: {} for image_id in newest}
    elements = Element.objects.filter(triplet__annotation_id__in=list(by_annotation)).values_list(
        "id", "role", "triplet__key", "triplet__index", "triplet__annotation_id"
    )
    for pk, role, key, index, annotation_id in elements:
        refs = out[by_annotation[annotation_id]]
        refs[(str(key), role)] = pk
        refs[(index, role)] = pk
    return out


@dataclass(frozen=True)
class ImageContext:
    """An image's newest current annotation as the QA generator sees it: triplets as phrases
    (in index order), CES label, rationale, and element ids by ``(triplet index, role)``."""

    triplets: tuple[tuple[str, str, str], ...]
    label: str | None
    rationale: str
    element_ids: dict[tuple[int, str], int]


def image_context(*, image_id: int) -> ImageContext:
    annotation = (
        Annotation.objects.filter(image_id=image_id, is_current=True)
        .order_by("-version")
        .only("id", "ces_label", "rationale")
        .first()
    )
    if annotation is None:
        return ImageContext(triplets=(), label=None, rationale="", element_ids={})
    phrases: dict[int, dict[str, str]] = {}
    element_ids: dict[tuple[int, str], int] = {}
    for pk, role, phrase, index in Element.objects.filter(triplet__annotation=annotation).values_list(
        "id", "role", "phrase", "triplet__index"
    ):
        phrases.setdefault(index, {})[role] = phrase
        element_ids[(index, role)] = pk
    ordered = sorted(phrases)
    renumber = {index: i for i, index in enumerate(ordered)}
    triplets = tuple(
        (phrases[i].get("background", ""), phrases[i].get("attribute", ""), phrases[i].get("subject", ""))
        for i in ordered
    )
    return ImageContext(
        triplets=triplets,
        label=annotation.ces_label,
        rationale=annotation.rationale,
        element_ids={(renumber[i], role): pk for (i, role), pk in element_ids.items()},
    )


def qa_axis_specs(*, dataset_id: int) -> tuple[list, list]:
    """The active categories and dimensions as ``(key, name, description, question types)``, in order."""
    out = []
    for model in (QACategory, QADimension):
        out.append(
            list(
                model.objects.filter(dataset_id=dataset_id, active=True)
                .order_by("position", "key")
                .values_list("key", "name", "description", "question_types")
            )
        )
    return out[0], out[1]


def images_to_rate(*, dataset_id: int, user_id: int, raters_per_image: int, limit: int = 20) -> list[int]:
    """Ids of images of the dataset that ``user_id`` has not rated yet and that fewer than
    ``raters_per_image`` people have rated, fewest raters first, then oldest: the rating
    queue's candidates (several raters per image; the rating page assigns them)."""
    rated_by = Rating.objects.filter(rater_kind=RaterKind.HUMAN, image_id=OuterRef("pk"))
    return list(
        Image.objects.filter(dataset_id=dataset_id)
        .exclude(pk__in=Rating.objects.filter(rater_user_id=user_id).values("image_id"))
        .annotate(
            raters=Coalesce(
                Subquery(rated_by.values("image_id").annotate(n=Count("rater_user_id", distinct=True)).values("n")[:1]),
                0,
            )
        )
        .filter(raters__lt=raters_per_image)
        .order_by("raters", "id")
        .values_list("id", flat=True)[:limit]
    )
