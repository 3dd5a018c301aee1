"""images_set_status: many images in one statement per field set, each with its own values."""

from __future__ import annotations

import pytest

from annotations.models import Image, ImageStatus
from annotations.services import images_set_status
from tests.factories import ImageFactory


@pytest.mark.django_db
def test_each_image_gets_its_own_fields_and_a_repeated_image_its_last_entry():
    a, b, c, untouched = (ImageFactory(label="joy", confidence=0.9, agreement=0.5, priority=0.3) for _ in range(4))
    images_set_status([
        (a, {"label": "fear", "confidence": 0.4, "agreement": None, "priority": 0.2}),
        (b, {"label": None, "confidence": None, "agreement": None, "priority": 0.7}),  # a column of NULLs but one
        (c, {}),  # the status only
        (a, {"label": "awe", "confidence": 0.6, "agreement": 0.8, "priority": 0.1}),  # given twice: the last wins
    ], status=ImageStatus.IN_REVIEW)
    rows = {i.pk: i for i in Image.objects.all()}
    assert (rows[a.pk].status, rows[a.pk].label, rows[a.pk].confidence, rows[a.pk].agreement, rows[a.pk].priority) == \
        (ImageStatus.IN_REVIEW, "awe", 0.6, 0.8, 0.1)
    assert (rows[b.pk].status, rows[b.pk].label, rows[b.pk].confidence, rows[b.pk].agreement, rows[b.pk].priority) == \
        (ImageStatus.IN_REVIEW, None, None, None, 0.7)
    assert (rows[c.pk].status, rows[c.pk].label, rows[c.pk].confidence) == (ImageStatus.IN_REVIEW, "joy", 0.9)
    assert rows[untouched.pk].status == untouched.status and rows[untouched.pk].label == "joy"
    assert rows[a.pk].updated_at == rows[b.pk].updated_at == rows[c.pk].updated_at > rows[untouched.pk].updated_at
    assert (a.status, a.label, b.confidence) == (ImageStatus.IN_REVIEW, "awe", None)  # the objects given too
