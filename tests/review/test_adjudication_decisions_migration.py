"""The adjudicator's element edits recorded in ``extra.element_decisions`` before they were rows
become ElementDecision rows of kind adjudication (review migration 0004)."""

from __future__ import annotations

import uuid

import pytest

from annotations.models import AnnotationKind, Decision
from review.models import ElementDecision
from tests.factories import ImageFactory, UserFactory, make_annotation
from tests.migrations import migrate

BEFORE = [("review", "0003_disagreement_paired_by")]


@pytest.mark.django_db(transaction=True)
def test_recorded_adjudicator_edits_become_rows():
    ada = UserFactory(username="ada", roles=["adjudicator"])
    image = ImageFactory()
    key = str(uuid.uuid4())
    edits = [{"triplet_key": key, "role": "subject", "by": "ada", "action": "edit_mask"},
             {"triplet_key": key, "role": "subject", "by": "ada", "action": "edit_box", "before": [0, 0, 4, 4],
              "after": [0, 0, 8, 8]}]
    final = make_annotation(image, kind=AnnotationKind.ADJUDICATION, author_name="ada", author_user=ada,
                            decision=Decision.APPROVED)
    migrate(BEFORE)
    try:
        type(final).objects.filter(pk=final.pk).update(extra={"reviews": [], "element_decisions": edits})
    finally:
        migrate()

    rows = ElementDecision.objects.filter(annotation_id=final.pk).order_by("id")
    assert [(r.kind, r.submission_id, r.reviewer_id, str(r.triplet_key), r.role, r.action) for r in rows] == [
        ("adjudication", None, ada.pk, key, "subject", "edit_mask"),
        ("adjudication", None, ada.pk, key, "subject", "edit_box"),
    ]
    assert (rows[1].before, rows[1].after) == ([0, 0, 4, 4], [0, 0, 8, 8])
