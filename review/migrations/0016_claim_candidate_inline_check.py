"""The claim's slot check written into ``review_claim_candidate``'s statements instead of called as
``review_claim_open`` (migrations ``review.0005``, ``0014``, ``0015``).

A SQL function that the planner cannot inline (that one had sub-selects) is planned again each
time a statement calling it runs: every claim planned its four sub-selects afresh, about 0.18 ms
of the database's CPU per candidate statement on the review bench's database (2,000 statements in
a loop: 205–225 µs with the function, 30 µs with the check written in). Written into the
statement, the check is part of the candidate statement's plan, which PL/pgSQL prepares once per
connection and keeps. In ``bench/review_inprocess.py``, three alternated runs of 400 pairs on two
copies of the bench's database: ``next`` cost PostgreSQL 1,870–2,117 µs instead of 2,300–2,636.

A kept plan is chosen on the statistics of the moment, and must stay right as the lease table grows
(migration ``review.0015`` brought the SQL function back after a kept plan read all of the
reviewer's leases for every image it checked). So the check is one read of the image's leases,
found by ``image_id`` alone: the reviewer and the states are counted in ``FILTER`` clauses and are
never an index condition, so no plan can read the reviewer's leases; and the function runs with
``enable_seqscan`` off, so no plan chosen while the table looked tiny scans it whole. The
answers are those of ``review_claim_open``: no lease of this reviewer in ``p_states``, and fewer
live leases than the required reviews not yet submitted (1 until the image's review plan is
written). ``tests/review/test_claim_open_cases.py`` asks each case of the claim, and
``tests/review/test_claim_open_generic_plan.py`` checks the buffers on generic plans.
"""

import importlib

from django.db import migrations

# Whether image ``im`` has a slot for p_reviewer (review.queue.queue_candidates and free_slot).
OPEN_CHECK = """(SELECT count(*) FILTER (WHERE m.reviewer_id = p_reviewer AND m.state = ANY (p_states)) = 0
                       AND count(*) FILTER (WHERE m.state = 'active' AND m.expires_at > p_now)
                           < coalesce((SELECT rp.required_reviews - rp.submitted_reviews
                                         FROM review_reviewplan rp WHERE rp.image_id = im.id), 1)
                  FROM review_lease m WHERE m.image_id = im.id)"""

SIDES = {
    "audit": ("im.audit_draw < p_audit_fraction", "im.audit_draw, im.id"),
    "priority": ("NOT (im.audit_draw < p_audit_fraction)", "im.priority, im.created_at, im.id"),
}
LOCKS = {"true": " FOR UPDATE OF im SKIP LOCKED", "false": " FOR UPDATE OF im", "null": ""}


def _statement(side: str, lock: str) -> str:
    where, order = SIDES[side]
    return (f"SELECT im.id INTO v_image FROM annotations_image im\n"
            f"             WHERE im.dataset_id = p_dataset AND im.status = 'in_review' AND {where}\n"
            f"               AND {OPEN_CHECK}\n"
            f"             ORDER BY {order} LIMIT 1{LOCKS[lock]};")


def candidate_sql() -> str:
    def branches(side: str) -> str:
        return (f"        IF p_skip_locked THEN\n            {_statement(side, 'true')}\n"
                f"        ELSIF NOT p_skip_locked THEN\n            {_statement(side, 'false')}\n"
                f"        ELSE\n            {_statement(side, 'null')}\n        END IF;")
    return f"""
-- The first image of one side of the queue this reviewer may be given (review.queue.queue_candidates):
-- in review, not reviewed (nor skipped, unless 'skipped' is left out of p_states) by them, with a
-- free slot; audit side in audit_draw order, the rest lowest priority first. p_skip_locked: true
-- takes it FOR UPDATE SKIP LOCKED, false FOR UPDATE (waits), NULL looks without locking.
-- enable_seqscan off: the statements' kept plans never scan a table whole (migration review.0016).
CREATE OR REPLACE FUNCTION review_claim_candidate(
    p_dataset bigint, p_reviewer bigint, p_now timestamptz, p_audit_fraction double precision,
    p_audit boolean, p_states text[], p_skip_locked boolean
) RETURNS bigint LANGUAGE plpgsql VOLATILE SET enable_seqscan = off AS $$
DECLARE
    v_image bigint;
BEGIN
    IF p_audit THEN
{branches("audit")}
    ELSE
{branches("priority")}
    END IF;
    RETURN v_image;
END
$$;

DROP FUNCTION IF EXISTS review_claim_open(bigint, bigint, timestamptz, text[]);
"""


def _previous_sql() -> str:
    claim_sql = importlib.import_module("review.migrations.0005_review_claim_function").CLAIM_SQL
    return claim_sql[claim_sql.index("-- The first image of one side of the queue"):]


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite claims in Python (review.queue._claim_once)
        schema_editor.execute(candidate_sql())


def restore_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous_sql())


class Migration(migrations.Migration):
    dependencies = [("review", "0015_claim_open_back_to_sql")]

    operations = [migrations.RunPython(create_function, restore_functions)]
