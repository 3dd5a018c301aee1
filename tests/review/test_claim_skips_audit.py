"""The review queue's claim passes over the images drawn for audit on the queue index's entries
(``image_queue_idx`` ends with ``audit_draw``, migration ``annotations.0013``), without fetching
their rows: audit images are claimed in ``audit_draw`` order, so those near the head of the queue
wait there while it drains, and a claim that fetched each one grew with the reviews done."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from annotations.models import Image, ImageStatus
from tests.factories import DatasetFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

# review_claim_candidate's statement for a claim outside the audit (migration review.0005),
# without the per-image slot check that follows the audit test in its filter.
CANDIDATE = """
SELECT im.id FROM annotations_image im
 WHERE im.dataset_id = %s AND im.status = 'in_review' AND NOT (im.audit_draw < %s)
 ORDER BY im.priority, im.created_at, im.id LIMIT 1 FOR UPDATE OF im SKIP LOCKED
"""


def index_scans(plan: dict) -> list[dict]:
    found = [plan] if plan.get("Node Type") == "Index Scan" else []
    for child in plan.get("Plans", []):
        found += index_scans(child)
    return found


def test_a_claim_skips_the_audit_images_at_the_head_of_the_queue_on_the_index(on_postgres):
    dataset = DatasetFactory(slug="audit-head", audit_fraction=0.5)
    head = [Image(dataset=dataset, width=64, height=48, original_name=f"a{i}.png", file=f"x/a{i}.png", sha256=f"{i:064x}",
                  status=ImageStatus.IN_REVIEW, priority=0.0, audit_draw=0.25) for i in range(300)]
    normal = Image(dataset=dataset, width=64, height=48, original_name="n.png", file="x/n.png", sha256="f" * 64,
                   status=ImageStatus.IN_REVIEW, priority=1.0, audit_draw=0.75)
    Image.objects.bulk_create([*head, normal])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE annotations_image")
        cursor.execute("SET LOCAL enable_seqscan = off")  # a few hundred rows: the planner would read them all
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + CANDIDATE, [dataset.pk, dataset.audit_fraction])
        raw = cursor.fetchone()[0]
        plan = raw if isinstance(raw, list) else json.loads(raw)
        cursor.execute(CANDIDATE, [dataset.pk, dataset.audit_fraction])
        assert cursor.fetchone()[0] == Image.objects.get(original_name="n.png").pk
    [scan] = index_scans(plan[0]["Plan"])
    assert scan["Index Name"] == "image_queue_idx"
    assert "audit_draw" in scan["Index Cond"]  # checked on the index entries
    assert scan.get("Rows Removed by Filter", 0) == 0  # no audit image's row was fetched
