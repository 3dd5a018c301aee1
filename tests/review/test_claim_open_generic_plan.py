"""The claim's slot check (``review_claim_open``) reads the image's leases and plan, however many
leases the reviewer has elsewhere and whatever statistics the lease table had. Migration
``review.0014`` moved it to PL/pgSQL, whose statements keep a generic plan per connection: on
statistics taken while the lease table was nearly empty (a new database, autovacuum not yet run)
that plan was a bitmap AND with the reviewer's index, and read all of the reviewer's leases for
every image a claim checked; ``review.0015`` brought the SQL function back (planned on each call,
with the table as it is)."""

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
    """The check's answer and the buffers it touched, on the generic plans of its statements."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT review_claim_open(%s, %s, %s, %s)",
                       [image.pk, reviewer.pk, timezone.now(), ["submitted", "skipped"]])
        raw = cursor.fetchone()[0]
        plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
        cursor.execute("SELECT review_claim_open(%s, %s, %s, %s)", [image.pk, reviewer.pk, timezone.now(), ["submitted", "skipped"]])
        return cursor.fetchone()[0], plan["Shared Hit Blocks"] + plan.get("Shared Read Blocks", 0)


def test_the_slot_check_does_not_read_the_reviewers_other_leases(on_postgres, reviewer):
    dataset = DatasetFactory(slug="generic-plan")
    [fresh, reviewed, skipped] = images(dataset, 3, "t")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE review_lease")  # statistics of a nearly empty lease table
    leases(dataset, reviewer, [reviewed], LeaseState.SUBMITTED)
    leases(dataset, reviewer, [skipped], LeaseState.SKIPPED)
    open_few, few = buffers_of_a_check(fresh, reviewer)
    leases(dataset, reviewer, images(dataset, 6000, "o"), LeaseState.SUBMITTED)
    open_many, many = buffers_of_a_check(fresh, reviewer)
    assert (open_few, open_many) == (True, True)
    assert many - few <= 3, (few, many)
    # the same answers as ever: an image the reviewer reviewed or skipped has no slot for them
    assert buffers_of_a_check(reviewed, reviewer)[0] is False
    assert buffers_of_a_check(skipped, reviewer)[0] is False
