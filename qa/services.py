"""Writes: the default configuration, QA pairs and their versions, ratings. Reads live in
``selectors.py``; the bulk import in ``importers/``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from annotations.errors import VersionConflict
from annotations.models import Dataset, Element, Image
from qa.defaults import DEFAULT_CATEGORIES, DEFAULT_DIMENSIONS, DEFAULT_SCALES
from qa.errors import AlreadyRated, DuplicatePair, InvalidPair
from qa.models import (
    AssessmentScale,
    AuthorKind,
    QACategory,
    QADimension,
    QAPair,
    QAStatus,
    Rating,
    RaterKind,
    RejectReason,
)
from qa.selectors import qa_axes
from qa.validation import PairInput, check_rating_value


@transaction.atomic
def qa_config_install_defaults(*, dataset: Dataset) -> bool:
    """Give ``dataset`` the default categories, dimensions and scales (``qa.defaults``) where
    it has none of a kind; True when anything was added. Idempotent."""
    added = False
    for model, rows in ((QACategory, DEFAULT_CATEGORIES), (QADimension, DEFAULT_DIMENSIONS)):
        if not model.objects.filter(dataset=dataset).exists():
            model.objects.bulk_create(
                [
                    model(
                        dataset=dataset,
                        key=key,
                        name=name,
                        description=description,
                        question_types=list(types),
                        position=i,
                    )
                    for i, (key, name, description, types) in enumerate(rows)
                ]
            )
            added = True
    if not AssessmentScale.objects.filter(dataset=dataset).exists():
        AssessmentScale.objects.bulk_create(
            [
                AssessmentScale(
                    dataset=dataset,
                    key=key,
                    name=name,
                    kind=kind,
                    min_value=lo,
                    max_value=hi,
                    step=step,
                    anchors=[list(a) for a in anchors],
                    position=i,
                )
                for i, (key, name, kind, lo, hi, step, anchors) in enumerate(DEFAULT_SCALES)
            ]
        )
        added = True
    return added


def qa_pair_build(
    *,
    image: Image,
    values: PairInput,
    category_ids: dict[str, int],
    dimension_ids: dict[str, int],
    author_kind: str,
    author_name: str,
    author_user: AbstractBaseUser | None = None,
    status: str = QAStatus.PENDING,
    model_name: str = "",
    prompt_version: str = "",
    priority: float = 1.0,
    **extra,
) -> QAPair:
    """An unsaved first version of a pair (for ``bulk_create`` by the importer and the stage)."""
    return QAPair(
        dataset_id=image.dataset_id,
        image=image,
        key=uuid.uuid4(),
        version=1,
        is_current=True,
        category_id=category_ids[values.category],
        dimension_id=dimension_ids[values.dimension],
        question_type=values.question_type,
        question=values.question,
        options=list(values.options) if values.options is not None else None,
        answer_index=values.answer_index,
        answer=values.answer,
        rationale=values.rationale,
        content_hash=values.content_hash,
        status=status,
        author_kind=author_kind,
        author_name=author_name,
        author_user=author_user,
        model_name=model_name,
        prompt_version=prompt_version,
        priority=priority,
        **extra,
    )


@transaction.atomic
def qa_pair_create(
    *,
    image: Image,
    values: PairInput,
    author_kind: str,
    author_name: str,
    author_user: AbstractBaseUser | None = None,
    elements: Sequence[Element] = (),
    status: str = QAStatus.PENDING,
    model_name: str = "",
    prompt_version: str = "",
) -> QAPair:
    """A new pair (version 1). Raises :class:`DuplicatePair` when the image has a current pair
    with the same content."""
    axes = qa_axes(dataset_id=image.dataset_id)
    pair = qa_pair_build(
        image=image,
        values=values,
        category_ids=axes.category_ids,
        dimension_ids=axes.dimension_ids,
        author_kind=author_kind,
        author_name=author_name,
        author_user=author_user,
        status=status,
        model_name=model_name,
        prompt_version=prompt_version,
    )
    if QAPair.objects.filter(image=image, content_hash=values.content_hash, is_current=True).exists():
        raise DuplicatePair("this image already has this question")
    pair.save()
    if elements:
        pair.elements.set(elements)
    return pair


@transaction.atomic
def qa_pair_new_version(
    *,
    pair: QAPair,
    expected_version: int,
    user: AbstractBaseUser,
    status: str,
    values: PairInput | None = None,
    reject_reason: str = "",
    review_note: str = "",
) -> QAPair:
    """Replace the current version of ``pair`` with a new one by ``user``: accepted, rejected
    (with a reason from :class:`RejectReason`) or edited (``values`` the new content).

    Locks the key's current row (``SELECT ... FOR UPDATE``); :class:`VersionConflict` when
    it is not ``expected_version`` any more. Keeps the elements, provenance and axes unless
    edited. The review workflow (leases, overlap, adjudication) calls this."""
    current = QAPair.objects.select_for_update().filter(key=pair.key, is_current=True).first()
    if current is None or current.version != expected_version:
        raise VersionConflict(
            "the pair changed since you read it", changes={"version": current.version if current else None}
        )
    if status not in QAStatus.values or status == QAStatus.PENDING:
        raise InvalidPair("status", "must be in_review, accepted, edited or rejected")
    if (status == QAStatus.REJECTED) != bool(reject_reason) or reject_reason not in RejectReason.values:
        raise InvalidPair("reject_reason", "a rejection needs a reason from the list, and only a rejection has one")
    if (status == QAStatus.EDITED) != (values is not None):
        raise InvalidPair("status", "an edit carries the new values, and only an edit does")
    element_ids = list(current.elements.values_list("id", flat=True))
    new = QAPair.objects.get(pk=current.pk)
    new.pk = None
    new.parent_id, new.version = current.pk, current.version + 1
    new.status, new.reject_reason, new.review_note = status, reject_reason, review_note
    new.author_kind, new.author_name, new.author_user = AuthorKind.HUMAN, user.get_username(), user
    if values is not None:
        axes = qa_axes(dataset_id=current.dataset_id)
        new.category_id, new.dimension_id = axes.category_ids[values.category], axes.dimension_ids[values.dimension]
        new.question_type, new.question, new.answer, new.rationale = (
            values.question_type,
            values.question,
            values.answer,
            values.rationale,
        )
        new.options = list(values.options) if values.options is not None else None
        new.answer_index, new.content_hash = values.answer_index, values.content_hash
    QAPair.objects.filter(pk=current.pk).update(is_current=False)
    try:
        with transaction.atomic():
            new.save()
    except IntegrityError:
        raise DuplicatePair("this image already has this question") from None
    new.elements.set(element_ids)
    return new


def rating_create(
    *,
    image: Image,
    scale: AssessmentScale,
    value: float,
    user: AbstractBaseUser | None = None,
    model_name: str = "",
    blind: bool = False,
) -> Rating:
    """One rating by a person (``user``) or a model (``model_name``). Raises
    :class:`InvalidPair` for a value off the scale or a scale of another dataset, and
    :class:`AlreadyRated` for a second rating of the image on the scale by the same rater."""
    if scale.dataset_id != image.dataset_id:
        raise InvalidPair("scale", "the scale belongs to another dataset")
    if not scale.active:
        raise InvalidPair("scale", "the scale is not active")
    if (user is None) == (not model_name):
        raise InvalidPair("rater", "a rating has one rater: a person or a model")
    checked = check_rating_value(value, minimum=scale.min_value, maximum=scale.max_value, step=scale.step)
    rating = Rating(
        image=image,
        scale=scale,
        value=checked,
        blind=blind,
        rater_kind=RaterKind.HUMAN if user is not None else RaterKind.MODEL,
        rater_user=user,
        rater_name=user.get_username() if user is not None else model_name,
    )
    try:
        with transaction.atomic():
            rating.save()
    except IntegrityError:
        raise AlreadyRated(f"{rating.rater_name} has rated this image on {scale.key} already") from None
    return rating
