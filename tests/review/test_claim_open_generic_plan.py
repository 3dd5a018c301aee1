"""The claim's slot check reads the image's leases and plan, however many leases the reviewer has
elsewhere and whatever statistics the lease table had. Migration ``review.0014`` moved it to
PL/pgSQL, whose statements keep a generic plan per connection: on statistics taken while the
lease table was nearly empty (a new database, autovacuum not yet run) that plan was a bitmap AND
with the reviewer's index, and read all of the reviewer's leases for every image a claim checked;
``review.0015`` brought the SQL function back (planned on each call, with the table as it is).
Migration ``review.0016`` writes the check into ``review_claim_candidate``'s statements, kept
plans again, which must still not read the reviewer's other leases nor scan the table."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from annotations.models import Image, ImageStatus
from review.models import Lease, LeaseState
from tests.factories import DatasetFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def images(dataset, n: int, prefix: str) -> list[Image]:
    return Image.objects.bulk_create([
        Image(dataset=dataset, width=64, height=48, original_name=f"{prefix}{i}.png", file=f"x/{prefix}{i}.png",
              sha256=f"{prefix}{i}".encode().hex().ljust(64, "0")[:64], status=ImageStatus.IN_REVIEW) for i in range(n)])


def leases(dataset, reviewer, on: list[Image], state: str) -> None:
    now = timezone.now()
    Lease.objects.bulk_create([Lease(image=im, dataset=dataset, reviewer=reviewer, state=state, version=0,
                                     expires_at=now - timedelta(hours=1), ended_at=now) for im in on])


def buffers_of_a_check(image: Image, reviewer) -> tuple[bool, int]:
    """Whether the claim's candidate statement offers ``image`` (the first of its queue) to
    ``reviewer``, and the buffers the statement touched, on the generic plans of the function's
    statements."""
    args = [image.dataset_id, reviewer.pk, timezone.now(), ["submitted", "skipped"]]
    call = "review_claim_candidate(%s, %s, %s, 0, false, %s, NULL)"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT {call}", args)
        raw = cursor.fetchone()[0]
        plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
        cursor.execute(f"SELECT {call}", args)
        return cursor.fetchone()[0] == image.pk, plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0)


def test_the_slot_check_does_not_read_the_reviewers_other_leases(on_postgres, reviewer):
    dataset = DatasetFactory(slug="generic-plan")
    [fresh, reviewed, skipped] = images(dataset, 3, "t")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE review_lease")  # statistics of a nearly empty lease table
    leases(dataset, reviewer, [reviewed], LeaseState.SUBMITTED)
    leases(dataset, reviewer, [skipped], LeaseState.SKIPPED)
    buffers_of_a_check(fresh, reviewer)  # the first call plans the function's statements and keeps the plans
    open_few, few = buffers_of_a_check(fresh, reviewer)
    leases(dataset, reviewer, images(dataset, 6000, "o"), LeaseState.SUBMITTED)
    open_many, many = buffers_of_a_check(fresh, reviewer)
    assert (open_few, open_many) == (True, True)
    assert many - few <= 3, (few, many)
    # (each case of the check's answers: tests/review/test_claim_open_cases.py)
