"""The calibration audit in the review queue: who is in it, and the order it is served in."""

from __future__ import annotations

import random

import pytest

from annotations.errors import NothingToDo
from annotations.models import Image, ImageSource, ImageStatus
from ml.calibration_fits import audit_images
from review import queue
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.django_db


def test_audit_inclusion_is_stored_and_close_to_the_fraction(monkeypatch):
    """2000 images with the model's own uniform draw: about 10 % are in a 0.1 audit, the same
    ones on every query (the draw is stored), and raising the fraction only adds images."""
    dataset = DatasetFactory(slug="audit-share", audit_fraction=0.1)
    monkeypatch.setattr("annotations.models.random", random.Random(2024))
    Image.objects.bulk_create([
        Image(dataset=dataset, file=f"x/{i}.png", sha256=f"{i:064x}", width=8, height=8, source=ImageSource.EMOSET,
              status=ImageStatus.IN_REVIEW)
        for i in range(2000)
    ])
    draws = list(Image.objects.filter(dataset=dataset).values_list("audit_draw", flat=True))
    assert len(set(draws)) == 2000 and all(0.0 <= d < 1.0 for d in draws)
    first = set(audit_images(dataset=dataset).values_list("id", flat=True))
    assert 0.07 <= len(first) / 2000 <= 0.13
    assert set(audit_images(dataset=dataset).values_list("id", flat=True)) == first
    assert set(Image.objects.filter(queue.in_audit(dataset)).values_list("id", flat=True)) == first
    dataset.audit_fraction = 0.2
    dataset.save()
    wider = set(audit_images(dataset=dataset).values_list("id", flat=True))
    assert first < wider and 0.17 <= len(wider) / 2000 <= 0.23
    dataset.audit_fraction = 0.0
    dataset.save()
    assert not audit_images(dataset=dataset).exists()


def _expected_order(audit: list[int], others: list[int], fraction: float, seed: int) -> list[int]:
    """The queue's rule replayed: each claim draws once; below ``fraction`` the next audit image,
    else the next other one; an empty part falls back to the other."""
    rng, audit, others, out = random.Random(seed), list(audit), list(others), []
    while audit or others:
        first, second = (audit, others) if rng.random() < fraction else (others, audit)
        out.append((first or second).pop(0))
    return out


def test_queue_serves_the_audit_in_draw_order_mixed_with_hardest_first(monkeypatch, make_reviewer):
    dataset = DatasetFactory(slug="audit-queue", audit_fraction=0.3)
    # Audit images (draw < 0.3) get a low priority on purpose: the audit ignores priority.
    audit = {draw: ImageFactory(dataset=dataset, audit_draw=draw, priority=0.01 * k)
             for k, draw in enumerate([0.21, 0.02, 0.15, 0.29])}
    others = {priority: ImageFactory(dataset=dataset, audit_draw=0.3 + 0.05 * k, priority=priority)
              for k, priority in enumerate([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])}
    audit_order = [audit[d].pk for d in sorted(audit)]
    hardest_first = [others[p].pk for p in sorted(others)]
    seed = 7
    monkeypatch.setattr(queue, "_rng", random.Random(seed))
    served = [queue.lease_next(dataset=dataset, reviewer=make_reviewer(f"r{i}")).image_id for i in range(10)]

    assert served == _expected_order(audit_order, hardest_first, 0.3, seed)
    assert len(set(served)) == 10
    assert [pk for pk in served if pk in audit_order] == audit_order  # uniform random order: by draw
    assert [pk for pk in served if pk in hardest_first] == hardest_first  # the rest: lowest priority first
    # Seed 7 draws audit, priority alternately at first: the two streams are mixed, not one after the other.
    assert "".join("a" if pk in audit_order else "p" for pk in served) == "papappapap"
    with pytest.raises(NothingToDo):
        queue.lease_next(dataset=dataset, reviewer=make_reviewer("eleventh"))


def test_without_an_audit_share_the_queue_is_priority_only(monkeypatch, make_reviewer):
    dataset = DatasetFactory(slug="no-audit", audit_fraction=0.0)
    images = [ImageFactory(dataset=dataset, audit_draw=0.0 + 0.1 * k, priority=p) for k, p in enumerate([0.5, 0.1, 0.3])]
    monkeypatch.setattr(queue, "_rng", random.Random(3))
    served = [queue.lease_next(dataset=dataset, reviewer=make_reviewer(f"p{i}")).image_id for i in range(3)]
    assert served == [images[1].pk, images[2].pk, images[0].pk]


def test_a_reviewer_is_never_served_the_same_audit_item_twice(monkeypatch, make_reviewer):
    """Each audit item goes to one reviewer once (reviews_per_item 1): released leases come back,
    a held one is returned again rather than a second item."""
    dataset = DatasetFactory(slug="audit-once", audit_fraction=1.0)
    images = [ImageFactory(dataset=dataset, audit_draw=d) for d in (0.7, 0.1, 0.4)]
    monkeypatch.setattr(queue, "_rng", random.Random(5))
    ann = make_reviewer("ann")
    lease = queue.lease_next(dataset=dataset, reviewer=ann)
    assert lease.image_id == images[1].pk
    assert queue.lease_next(dataset=dataset, reviewer=ann).pk == lease.pk
    seen = [lease.image_id]
    for name in ("bob", "cat"):
        seen.append(queue.lease_next(dataset=dataset, reviewer=make_reviewer(name)).image_id)
    assert seen == [images[1].pk, images[2].pk, images[0].pk]
    with pytest.raises(NothingToDo):
        queue.lease_next(dataset=dataset, reviewer=make_reviewer("dan"))
