"""The QA data model through its services: default configuration, pairs and versions,
constraints, ratings and their aggregates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.db import IntegrityError, transaction
from scipy import stats

from annotations.errors import VersionConflict
from qa.errors import AlreadyRated, DuplicatePair, InvalidPair
from qa.models import AssessmentScale, AuthorKind, QACategory, QADimension, QAPair, QAStatus
from qa.selectors import qa_axes, rating_aggregates
from qa.services import qa_config_install_defaults, qa_pair_create, qa_pair_new_version, rating_create
from qa.validation import validate_pair
from tests.factories import DatasetFactory, ImageFactory, UserFactory

pytestmark = pytest.mark.django_db

MC = {
    "category": "perception",
    "dimension": "scene",
    "type": "multiple_choice",
    "question": "Which emotion does the stormy sea evoke?",
    "options": ["awe", "fear", "amusement"],
    "answer": 1,
}


def _values(dataset, raw=None):
    axes = qa_axes(dataset_id=dataset.id)
    return validate_pair(raw or MC, categories=axes.categories, dimensions=axes.dimensions)


@pytest.fixture
def image():
    image = ImageFactory()
    qa_config_install_defaults(dataset=image.dataset)
    return image


def test_defaults_are_installed_once():
    dataset = DatasetFactory()
    assert qa_config_install_defaults(dataset=dataset) is True
    assert qa_config_install_defaults(dataset=dataset) is False
    assert QACategory.objects.filter(dataset=dataset).count() == 5
    assert QADimension.objects.filter(dataset=dataset).count() == 5
    assert set(AssessmentScale.objects.filter(dataset=dataset).values_list("key", flat=True)) == {
        "intensity",
        "valence",
        "arousal",
    }
    reasoning = QACategory.objects.get(dataset=dataset, key="reasoning")
    assert reasoning.question_types == ["open"]


def test_pair_create_and_duplicate(image):
    pair = qa_pair_create(
        image=image, values=_values(image.dataset), author_kind=AuthorKind.IMPORT, author_name="gpt-4o"
    )
    assert (pair.version, pair.is_current, pair.status, pair.answer_index) == (1, True, QAStatus.PENDING, 1)
    assert pair.dataset_id == image.dataset_id
    # Same question, other case and spacing, other answer: still a duplicate.
    again = dict(MC, question="  which EMOTION does the stormy   sea evoke? ", answer=0)
    with pytest.raises(DuplicatePair):
        qa_pair_create(
            image=image, values=_values(image.dataset, again), author_kind=AuthorKind.IMPORT, author_name="x"
        )


def test_new_versions_keep_history_and_catch_conflicts(image):
    reviewer = UserFactory(roles=["reviewer"])
    pair = qa_pair_create(
        image=image,
        values=_values(image.dataset),
        author_kind=AuthorKind.MODEL,
        author_name="gpt-4o",
        model_name="gpt-4o",
        prompt_version="qa_v1",
    )
    edited = qa_pair_new_version(
        pair=pair,
        expected_version=1,
        user=reviewer,
        status=QAStatus.EDITED,
        values=_values(image.dataset, dict(MC, answer=0)),
    )
    assert (edited.version, edited.parent_id, edited.answer_index, edited.author_kind) == (2, pair.id, 0, "human")
    assert edited.model_name == "gpt-4o" and edited.key == pair.key
    assert list(QAPair.objects.filter(key=pair.key).order_by("version").values_list("is_current", flat=True)) == [
        False,
        True,
    ]
    with pytest.raises(VersionConflict):
        qa_pair_new_version(pair=pair, expected_version=1, user=reviewer, status=QAStatus.ACCEPTED)
    with pytest.raises(InvalidPair):
        qa_pair_new_version(pair=pair, expected_version=2, user=reviewer, status=QAStatus.REJECTED)
    rejected = qa_pair_new_version(
        pair=pair, expected_version=2, user=reviewer, status=QAStatus.REJECTED, reject_reason="ambiguous"
    )
    assert rejected.version == 3 and rejected.reject_reason == "ambiguous"


def test_database_refuses_an_answer_that_does_not_fit_the_type(image):
    pair = qa_pair_create(image=image, values=_values(image.dataset), author_kind=AuthorKind.IMPORT, author_name="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        QAPair.objects.filter(pk=pair.pk).update(answer_index=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        QAPair.objects.filter(pk=pair.pk).update(status=QAStatus.REJECTED)  # no reason


@pytest.mark.parametrize(
    "raw, field",
    [
        (dict(MC, category="nope"), "category"),
        (dict(MC, type="open"), "type"),  # perception allows multiple choice and yes/no only
        (dict(MC, options=["a"]), "options"),
        (dict(MC, options=["Fear", " fear "]), "options[1]"),
        (dict(MC, answer=3), "answer"),
        (dict(MC, answer=True), "answer"),
        (dict(MC, question="\u200b "), "question"),
        (dict(MC, question="a\x00b"), "question"),
        ({**MC, "type": "yes_no", "options": None, "answer": "maybe"}, "answer"),
        ({**MC, "type": "yes_no", "answer": "yes"}, "options"),
    ],
)
def test_validation_names_the_field(image, raw, field):
    with pytest.raises(InvalidPair) as caught:
        _values(image.dataset, raw)
    assert caught.value.field == field


def test_rating_rules_and_aggregates(image):
    scale = AssessmentScale.objects.get(dataset=image.dataset, key="valence")  # 1..9 step 1
    raters = [UserFactory(roles=["rater"]) for _ in range(4)]
    values = [3, 4, 4, 7]
    for user, value in zip(raters, values):
        rating_create(image=image, scale=scale, value=value, user=user, blind=True)
    rating_create(image=image, scale=scale, value=9, model_name="gpt-4o")
    with pytest.raises(AlreadyRated):
        rating_create(image=image, scale=scale, value=5, user=raters[0])
    for bad in (0, 9.5, 4.5, float("nan"), "5"):
        with pytest.raises(InvalidPair):
            rating_create(image=image, scale=scale, value=bad, user=UserFactory())
    other = ImageFactory()
    with pytest.raises(InvalidPair):
        rating_create(image=other, scale=scale, value=5, user=raters[0])

    [agg] = rating_aggregates(scale=scale)
    sd = float(np.std(values, ddof=1))
    half = stats.t.ppf(0.975, 3) * sd / math.sqrt(4)
    assert agg.count == 4 and agg.mean == pytest.approx(4.5) and agg.sd == pytest.approx(sd)
    assert (agg.ci_low, agg.ci_high) == (pytest.approx(4.5 - half), pytest.approx(4.5 + half))
    [model] = rating_aggregates(scale=scale, rater_kind="model")
    assert (model.mean, model.count, model.sd, model.ci_low) == (9, 1, None, None)


def test_images_to_rate_fill_to_k_raters(image):
    from qa.selectors import images_to_rate

    other = ImageFactory(dataset=image.dataset)
    scale = AssessmentScale.objects.get(dataset=image.dataset, key="valence")
    ann, bob, cid = (UserFactory(roles=["rater"]) for _ in range(3))
    rating_create(image=image, scale=scale, value=5, user=ann)
    assert images_to_rate(dataset_id=image.dataset_id, user_id=ann.pk, raters_per_image=2) == [other.pk]
    assert images_to_rate(dataset_id=image.dataset_id, user_id=bob.pk, raters_per_image=2) == [other.pk, image.pk]
    rating_create(image=image, scale=scale, value=6, user=bob)
    assert images_to_rate(dataset_id=image.dataset_id, user_id=cid.pk, raters_per_image=2) == [other.pk]
