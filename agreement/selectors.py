"""Reads for agreement reports: flat rows streamed with ``values_list``.

Every function here issues a fixed number of queries whatever the dataset size (no
query per image or per annotation) and yields plain tuples; ``agreement.report``
turns them into numpy arrays.

Who is an annotator
- A *reviewer* is the author of a current HUMAN annotation (``author_name`` is the
  username). K reviews of one image are K current HUMAN annotations.
- A *model* is the author of a current MODEL annotation (``author_name`` is the
  model name; ``pipeline`` is the merged answer).
- The *reference* label of an image (what models are measured and calibrated against)
  follows one rule, in ``review.reference``: its adjudication, else the label its
  approved reviews agree on, else the strict majority of its reviews, else none. Unlike
  ``annotations.selectors.final_annotation_ids`` (what is exported), an auto-accepted
  pipeline answer is never a reference: measuring or calibrating the models against their
  own output would be circular.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, NamedTuple

from django.db.models import Count, Max, Q, QuerySet

from annotations.models import (
    Annotation,
    AnnotationKind,
    Dataset,
    Element,
    Image,
    PhraseEmbedding,
)
from ml.models import CalibrationVersion
from qa.models import AssessmentScale, AuthorKind, QACategory, QADimension, QAPair, QAStatus, Rating, RaterKind

CHUNK = 2000


@dataclass(frozen=True)
class ReportFilters:
    """What a report covers. Empty values mean "all".

    ``source`` and ``label`` filter images (``label`` is the image's current label);
    ``date_from``/``date_to`` (inclusive) and ``reviewers`` (usernames) filter the
    human reviews taken into account.
    """

    source: str = ""
    label: str = ""
    date_from: date | None = None
    date_to: date | None = None
    reviewers: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["date_from"] = self.date_from.isoformat() if self.date_from else None
        out["date_to"] = self.date_to.isoformat() if self.date_to else None
        out["reviewers"] = list(self.reviewers)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportFilters:
        """The inverse of :meth:`as_dict` (how a background task receives the filters)."""
        return cls(
            source=data.get("source") or "", label=data.get("label") or "",
            date_from=date.fromisoformat(data["date_from"]) if data.get("date_from") else None,
            date_to=date.fromisoformat(data["date_to"]) if data.get("date_to") else None,
            reviewers=tuple(data.get("reviewers") or ()),
        )


class LabelRow(NamedTuple):
    image_id: int
    kind: str
    author: str
    label: str | None
    confidence: float | None
    decision: str
    version: int


class ScaleInfo(NamedTuple):
    id: int
    key: str
    name: str
    min_value: float
    max_value: float


class RatingRow(NamedTuple):
    scale_id: int
    image_id: int
    kind: str  # qa.models.RaterKind: human or model
    rater: str  # username or model name
    value: float


class QaReviewRow(NamedTuple):
    """A reviewed QA pair: its current version (the human's) and its first (as generated)."""

    category: str  # key
    dimension: str  # key
    status: str  # accepted, edited or rejected
    reject_reason: str
    question_type: str
    options: list[str] | None
    answer_index: int | None
    answer: str
    generated_by: str  # author_kind of the first version: model, import or human
    model: str  # the generating model (``model_name``), may be empty
    generated_type: str
    generated_options: list[str] | None
    generated_answer_index: int | None
    generated_answer: str
    critic_answer: str


class ElementRow(NamedTuple):
    image_id: int
    reviewer: str
    key: str
    role: str
    phrase: str
    status: str
    box: tuple[float, float, float, float] | None
    mask: dict | None  # {"size": [h, w], "counts": str}


def dataset_images(*, dataset: Dataset, filters: ReportFilters) -> QuerySet[Image]:
    images = Image.objects.filter(dataset=dataset)
    if filters.source:
        images = images.filter(source=filters.source)
    if filters.label:
        images = images.filter(label=filters.label)
    return images


def _image_filter(dataset: Dataset, filters: ReportFilters) -> Q:
    """Rows of images that pass the image filters (none without a source or label filter: the
    rows are already the dataset's, and an ``IN`` subquery over every image costs a join)."""
    if not (filters.source or filters.label):
        return Q()
    return Q(image__in=dataset_images(dataset=dataset, filters=filters))


def _human_filter(filters: ReportFilters, *, author: str = "author_name") -> Q:
    q = Q()
    if filters.date_from:
        q &= Q(created_at__date__gte=filters.date_from)
    if filters.date_to:
        q &= Q(created_at__date__lte=filters.date_to)
    if filters.reviewers:
        q &= Q(**{f"{author}__in": filters.reviewers})
    return q


def current_annotations(*, dataset: Dataset, filters: ReportFilters) -> QuerySet[Annotation]:
    """Current annotations of the filtered images; human ones also by date and reviewer."""
    human = Q(kind=AnnotationKind.HUMAN) & _human_filter(filters)
    return Annotation.objects.filter(
        Q(image__in=dataset_images(dataset=dataset, filters=filters)), Q(is_current=True),
        human | ~Q(kind=AnnotationKind.HUMAN),
    )


def label_rows(*, dataset: Dataset, filters: ReportFilters) -> Iterator[LabelRow]:
    """One row per current annotation (every kind) of the filtered images."""
    rows = current_annotations(dataset=dataset, filters=filters).order_by().values_list(
        "image_id", "kind", "author_name", "ces_label", "ces_confidence", "decision", "version"
    )
    for row in rows.iterator(chunk_size=CHUNK):
        yield LabelRow(*row)


def multi_reviewed_images(*, dataset: Dataset, filters: ReportFilters) -> QuerySet:
    """Ids of images with two or more current (filtered) human reviews, as a subquery."""
    human = current_annotations(dataset=dataset, filters=filters).filter(kind=AnnotationKind.HUMAN)
    return human.order_by().values("image_id").annotate(n=Count("id")).filter(n__gte=2).values("image_id")


def human_element_rows(*, dataset: Dataset, filters: ReportFilters) -> Iterator[ElementRow]:
    """Elements of the current human reviews of images reviewed by two or more people."""
    return _element_rows(current_annotations(dataset=dataset, filters=filters).filter(
        kind=AnnotationKind.HUMAN, image_id__in=multi_reviewed_images(dataset=dataset, filters=filters)))


def model_element_rows(*, dataset: Dataset, filters: ReportFilters) -> Iterator[ElementRow]:
    """Elements of the current model answers on images reviewed by two or more people
    (``ElementRow.reviewer`` holds the model name)."""
    return _element_rows(current_annotations(dataset=dataset, filters=filters).filter(
        kind=AnnotationKind.MODEL, image_id__in=multi_reviewed_images(dataset=dataset, filters=filters)))


def _element_rows(annotations: QuerySet[Annotation]) -> Iterator[ElementRow]:
    rows = Element.objects.filter(triplet__annotation__in=annotations).order_by().values_list(
        "triplet__annotation__image_id", "triplet__annotation__author_name", "triplet__key", "role", "phrase",
        "status", "x0", "y0", "x1", "y1", "mask_counts", "mask_height", "mask_width",
    )
    for image_id, author, key, role, phrase, status, x0, y0, x1, y1, counts, h, w in rows.iterator(chunk_size=CHUNK):
        box = (x0, y0, x1, y1) if x0 is not None else None
        mask = {"size": [h, w], "counts": counts} if counts is not None else None
        yield ElementRow(image_id, author, str(key), role, phrase, status, box, mask)


def rating_scales(*, dataset: Dataset) -> list[ScaleInfo]:
    """The dataset's assessment scales (inactive ones too: their ratings still count), in display order."""
    rows = AssessmentScale.objects.filter(dataset=dataset).order_by("position", "key")
    return [ScaleInfo(*r) for r in rows.values_list("id", "key", "name", "min_value", "max_value")]


def rating_rows(*, dataset: Dataset, filters: ReportFilters) -> Iterator[RatingRow]:
    """Every rating of the filtered images; people's ratings also by date and rater (``reviewers``)."""
    human = Q(rater_kind=RaterKind.HUMAN) & _human_filter(filters, author="rater_name")
    rows = Rating.objects.filter(
        _image_filter(dataset, filters), Q(scale__dataset=dataset),
        human | ~Q(rater_kind=RaterKind.HUMAN),
    ).order_by().values_list("scale_id", "image_id", "rater_kind", "rater_name", "value")
    for row in rows.iterator(chunk_size=CHUNK):
        yield RatingRow(*row)


QA_REVIEWED = (QAStatus.ACCEPTED, QAStatus.EDITED, QAStatus.REJECTED)


def qa_reviewed_rows(*, dataset: Dataset, filters: ReportFilters) -> Iterator[QaReviewRow]:
    """Each reviewed QA pair of the filtered images (current version accepted, edited or
    rejected by a person, filtered by date and reviewer), joined with its first version.

    Two streamed queries, both ordered by pair key, merged in step: memory stays flat at
    any number of pairs.
    """
    current = QAPair.objects.filter(
        _image_filter(dataset, filters), Q(dataset=dataset), Q(is_current=True),
        Q(status__in=QA_REVIEWED), Q(author_kind=AuthorKind.HUMAN), _human_filter(filters),
    )
    now = current.order_by("key").values_list(
        "key", "category__key", "dimension__key", "status", "reject_reason", "question_type", "options",
        "answer_index", "answer")
    # Every first version of the dataset (a superset: the merge skips the unreviewed), not
    # ``key IN (reviewed keys)``: a server-side cursor plans that for its first rows, as nested loops.
    first = QAPair.objects.filter(dataset=dataset, version=1).order_by("key").values_list(
        "key", "author_kind", "model_name", "question_type", "options", "answer_index", "answer", "critic_answer")
    originals = first.iterator(chunk_size=CHUNK)
    original = next(originals, None)
    for key, *fields in now.iterator(chunk_size=CHUNK):
        while original is not None and original[0] < key:
            original = next(originals, None)
        if original is not None and original[0] == key:
            yield QaReviewRow(*fields, *original[1:])
        else:  # no first version stored (cannot happen through the services): nothing generated to score
            yield QaReviewRow(*fields, AuthorKind.HUMAN, "", fields[4], None, None, "", "")


def qa_pair_counts(*, dataset: Dataset, filters: ReportFilters) -> dict[str, int]:
    """Current QA pairs of the filtered images by status (one grouped query)."""
    rows = QAPair.objects.filter(_image_filter(dataset, filters), dataset=dataset,
                                 is_current=True).order_by().values_list("status").annotate(n=Count("id"))
    return {status: n for status, n in rows}


def qa_axis_names(*, dataset: Dataset) -> tuple[dict[str, str], dict[str, str]]:
    """Category and dimension key → name, in display order."""
    return tuple(  # type: ignore[return-value]
        dict(model.objects.filter(dataset=dataset).order_by("position", "key").values_list("key", "name"))
        for model in (QACategory, QADimension)
    )


def reviewer_names(*, dataset: Dataset) -> list[str]:
    """Usernames of everyone with a current human review, a rating or a QA review in the dataset."""
    rows = Annotation.objects.filter(image__dataset=dataset, kind=AnnotationKind.HUMAN, is_current=True)
    names = set(rows.order_by().values_list("author_name", flat=True).distinct())
    names |= set(Rating.objects.filter(scale__dataset=dataset, rater_kind=RaterKind.HUMAN).order_by()
                 .values_list("rater_name", flat=True).distinct())
    names |= set(QAPair.objects.filter(dataset=dataset, is_current=True, author_kind=AuthorKind.HUMAN).order_by()
                 .values_list("author_name", flat=True).distinct())
    return sorted(names)




def report_datasets() -> QuerySet[Dataset]:
    """Datasets with their image count and current human review count (one grouped query)."""
    human = Q(images__annotations__kind=AnnotationKind.HUMAN, images__annotations__is_current=True)
    return Dataset.objects.annotate(
        n_images=Count("images", distinct=True),
        n_reviews=Count("images__annotations", filter=human),
        n_reviewed=Count("images", filter=human, distinct=True),
    ).order_by("slug")


def data_stamp(*, dataset: Dataset) -> tuple[str, ...]:
    """Changes whenever anything a report of ``dataset`` reads changes (a few aggregate queries).

    Annotations, QA pair versions and ratings are immutable and every new one gets a higher
    id (a deletion lowers a count); image label or source changes move ``updated_at``; new
    phrase embeddings and calibration versions (the report's calibration section applies the
    latest temperature) get a higher id; a renamed category, dimension or scale changes the
    hash of their names.
    """
    stamp = Image.objects.filter(dataset=dataset).aggregate(
        images=Count("id", distinct=True), updated=Max("updated_at"), annotation=Max("annotations__id"))
    embeddings = PhraseEmbedding.objects.aggregate(last=Max("id"))["last"]
    calibration = CalibrationVersion.objects.aggregate(last=Max("id"))["last"]
    ratings = Rating.objects.filter(scale__dataset=dataset).aggregate(n=Count("id"), last=Max("id"))
    pairs = QAPair.objects.filter(dataset=dataset).aggregate(n=Count("id"), last=Max("id"))
    axes = [list(model.objects.filter(dataset=dataset).order_by("id").values_list("id", "key", "name"))
            for model in (QACategory, QADimension)]
    scales = list(AssessmentScale.objects.filter(dataset=dataset).order_by("id").values_list(
        "id", "key", "name", "min_value", "max_value"))
    config = hashlib.sha256(json.dumps([axes, scales]).encode()).hexdigest()
    return (str(stamp["images"]), str(stamp["updated"]), str(stamp["annotation"]), str(embeddings), str(calibration),
            f"{ratings['n']}:{ratings['last']}", f"{pairs['n']}:{pairs['last']}", config)
