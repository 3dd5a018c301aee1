"""The review tables and the annotation tables a submit writes get rows on every claim, draft save
and submit (``review_disagreement`` a row per difference, ``annotations_element`` one per element),
and each row updates every index of its table: no plain index there may repeat
another or be the prefix of another, each foreign key still leads an index that covers every row
(the deletes that cascade or are protected look rows up by it), and the lookups the queue and the
disagreement log make keep theirs."""

from __future__ import annotations

import pytest
from django.db import connection, models

from annotations.models import Annotation, Element, Image, Triplet
from review.models import Disagreement, Draft, ElementDecision, Lease, ReviewPlan, ReviewSubmission

pytestmark = pytest.mark.django_db

MODELS = [Disagreement, Draft, ElementDecision, Lease, ReviewPlan, ReviewSubmission, Annotation, Triplet, Element, Image]


def _partial(model) -> set[str]:
    return {c.name for c in model._meta.constraints if isinstance(c, models.UniqueConstraint) and c.condition is not None}


def _indexes(model) -> dict[str, dict]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {name: c for name, c in found.items() if (c["index"] or c["unique"]) and not c["primary_key"]}


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_no_plain_index_repeats_or_is_the_prefix_of_another(model):
    indexes = _indexes(model)
    whole = {name: tuple(c["columns"]) for name, c in indexes.items() if name not in _partial(model)}
    for name, c in indexes.items():
        if c["unique"]:
            continue  # a guarantee, not a lookup
        columns = tuple(c["columns"])
        longer = [other for other, cols in whole.items() if other != name and cols[:len(columns)] == columns]
        assert not longer, f"{name} {columns} is covered by {longer}"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_foreign_key_leads_an_index_of_every_row(model):
    leading = {c["columns"][0] for name, c in _indexes(model).items() if name not in _partial(model)}
    for field in model._meta.concrete_fields:
        if field.is_relation and not field.primary_key:
            assert field.column in leading, field.column


@pytest.mark.parametrize(("model", "columns"), [
    (Lease, ("dataset_id", "state", "expires_at")),  # lapsed leases of a dataset
    (Lease, ("reviewer_id", "dataset_id", "state")),  # a reviewer's lease in a dataset
    (Lease, ("image_id", "state")),  # an image's active leases
    (ReviewSubmission, ("dataset_id", "reviewer_id", "created_at")),
    (ReviewSubmission, ("image_id", "created_at")),
    (ElementDecision, ("image_id", "triplet_key", "role")),
    (ElementDecision, ("reviewer_id", "created_at")),
    (ReviewPlan, ("dataset_id", "required_reviews")),
    (Draft, ("image_id", "reviewer_id")),
    (Disagreement, ("dataset_id", "id")),  # the log of a dataset, newest first
    (Disagreement, ("dataset_id", "model_name", "field", "id")),
    (Disagreement, ("dataset_id", "field", "id")),
    (Disagreement, ("reviewer_id", "id")),
    (Disagreement, ("created_at",)),
    (Disagreement, ("model_name", "field", "created_at")),  # the log's model names
    (Annotation, ("image_id", "version")),  # an image's versions
    (Annotation, ("image_id", "kind", "is_current")),  # an image's current answers
    (Triplet, ("annotation_id", "index")),  # a version's triplets
    (Element, ("triplet_id", "role")),  # a triplet's elements
    (Image, ("dataset_id", "sha256")),
], ids=lambda v: v.__name__ if isinstance(v, type) else "-".join(v))
def test_the_lookups_keep_their_index(model, columns):
    assert columns in {tuple(c["columns"]) for c in _indexes(model).values()}
