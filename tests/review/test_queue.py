"""Leases: who gets which item, in what order, and what expiry, release and skip do."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotations.errors import NothingToDo
from review import queue
from review.models import Draft, Lease, LeaseState, ReviewPlan
from tests.factories import DatasetFactory
from tests.review.conftest import image_in_review

pytestmark = pytest.mark.django_db


def expire(lease):
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_two_reviewers_get_different_items(dataset, make_reviewer):
    images = [image_in_review(dataset, annotators=False) for _ in range(2)]
    a = queue.lease_next(dataset=dataset, reviewer=make_reviewer("ann"))
    b = queue.lease_next(dataset=dataset, reviewer=make_reviewer("bob"))
    assert {a.image_id, b.image_id} == {i.pk for i in images}


def test_lowest_priority_first_then_oldest(dataset, make_reviewer):
    old_high = image_in_review(dataset, priority=0.9, annotators=False)
    old_low = image_in_review(dataset, priority=0.2, annotators=False)
    new_low = image_in_review(dataset, priority=0.2, annotators=False)
    got = [queue.lease_next(dataset=dataset, reviewer=make_reviewer(f"r{i}")).image_id for i in range(3)]
    assert got == [old_low.pk, new_low.pk, old_high.pk]


def test_a_reviewer_holding_a_lease_gets_the_same_item_again(dataset, reviewer):
    image_in_review(dataset, annotators=False)
    image_in_review(dataset, annotators=False)
    first = queue.lease_next(dataset=dataset, reviewer=reviewer)
    again = queue.lease_next(dataset=dataset, reviewer=reviewer)
    assert again.pk == first.pk
    assert Lease.objects.filter(reviewer=reviewer, state=LeaseState.ACTIVE).count() == 1


def test_only_items_in_review_of_that_dataset_are_handed_out(dataset, reviewer):
    other = DatasetFactory(slug="other")
    image_in_review(other, annotators=False)
    done = image_in_review(dataset, annotators=False)
    done.status = "approved"
    done.save()
    with pytest.raises(NothingToDo, match="No item left to review in demo"):
        queue.lease_next(dataset=dataset, reviewer=reviewer)


def test_an_expired_lease_returns_the_item_to_the_queue(dataset, make_reviewer):
    image = image_in_review(dataset, annotators=False)
    ann, bob = make_reviewer("ann"), make_reviewer("bob")
    lease = queue.lease_next(dataset=dataset, reviewer=ann)
    with pytest.raises(NothingToDo):
        queue.lease_next(dataset=dataset, reviewer=bob)
    expire(lease)
    taken = queue.lease_next(dataset=dataset, reviewer=bob)
    assert taken.image_id == image.pk
    lease.refresh_from_db()
    assert lease.state == LeaseState.EXPIRED


def test_lease_length_comes_from_the_dataset(make_reviewer):
    dataset = DatasetFactory(slug="short", lease_minutes=5)
    image_in_review(dataset, annotators=False)
    lease = queue.lease_next(dataset=dataset, reviewer=make_reviewer("ann"))
    assert timedelta(minutes=4) < lease.expires_at - timezone.now() <= timedelta(minutes=5)


def test_release_returns_the_item_to_the_queue(dataset, make_reviewer):
    image = image_in_review(dataset, annotators=False)
    ann = make_reviewer("ann")
    lease = queue.lease_next(dataset=dataset, reviewer=ann)
    queue.lease_end(lease=lease, reviewer=ann, state=LeaseState.RELEASED)
    assert queue.lease_next(dataset=dataset, reviewer=make_reviewer("bob")).image_id == image.pk


def test_skip_puts_the_item_at_the_back_of_this_reviewers_queue(dataset, make_reviewer):
    first = image_in_review(dataset, priority=0.1, annotators=False)
    second = image_in_review(dataset, priority=0.5, annotators=False)
    ann = make_reviewer("ann")
    lease = queue.lease_next(dataset=dataset, reviewer=ann)
    assert lease.image_id == first.pk
    queue.lease_end(lease=lease, reviewer=ann, state=LeaseState.SKIPPED)
    nxt = queue.lease_next(dataset=dataset, reviewer=ann)
    assert nxt.image_id == second.pk
    queue.lease_end(lease=nxt, reviewer=ann, state=LeaseState.RELEASED)
    # Another reviewer still gets the skipped item first.
    assert queue.lease_next(dataset=dataset, reviewer=make_reviewer("bob")).image_id == first.pk


def test_skipped_items_come_back_when_nothing_else_is_left(dataset, reviewer):
    only = image_in_review(dataset, annotators=False)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    queue.lease_end(lease=lease, reviewer=reviewer, state=LeaseState.SKIPPED)
    assert queue.lease_next(dataset=dataset, reviewer=reviewer).image_id == only.pk


def test_k_reviews_go_to_k_distinct_reviewers_at_the_same_time(make_reviewer):
    dataset = DatasetFactory(slug="overlap", reviews_per_item=3, overlap_fraction=1.0)
    image = image_in_review(dataset, annotators=False)
    leases = [queue.lease_next(dataset=dataset, reviewer=make_reviewer(f"r{i}")) for i in range(3)]
    assert {lease.image_id for lease in leases} == {image.pk}
    assert sorted(lease.slot for lease in leases) == [0, 1, 2]
    assert ReviewPlan.objects.get(image=image).required_reviews == 3
    with pytest.raises(NothingToDo):
        queue.lease_next(dataset=dataset, reviewer=make_reviewer("fourth"))


def test_overlap_sample_is_deterministic_and_close_to_the_fraction():
    dataset = DatasetFactory(slug="sampled", reviews_per_item=5, overlap_fraction=0.2)
    picks = [queue.required_reviews_for(dataset=dataset, image_id=i) for i in range(1, 5001)]
    assert set(picks) == {1, 5}
    assert 0.17 < picks.count(5) / len(picks) < 0.23
    assert picks == [queue.required_reviews_for(dataset=dataset, image_id=i) for i in range(1, 5001)]
    dataset.overlap_fraction = 0.0
    assert {queue.required_reviews_for(dataset=dataset, image_id=i) for i in range(1, 200)} == {1}


def test_database_refuses_two_active_leases_on_one_slot(dataset, make_reviewer):
    image = image_in_review(dataset, annotators=False)
    lease = queue.lease_next(dataset=dataset, reviewer=make_reviewer("ann"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Lease.objects.create(image=image, dataset=dataset, reviewer=make_reviewer("bob"), slot=lease.slot,
                             version=0, expires_at=lease.expires_at)


def test_database_refuses_two_active_leases_of_one_reviewer_on_one_image(make_reviewer):
    dataset = DatasetFactory(slug="overlap2", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset, annotators=False)
    ann = make_reviewer("ann")
    lease = queue.lease_next(dataset=dataset, reviewer=ann)
    with pytest.raises(IntegrityError), transaction.atomic():
        Lease.objects.create(image=image, dataset=dataset, reviewer=ann, slot=1, version=0, expires_at=lease.expires_at)


def test_drafts_survive_release_and_come_back_with_the_item(dataset, reviewer):
    image_in_review(dataset, annotators=False)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    queue.draft_save(lease=lease, reviewer=reviewer, payload={"label": "awe", "edits": [1, 2]})
    queue.lease_end(lease=lease, reviewer=reviewer, state=LeaseState.RELEASED)
    again = queue.lease_next(dataset=dataset, reviewer=reviewer)
    draft = queue.draft_get(lease=again, reviewer=reviewer)
    assert draft.payload == {"label": "awe", "edits": [1, 2]}
    assert Draft.objects.count() == 1


def test_saving_a_draft_renews_a_live_lease(dataset, reviewer):
    image_in_review(dataset, annotators=False)
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() + timedelta(minutes=1))
    queue.draft_save(lease=lease, reviewer=reviewer, payload={})
    lease.refresh_from_db()
    assert lease.expires_at - timezone.now() > timedelta(minutes=dataset.lease_minutes - 1)


def test_expire_stale_marks_only_lapsed_leases(dataset, make_reviewer):
    image_in_review(dataset, annotators=False)
    image_in_review(dataset, annotators=False)
    old = queue.lease_next(dataset=dataset, reviewer=make_reviewer("ann"))
    live = queue.lease_next(dataset=dataset, reviewer=make_reviewer("bob"))
    expire(old)
    assert queue.lease_expire_stale() == 1
    old.refresh_from_db()
    live.refresh_from_db()
    assert (old.state, live.state) == (LeaseState.EXPIRED, LeaseState.ACTIVE)


def test_the_overlap_sample_a_claim_writes_is_the_one_rule_on_every_database(make_reviewer):
    """PostgreSQL claims in the database (``review_claim``), SQLite in Python: both write the
    plan that ``required_reviews_for`` (the SHA-256 sample) says, and the lease the claim returns
    is the stored one, with its image."""
    dataset = DatasetFactory(slug="half", reviews_per_item=3, overlap_fraction=0.5, audit_fraction=0.0)
    images = [image_in_review(dataset, priority=i / 40, annotators=False) for i in range(40)]
    reviewer = make_reviewer("sampler")
    for image in images:
        lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
        assert lease.image_id == image.pk and lease.image.pk == image.pk and lease.image.width == image.width
        stored = Lease.objects.get(pk=lease.pk)
        assert (stored.state, stored.slot, stored.version, stored.expires_at) == (
            LeaseState.ACTIVE, lease.slot, lease.version, lease.expires_at)
        queue.lease_end(lease=lease, reviewer=reviewer, state=LeaseState.SKIPPED)
    required = dict(ReviewPlan.objects.values_list("image_id", "required_reviews"))
    expected = {image.pk: queue.required_reviews_for(dataset=dataset, image_id=image.pk) for image in images}
    assert required == expected
    assert set(expected.values()) == {1, 3}  # the sample splits these 40 images
