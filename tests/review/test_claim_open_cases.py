"""The claim's slot check in the database (``review_claim_candidate``, migration ``review.0016``)
case by case: an image is offered to a reviewer when they hold no lease on it in the given states,
and its live leases plus submitted reviews are fewer than its required reviews (1 until its
review plan is written), as ``review.queue.queue_candidates`` and ``free_slot`` decide in Python.
Each case is asked of the function as migrated, on a dataset whose queue is that one image."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotations.models import ImageStatus
from review.models import Lease, LeaseState, ReviewPlan
from tests.factories import DatasetFactory, ImageFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

LIVE, LAPSED = "live", "lapsed"
SEEN = ["submitted", "skipped"]  # the first passes of a claim: a skipped image is not offered again
SUBMITTED_ONLY = ["submitted"]  # the last passes: a skipped image may come back

# (leases as (whose, state, live or lapsed), plan (required, submitted) or None, states, open?)
CASES = [
    pytest.param([], None, SEEN, True, id="fresh image"),
    pytest.param([("other", "active", LIVE)], None, SEEN, False, id="leased by another, no plan: one review"),
    pytest.param([("other", "active", LAPSED)], None, SEEN, True, id="another's lapsed lease frees the slot"),
    pytest.param([("other", "active", LIVE)], (2, 0), SEEN, True, id="second slot of an overlapping item"),
    pytest.param([("other", "active", LIVE), ("third", "active", LIVE)], (2, 0), SEEN, False, id="both slots leased"),
    pytest.param([("other", "submitted", LAPSED)], (2, 1), SEEN, True, id="one of two submitted"),
    pytest.param([("other", "active", LIVE)], (2, 1), SEEN, False, id="one submitted, one leased"),
    pytest.param([("other", "submitted", LAPSED)], (1, 1), SEEN, False, id="done"),
    pytest.param([("me", "submitted", LAPSED)], (2, 1), SEEN, False, id="reviewed by me"),
    pytest.param([("me", "skipped", LAPSED)], None, SEEN, False, id="skipped by me, first passes"),
    pytest.param([("me", "skipped", LAPSED)], None, SUBMITTED_ONLY, True, id="skipped by me, last passes"),
    pytest.param([("me", "released", LAPSED), ("me", "expired", LAPSED)], None, SEEN, True,
                 id="released and expired leases of mine do not count"),
    pytest.param([("me", "active", LIVE)], (2, 0), SEEN, True, id="my own live lease counts as a live lease only"),
    pytest.param([("other", "released", LAPSED), ("other", "skipped", LAPSED)], None, SEEN, True,
                 id="another's ended leases do not count"),
]


def candidate(dataset, reviewer, now, states) -> int | None:
    """The first image of the dataset's priority side open to ``reviewer``, looked at unlocked
    (audit fraction 0: every image is on the priority side)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT review_claim_candidate(%s, %s, %s, 0, false, %s, NULL)", [dataset.pk, reviewer.pk, now, states])
        return cursor.fetchone()[0]


@pytest.mark.parametrize(("leases", "plan", "states", "expected"), CASES)
def test_the_slot_check(on_postgres, leases, plan, states, expected):
    dataset = DatasetFactory(slug="slot-check")
    image = ImageFactory(dataset=dataset, status=ImageStatus.IN_REVIEW)
    me, other, third = UserFactory(), UserFactory(), UserFactory()
    users = {"me": me, "other": other, "third": third}
    now = timezone.now()
    for slot, (whose, state, when) in enumerate(leases):
        expires = now + timedelta(minutes=10) if when == LIVE else now - timedelta(minutes=10)
        Lease.objects.create(image=image, dataset=dataset, reviewer=users[whose], state=state, slot=slot, version=0,
                             expires_at=expires, ended_at=None if state == "active" else now)
    if plan is not None:
        ReviewPlan.objects.create(image=image, dataset=dataset, required_reviews=plan[0], submitted_reviews=plan[1])
    assert candidate(dataset, me, now, states) == (image.pk if expected else None)


def test_other_images_leases_do_not_count(on_postgres):
    dataset = DatasetFactory(slug="slot-check-others")
    image = ImageFactory(dataset=dataset, priority=1.0)
    elsewhere = ImageFactory(dataset=dataset, status=ImageStatus.APPROVED)
    me, other = UserFactory(), UserFactory()
    now = timezone.now()
    Lease.objects.create(image=elsewhere, dataset=dataset, reviewer=other, state=LeaseState.ACTIVE, slot=0, version=0,
                         expires_at=now + timedelta(minutes=10))
    Lease.objects.create(image=elsewhere, dataset=dataset, reviewer=me, state=LeaseState.SUBMITTED, slot=1, version=0,
                         expires_at=now, ended_at=now)
    assert candidate(dataset, me, now, SEEN) == image.pk
