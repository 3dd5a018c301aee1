"""``review_submit``: the writes of ``review.services.review_submit`` on PostgreSQL, one statement.

Python validates the answer, reads the model answers and computes the disagreement rows with
no transaction open (``review.submit_postgres``); this function then, under the image row
lock and the lease row lock, checks what ``review.services._review_write`` checks (the lease is
the reviewer's, active and live; the image is in review; no version other than submitted
reviews appeared since ``expected_version``; the model answers and, for the last review of an
overlapping item, the other reviews are still those Python read) and writes the version, its
triplets and elements, the lease, the submission, the element decisions, the disagreement
rows, the plan, the draft and the image status. It runs in autocommit: one statement, atomic
by itself, each step with a fresh snapshot (READ COMMITTED).

When a check fails it raises SQLSTATE ``RS409`` and writes nothing; Python then runs the
same submit on its own path (``_review_write``), which raises the exact error of today
(already submitted, lease lost, taken, newer lease, not in review, version conflict) or, for a
lapsed lease whose slot is still free, takes it up again and submits. SQLite always takes
that path.

``review_submit_lease`` (the lease with its image, dataset and review plan, as one jsonb) and
``review_submit_sources`` (the read of step 1) are PL/pgSQL functions only so that their plans are
kept per connection: planned anew on every request, their joins cost ten times more to plan than
to run.
"""

from django.db import migrations

SUBMIT_SQL = """
CREATE OR REPLACE FUNCTION review_submit(
    p_lease bigint, p_image bigint, p_reviewer bigint, p_now timestamptz, p_expected integer,
    p_answer_ids bigint[], p_review_ids bigint[], p_disagree boolean, p_doc jsonb
) RETURNS TABLE (annotation_id bigint, version integer, image_status text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_status text;
    v_lease review_lease%%ROWTYPE;
    v_latest integer;
    v_required integer;
    v_submitted integer;
    v_annotation bigint;
    v_submission bigint;
    v_author text := p_doc->>'author_name';
    v_decision text := p_doc->>'decision';
BEGIN
    SELECT im.status INTO v_status FROM annotations_image im WHERE im.id = p_image FOR UPDATE;
    IF NOT FOUND OR v_status <> 'in_review' THEN
        RAISE EXCEPTION 'review_submit: the image is not in review' USING ERRCODE = 'RS409';
    END IF;
    SELECT * INTO v_lease FROM review_lease l WHERE l.id = p_lease FOR UPDATE;
    IF NOT FOUND OR v_lease.reviewer_id <> p_reviewer OR v_lease.image_id <> p_image
       OR v_lease.state <> 'active' OR v_lease.expires_at <= p_now THEN
        RAISE EXCEPTION 'review_submit: the lease is not live' USING ERRCODE = 'RS409';
    END IF;
    -- Versions since expected_version, other than submitted reviews (review.services.check_version).
    SELECT max(a.version) INTO v_latest FROM annotations_annotation a WHERE a.image_id = p_image;
    IF p_expected > coalesce(v_latest, 0) OR EXISTS (
        SELECT 1 FROM annotations_annotation a
         WHERE a.image_id = p_image AND a.version > p_expected
           AND NOT EXISTS (SELECT 1 FROM review_reviewsubmission s WHERE s.annotation_id = a.id)) THEN
        RAISE EXCEPTION 'review_submit: version conflict' USING ERRCODE = 'RS409';
    END IF;
    IF (SELECT coalesce(array_agg(a.id ORDER BY a.id), '{}') FROM annotations_annotation a
         WHERE a.image_id = p_image AND a.is_current AND a.kind IN ('model', 'import')) IS DISTINCT FROM p_answer_ids THEN
        RAISE EXCEPTION 'review_submit: the model answers changed' USING ERRCODE = 'RS409';
    END IF;
    SELECT rp.required_reviews, rp.submitted_reviews INTO v_required, v_submitted
      FROM review_reviewplan rp WHERE rp.image_id = p_image;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'review_submit: no review plan' USING ERRCODE = 'RS409';
    END IF;
    IF v_required > 1 AND v_submitted + 1 >= v_required AND (p_review_ids IS NULL OR
       (SELECT coalesce(array_agg(s.annotation_id ORDER BY s.annotation_id), '{}') FROM review_reviewsubmission s
         WHERE s.image_id = p_image) IS DISTINCT FROM p_review_ids) THEN
        RAISE EXCEPTION 'review_submit: the other reviews are not those compared' USING ERRCODE = 'RS409';
    END IF;

    UPDATE annotations_annotation a SET is_current = false
     WHERE a.image_id = p_image AND a.kind = 'human' AND a.author_name = v_author AND a.is_current;
    INSERT INTO annotations_annotation (image_id, version, parent_id, kind, author_name, author_user_id, is_current,
        decision, decision_reason, ces_label, ces_confidence, ces_distribution, ces_raw_distribution, des, rationale,
        prompt_version, pipeline_version, raw_output, critic, extra, import_run_id, created_at)
    VALUES (p_image, coalesce(v_latest, 0) + 1, (p_doc->>'parent_id')::bigint, 'human', v_author, p_reviewer, true,
        v_decision, p_doc->>'decision_reason', p_doc->>'ces_label', (p_doc->>'ces_confidence')::float8,
        nullif(p_doc->'ces_distribution', 'null'::jsonb), NULL, decode(p_doc->>'des', 'hex'), p_doc->>'rationale',
        '', '', '', NULL, p_doc->'extra', NULL, p_now)
    RETURNING id INTO v_annotation;
    WITH t AS (
        INSERT INTO annotations_triplet (annotation_id, index, key)
        SELECT v_annotation, x.index, x.key FROM jsonb_to_recordset(p_doc->'triplets') AS x(index integer, key uuid)
        RETURNING id, index
    )
    INSERT INTO annotations_element (triplet_id, role, phrase, status, x0, y0, x1, y1, box_score, mask_counts,
                                     mask_height, mask_width, mask_score)
    SELECT t.id, e.role, e.phrase, e.status, e.x0, e.y0, e.x1, e.y1, e.box_score, e.mask_counts, e.mask_height,
           e.mask_width, e.mask_score
      FROM jsonb_to_recordset(p_doc->'elements') AS e(t integer, role text, phrase text, status text, x0 float8,
           y0 float8, x1 float8, y1 float8, box_score float8, mask_counts text, mask_height integer,
           mask_width integer, mask_score float8)
      JOIN t ON t.index = e.t;
    UPDATE review_lease l SET state = 'submitted', ended_at = p_now WHERE l.id = p_lease;
    INSERT INTO review_reviewsubmission (lease_id, image_id, dataset_id, reviewer_id, annotation_id, decision,
                                         time_spent_ms, created_at)
    VALUES (p_lease, p_image, v_lease.dataset_id, p_reviewer, v_annotation, v_decision,
            (p_doc->>'time_spent_ms')::integer, p_now)
    RETURNING id INTO v_submission;
    INSERT INTO review_elementdecision (submission_id, kind, image_id, reviewer_id, annotation_id, triplet_key, role,
                                        action, before, after, time_ms, created_at)
    SELECT v_submission, 'review', p_image, p_reviewer, v_annotation, d.triplet_key, d.role, d.action,
           nullif(d.before, 'null'::jsonb), nullif(d.after, 'null'::jsonb), d.time_ms, p_now
      FROM jsonb_to_recordset(p_doc->'decisions') AS d(triplet_key uuid, role text, action text, before jsonb,
           after jsonb, time_ms integer);
    INSERT INTO review_disagreement (image_id, dataset_id, model_name, model_annotation_id, field, triplet_key, role,
        model_value, model_confidence, human_value, box_iou, mask_iou, paired_by, reviewer_id, annotation_id, kind,
        created_at)
    SELECT p_image, v_lease.dataset_id, r.model_name, r.model_annotation_id, r.field, r.triplet_key, r.role,
           nullif(r.model_value, 'null'::jsonb), r.model_confidence, nullif(r.human_value, 'null'::jsonb), r.box_iou,
           r.mask_iou, r.paired_by, p_reviewer, v_annotation, 'review', p_now
      FROM jsonb_to_recordset(p_doc->'disagreements') AS r(model_name text, model_annotation_id bigint,
           field text, triplet_key uuid, role text, model_value jsonb, model_confidence float8, human_value jsonb,
           box_iou float8, mask_iou float8, paired_by text);
    UPDATE review_reviewplan rp SET submitted_reviews = rp.submitted_reviews + 1 WHERE rp.image_id = p_image
    RETURNING rp.required_reviews, rp.submitted_reviews INTO v_required, v_submitted;
    DELETE FROM review_draft dr WHERE dr.image_id = p_image AND dr.reviewer_id = p_reviewer;
    IF v_submitted >= v_required THEN
        IF v_required > 1 AND p_disagree THEN
            v_status := 'adjudication';
            UPDATE annotations_image im SET status = v_status, updated_at = p_now WHERE im.id = p_image;
        ELSE
            v_status := v_decision;
            UPDATE annotations_image im SET status = v_status, updated_at = p_now,
                   label = coalesce(nullif(p_doc->>'label', ''), im.label)
             WHERE im.id = p_image;
        END IF;
    END IF;
    RETURN QUERY SELECT v_annotation, coalesce(v_latest, 0) + 1, v_status;
END
$$;
"""

SOURCES_SQL = """
CREATE OR REPLACE FUNCTION review_submit_sources(p_image bigint, p_reviews boolean)
RETURNS TABLE (part text, decision text, id bigint, version integer, kind text, author_name text, ces_label text,
               ces_confidence float8, ces_distribution text, rationale text, prompt_version text, index integer,
               key uuid, role text, phrase text, status text, x0 float8, y0 float8, x1 float8, y1 float8,
               box_score float8, mask_counts text, mask_height integer, mask_width integer, mask_score float8)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT 'a'::text, NULL::text, a.id, a.version::integer, a.kind::text, a.author_name::text, a.ces_label::text,
           a.ces_confidence, a.ces_distribution::text, a.rationale, a.prompt_version::text, t.index::integer, t.key,
           e.role::text, e.phrase::text, e.status::text, e.x0, e.y0, e.x1, e.y1, e.box_score, e.mask_counts,
           e.mask_height::integer, e.mask_width::integer, e.mask_score
      FROM annotations_annotation a
      LEFT JOIN annotations_triplet t ON t.annotation_id = a.id
      LEFT JOIN annotations_element e ON e.triplet_id = t.id
     WHERE a.image_id = p_image AND a.is_current AND a.kind IN ('model', 'import');
    IF p_reviews THEN
        RETURN QUERY
        SELECT 'r'::text, s.decision::text, a.id, a.version::integer, a.kind::text, a.author_name::text,
               a.ces_label::text, a.ces_confidence, a.ces_distribution::text, a.rationale, a.prompt_version::text,
               t.index::integer, t.key, e.role::text, e.phrase::text, e.status::text, e.x0, e.y0, e.x1, e.y1,
               e.box_score, e.mask_counts, e.mask_height::integer, e.mask_width::integer, e.mask_score
          FROM review_reviewsubmission s
          JOIN annotations_annotation a ON a.id = s.annotation_id
          LEFT JOIN annotations_triplet t ON t.annotation_id = a.id
          LEFT JOIN annotations_element e ON e.triplet_id = t.id
         WHERE s.image_id = p_image;
    END IF;
END
$$;
"""

LEASE_SQL = """
CREATE OR REPLACE FUNCTION review_submit_lease(p_lease bigint) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    found jsonb;
BEGIN
    SELECT jsonb_build_array(to_jsonb(l), to_jsonb(i), to_jsonb(d), to_jsonb(p)) INTO found
      FROM review_lease l
      JOIN annotations_image i ON i.id = l.image_id
      JOIN annotations_dataset d ON d.id = i.dataset_id
      LEFT JOIN review_reviewplan p ON p.image_id = i.id
     WHERE l.id = p_lease;
    RETURN found;
END
$$;
"""

DROP_SQL = """
DROP FUNCTION IF EXISTS review_submit(bigint, bigint, bigint, timestamptz, integer, bigint[], bigint[], boolean, jsonb);
DROP FUNCTION IF EXISTS review_submit_sources(bigint, boolean);
DROP FUNCTION IF EXISTS review_submit_lease(bigint);
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite submits in Python (review.services._review_write)
        schema_editor.execute(SUBMIT_SQL)
        schema_editor.execute(SOURCES_SQL)
        schema_editor.execute(LEASE_SQL)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [("review", "0006_review_next_function")]

    operations = [migrations.RunPython(create_function, drop_function)]
