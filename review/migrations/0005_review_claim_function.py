"""``review_claim``: the PostgreSQL side of ``review.queue.lease_next``, one statement per claim.

The function does what ``review.queue._claim_once`` does in Python (SQLite keeps that path),
in one round trip instead of a dozen, each step a statement of its own with a fresh snapshot
(READ COMMITTED): lock the reviewer's row (one claim at a time per reviewer); return the live
lease they hold in the dataset, if any; else walk the four passes (the audit side first with
probability ``audit_fraction``, chosen by the caller; skipped items only in the last two),
taking the first candidate with ``FOR UPDATE SKIP LOCKED`` (waiting for a locked one only
when every candidate is locked); under that row lock, expire the image's lapsed leases, write
its review plan on first claim (the same SHA-256 overlap sample as
``review.queue.required_reviews_for``), check the slots and insert the lease. A slot lost to a
concurrent claim raises ``unique_violation``, which ``lease_next`` retries like any other
``IntegrityError``; the partial unique constraints on ``Lease`` stay the last line.
"""

from django.conf import settings
from django.db import migrations

CLAIM_SQL = """
CREATE OR REPLACE FUNCTION review_claim(
    p_dataset bigint, p_reviewer bigint, p_audit_first boolean, p_now timestamptz,
    p_audit_fraction double precision, p_reviews_per_item integer, p_overlap_fraction double precision,
    p_lease_minutes integer
) RETURNS SETOF review_lease LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    found_lease review_lease%%ROWTYPE;
    v_image bigint;
    v_pass integer;
    v_audit boolean;
    v_states text[];
    v_required integer;
    v_submitted integer;
    v_used integer[];
    v_slot integer;
    v_version integer;
    v_digest bytea;
    v_number numeric;
BEGIN
    PERFORM 1 FROM {user_table} WHERE id = p_reviewer FOR UPDATE;  -- one claim at a time per reviewer

    SELECT * INTO found_lease FROM review_lease
     WHERE dataset_id = p_dataset AND reviewer_id = p_reviewer AND state = 'active' AND expires_at > p_now
     ORDER BY id DESC LIMIT 1;
    IF FOUND THEN
        RETURN NEXT found_lease;
        RETURN;
    END IF;

    FOR v_pass IN 0..3 LOOP
        v_audit := CASE WHEN v_pass %% 2 = 0 THEN p_audit_first ELSE NOT p_audit_first END;
        v_states := CASE WHEN v_pass < 2 THEN ARRAY['submitted', 'skipped'] ELSE ARRAY['submitted'] END;
        v_image := review_claim_candidate(p_dataset, p_reviewer, p_now, p_audit_fraction, v_audit, v_states, true);
        IF v_image IS NULL AND review_claim_candidate(p_dataset, p_reviewer, p_now, p_audit_fraction, v_audit, v_states, NULL) IS NOT NULL THEN
            -- Every candidate is locked by a concurrent claim; one with a slot left (K > 1) may
            -- still fit this reviewer, so wait for the first instead of reporting an empty queue.
            v_image := review_claim_candidate(p_dataset, p_reviewer, p_now, p_audit_fraction, v_audit, v_states, false);
        END IF;
        CONTINUE WHEN v_image IS NULL;

        -- The image row is locked: the slot checks of review.queue.free_slot.
        UPDATE review_lease SET state = 'expired', ended_at = p_now
         WHERE image_id = v_image AND state = 'active' AND expires_at <= p_now;
        IF p_reviews_per_item <= 1 OR p_overlap_fraction <= 0 THEN
            v_required := 1;
        ELSE
            v_digest := sha256(convert_to(p_dataset::text || ':' || v_image::text, 'UTF8'));
            v_number := 0;
            FOR i IN 0..7 LOOP
                v_number := v_number * 256 + get_byte(v_digest, i);
            END LOOP;
            v_required := CASE WHEN v_number::float8 / 18446744073709551616::float8 < p_overlap_fraction
                               THEN p_reviews_per_item ELSE 1 END;
        END IF;
        INSERT INTO review_reviewplan (image_id, dataset_id, required_reviews, submitted_reviews, created_at)
        VALUES (v_image, p_dataset, v_required, 0, p_now) ON CONFLICT (image_id) DO NOTHING;
        SELECT required_reviews, submitted_reviews INTO v_required, v_submitted FROM review_reviewplan WHERE image_id = v_image;
        PERFORM 1 FROM review_lease WHERE image_id = v_image AND reviewer_id = p_reviewer AND state = 'submitted';
        IF FOUND THEN
            RAISE unique_violation USING MESSAGE = 'slot taken between selection and lock';
        END IF;
        SELECT coalesce(array_agg(slot), '{{}}') INTO v_used FROM review_lease
         WHERE image_id = v_image AND state = 'active' AND reviewer_id <> p_reviewer;
        IF cardinality(v_used) + v_submitted >= v_required THEN
            RAISE unique_violation USING MESSAGE = 'slot taken between selection and lock';
        END IF;
        SELECT min(s) INTO v_slot FROM generate_series(0, v_required + cardinality(v_used)) AS s WHERE s <> ALL (v_used);
        -- A lease of this reviewer that lapsed on this image is closed before the new one opens.
        UPDATE review_lease SET state = 'expired', ended_at = p_now
         WHERE image_id = v_image AND reviewer_id = p_reviewer AND state = 'active';
        SELECT coalesce(max(version), 0) INTO v_version FROM annotations_annotation WHERE image_id = v_image;
        INSERT INTO review_lease (image_id, dataset_id, reviewer_id, slot, state, version, created_at, expires_at, ended_at)
        VALUES (v_image, p_dataset, p_reviewer, v_slot, 'active', v_version, p_now,
                p_now + make_interval(mins => p_lease_minutes), NULL)
        RETURNING * INTO found_lease;
        RETURN NEXT found_lease;
        RETURN;
    END LOOP;
    RETURN;
END
$$;

-- The first image of one side of the queue this reviewer may be given (review.queue.queue_candidates):
-- in review, not reviewed (nor skipped, unless 'skipped' is left out of p_states) by them, with a
-- free slot; audit side in audit_draw order, the rest lowest priority first. p_skip_locked: true
-- takes it FOR UPDATE SKIP LOCKED, false FOR UPDATE (waits), NULL looks without locking.
CREATE OR REPLACE FUNCTION review_claim_candidate(
    p_dataset bigint, p_reviewer bigint, p_now timestamptz, p_audit_fraction double precision,
    p_audit boolean, p_states text[], p_skip_locked boolean
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_image bigint;
BEGIN
    IF p_audit THEN
        IF p_skip_locked THEN
            SELECT im.id INTO v_image FROM annotations_image im
             WHERE im.dataset_id = p_dataset AND im.status = 'in_review' AND im.audit_draw < p_audit_fraction
               AND review_claim_open(im.id, p_reviewer, p_now, p_states)
             ORDER BY im.audit_draw, im.id LIMIT 1 FOR UPDATE OF im SKIP LOCKED;
        ELSIF NOT p_skip_locked THEN
            SELECT im.id INTO v_image FROM annotations_image im
             WHERE im.dataset_id = p_dataset AND im.status = 'in_review' AND im.audit_draw < p_audit_fraction
               AND review_claim_open(im.id, p_reviewer, p_now, p_states)
             ORDER BY im.audit_draw, im.id LIMIT 1 FOR UPDATE OF im;
        ELSE
            SELECT im.id INTO v_image FROM annotations_image im
             WHERE im.dataset_id = p_dataset AND im.status = 'in_review' AND im.audit_draw < p_audit_fraction
               AND review_claim_open(im.id, p_reviewer, p_now, p_states)
             ORDER BY im.audit_draw, im.id LIMIT 1;
        END IF;
    ELSE
        IF p_skip_locked THEN
            SELECT im.id INTO v_image FROM annotations_image im
             WHERE im.dataset_id = p_dataset AND im.status = 'in_review' AND NOT (im.audit_draw < p_audit_fraction)
               AND review_claim_open(im.id, p_reviewer, p_now, p_states)
             ORDER BY im.priority, im.created_at, im.id LIMIT 1 FOR UPDATE OF im SKIP LOCKED;
        ELSIF NOT p_skip_locked THEN
            SELECT im.id INTO v_image FROM annotations_image im
             WHERE im.dataset_id = p_dataset AND im.status = 'in_review' AND NOT (im.audit_draw < p_audit_fraction)
               AND review_claim_open(im.id, p_reviewer, p_now, p_states)
             ORDER BY im.priority, im.created_at, im.id LIMIT 1 FOR UPDATE OF im;
        ELSE
            SELECT im.id INTO v_image FROM annotations_image im
             WHERE im.dataset_id = p_dataset AND im.status = 'in_review' AND NOT (im.audit_draw < p_audit_fraction)
               AND review_claim_open(im.id, p_reviewer, p_now, p_states)
             ORDER BY im.priority, im.created_at, im.id LIMIT 1;
        END IF;
    END IF;
    RETURN v_image;
END
$$;

-- Whether an image has a slot for this reviewer: not reviewed by them (states p_states), and
-- live leases plus submitted reviews fewer than the required reviews (1 until the plan is written).
CREATE OR REPLACE FUNCTION review_claim_open(p_image bigint, p_reviewer bigint, p_now timestamptz, p_states text[])
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM review_lease m WHERE m.image_id = p_image AND m.reviewer_id = p_reviewer
                                                    AND m.state = ANY (p_states))
       AND coalesce((SELECT rp.required_reviews FROM review_reviewplan rp WHERE rp.image_id = p_image), 1)
           > (SELECT count(*) FROM review_lease l WHERE l.image_id = p_image AND l.state = 'active' AND l.expires_at > p_now)
             + coalesce((SELECT rp.submitted_reviews FROM review_reviewplan rp WHERE rp.image_id = p_image), 0)
$$;
"""

DROP_SQL = """
DROP FUNCTION IF EXISTS review_claim(bigint, bigint, boolean, timestamptz, double precision, integer, double precision, integer);
DROP FUNCTION IF EXISTS review_claim_candidate(bigint, bigint, timestamptz, double precision, boolean, text[], boolean);
DROP FUNCTION IF EXISTS review_claim_open(bigint, bigint, timestamptz, text[]);
"""


def create_functions(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite claims in Python (review.queue._claim_once)
    user_table = apps.get_model(settings.AUTH_USER_MODEL)._meta.db_table
    schema_editor.execute(CLAIM_SQL.format(user_table=schema_editor.quote_name(user_table)))


def drop_functions(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0004_elementdecision_adjudication"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(create_functions, drop_functions)]
