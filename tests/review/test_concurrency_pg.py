"""32 concurrent claimers on PostgreSQL, each thread on its own database connection.

Run with ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/emoverse pytest tests/review/test_concurrency_pg.py``;
skipped on SQLite (where ``BEGIN IMMEDIATE`` serialises claims).
"""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotations.errors import NothingToDo
from review import queue
from review.models import Lease, LeaseState
from tests.factories import DatasetFactory, ImageFactory, UserFactory

pytestmark = [pytest.mark.postgres]
CLAIMERS = 32


def claim_all(dataset, reviewers):
    """Every reviewer asks for an item at the same moment; returns their image ids (None when nothing was left)."""
    barrier = threading.Barrier(len(reviewers))

    def claim(reviewer):
        try:
            barrier.wait()
            return queue.lease_next(dataset=dataset, reviewer=reviewer).image_id
        except NothingToDo:
            return None
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(reviewers)) as pool:
        return list(pool.map(claim, reviewers))


def reviewers(prefix, n=CLAIMERS):
    return [UserFactory(username=f"{prefix}{i}", roles=["reviewer"], password=None) for i in range(n)]


@pytest.fixture
def fast_users(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_no_item_is_leased_twice_and_expiry_returns_items(transactional_db, on_postgres, fast_users):
    dataset = DatasetFactory(slug="race")
    images = [ImageFactory(dataset=dataset, priority=i / 40) for i in range(40)]

    first = claim_all(dataset, reviewers("a"))
    assert None not in first and len(set(first)) == CLAIMERS
    second = claim_all(dataset, reviewers("b"))
    got = [i for i in second if i is not None]
    assert len(got) == 40 - CLAIMERS and not set(got) & set(first)
    assert Counter(Lease.objects.filter(state=LeaseState.ACTIVE).values_list("image_id", flat=True)).most_common(1)[0][1] == 1

    # Every lease lapses: the items go back to the queue and a new crowd gets them, once each.
    Lease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    third = claim_all(dataset, reviewers("c"))
    assert None not in third and len(set(third)) == CLAIMERS
    assert set(third) <= {i.pk for i in images}
    live = Lease.objects.filter(state=LeaseState.ACTIVE, expires_at__gt=timezone.now())
    assert live.count() == CLAIMERS and len(set(live.values_list("image_id", flat=True))) == CLAIMERS


def test_k_reviews_under_contention_go_to_k_distinct_reviewers(transactional_db, on_postgres, fast_users):
    dataset = DatasetFactory(slug="race-k", reviews_per_item=3, overlap_fraction=1.0)
    for i in range(10):
        ImageFactory(dataset=dataset, priority=i / 10)
    results = claim_all(dataset, reviewers("k"))
    assert results.count(None) == CLAIMERS - 30
    per_image = Counter(i for i in results if i is not None)
    assert set(per_image.values()) == {3} and len(per_image) == 10
    rows = Lease.objects.filter(state=LeaseState.ACTIVE).values_list("image_id", "reviewer_id", "slot")
    assert len({(i, r) for i, r, _ in rows}) == len({(i, s) for i, _, s in rows}) == 30
