"""The rating page's reads and its one write: an image rated on every active scale at once.

Several raters per image: an image is offered until ``dataset.reviews_per_item`` people
have rated it (``qa.selectors.images_to_rate``, fewest raters first). Blind mode (a
per-user choice on the page, remembered in the session) hides the models' ratings and is
recorded on each rating. A rater sees an image's aggregates only after rating it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotations.models import Dataset, Image
from qa.errors import InvalidPair
from qa.models import AssessmentScale, Rating, RaterKind
from qa.selectors import images_to_rate, rating_aggregates
from qa.services import rating_create


def raters_per_image(dataset: Dataset) -> int:
    return max(1, dataset.reviews_per_item)


def next_image_to_rate(*, dataset: Dataset, user: AbstractBaseUser) -> int | None:
    ids = images_to_rate(dataset_id=dataset.pk, user_id=user.pk, raters_per_image=raters_per_image(dataset), limit=1)
    return ids[0] if ids else None


def active_scales(*, dataset_id: int) -> list[AssessmentScale]:
    return list(AssessmentScale.objects.filter(dataset_id=dataset_id, active=True).order_by("position", "key"))


def model_scores(*, image_id: int) -> dict[int, list[tuple[str, float]]]:
    """The models' ratings of the image per scale id: ``[(model name, value)]``."""
    out: dict[int, list[tuple[str, float]]] = {}
    for scale_id, name, value in Rating.objects.filter(image_id=image_id, rater_kind=RaterKind.MODEL).values_list(
        "scale_id", "rater_name", "value"
    ):
        out.setdefault(scale_id, []).append((name, value))
    return out


def has_rated(*, image_id: int, user: AbstractBaseUser) -> bool:
    return Rating.objects.filter(image_id=image_id, rater_user=user).exists()


def ratings_submit(*, image: Image, user: AbstractBaseUser, values: Mapping[str, Any], blind: bool) -> list[Rating]:
    """Rate ``image`` on every active scale of its dataset (``values``: scale key → number), all
    or nothing. Raises :class:`InvalidPair` (the field is the scale key) for a missing,
    non-numeric or off-scale value and :class:`qa.errors.AlreadyRated` for a second rating."""
    scales = active_scales(dataset_id=image.dataset_id)
    if not scales:
        raise InvalidPair("scales", "the dataset has no active assessment scale")
    numbers = {}
    for scale in scales:
        raw = values.get(scale.key)
        try:
            numbers[scale.key] = float(raw)
        except (TypeError, ValueError):
            raise InvalidPair(scale.key, "a number is needed") from None
    unknown = sorted(set(values) - set(numbers))
    if unknown:
        raise InvalidPair(unknown[0], "not an active scale of this dataset")
    with transaction.atomic():
        out = []
        for scale in scales:
            try:
                out.append(rating_create(image=image, scale=scale, value=numbers[scale.key], user=user, blind=blind))
            except InvalidPair as exc:
                raise InvalidPair(scale.key, exc.message) from None
    return out


def image_aggregates(*, image_id: int, scales: list[AssessmentScale]) -> list[tuple[AssessmentScale, Any]]:
    """Per active scale, the people's aggregate for the image (or None when nobody rated it)."""
    found = {a.scale_id: a for a in rating_aggregates(image_ids=[image_id])}
    return [(scale, found.get(scale.pk)) for scale in scales]
