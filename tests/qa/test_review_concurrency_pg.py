"""The QA review under contention on PostgreSQL, each thread on its own connection: claims
never lease an image twice beyond its K slots, and of two simultaneous submits of one lease
one is stored and the other is a conflict."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from annotations.errors import NothingToDo, VersionConflict
from qa import review, review_queue
from qa.models import QADecision, QALease, QAReview
from qa.services import qa_config_install_defaults
from tests.factories import DatasetFactory, UserFactory
from tests.qa.test_review import image_with_pairs

pytestmark = [pytest.mark.postgres]
CLAIMERS = 12


@pytest.fixture
def fast_users(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def together(fn, args):
    barrier = threading.Barrier(len(args))

    def run(arg):
        try:
            barrier.wait()
            return fn(arg)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(args)) as pool:
        return list(pool.map(run, args))


def test_concurrent_claims_fill_k_slots_and_no_more(transactional_db, on_postgres, fast_users):
    dataset = DatasetFactory(slug="busy", reviews_per_item=2, overlap_fraction=1.0)
    qa_config_install_defaults(dataset=dataset)
    images = [image_with_pairs(dataset)[0].pk for _ in range(3)]
    users = [UserFactory(username=f"r{i}", roles=["reviewer"], password=None) for i in range(CLAIMERS)]

    def claim(user):
        try:
            return review_queue.qa_lease_next(dataset=dataset, reviewer=user).image_id
        except NothingToDo:
            return None

    got = Counter(together(claim, users))
    assert {k: v for k, v in got.items() if k is not None} == {pk: 2 for pk in images}
    assert got[None] == CLAIMERS - 6
    assert QALease.objects.filter(state="active").count() == 6


def test_two_simultaneous_submits_of_one_lease_store_one_review(transactional_db, on_postgres, fast_users):
    dataset = DatasetFactory(slug="twice")
    qa_config_install_defaults(dataset=dataset)
    image, pairs = image_with_pairs(dataset)
    user = UserFactory(username="ann", roles=["reviewer"], password=None)
    lease = review_queue.qa_lease_next(dataset=dataset, reviewer=user)
    decisions = [{"pair": p.pk, "decision": "accept"} for p in pairs]

    def submit(_):
        try:
            review.qa_review_submit(lease=lease, reviewer=user, decisions=decisions)
            return "stored"
        except VersionConflict:
            return "409"

    assert sorted(together(submit, [0, 1])) == ["409", "stored"]
    assert QAReview.objects.count() == 1 and QADecision.objects.count() == 2
