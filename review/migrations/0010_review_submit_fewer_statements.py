"""``review_submit`` (migration ``review.0007``) in four statements instead of seventeen, and its
reviewer's earlier version found through the image.

Same checks, same writes, same SQLSTATE ``RS409`` for every case it hands to Python:

1. the image row lock and its status (as before);
2. the lease row lock, read with the image's review plan (one statement);
3. one scan of the image's versions gives the latest version, whether a version other than a
   submitted review is newer than ``expected_version``, the current model and import answers and
   the reviewer's own current version; the other reviews are compared (as before) only for the
   last review of an overlapping item;
4. the reviewer's earlier version, if any, stops being current (by primary key);
5. one statement writes the version, its triplets and elements, the lease, the submission, the
   element decisions, the disagreement rows, the plan, the draft and the image status.

Statement 3 replaces an ``UPDATE … WHERE image_id = … AND kind = 'human' AND author_name = …``
that the planner, on statistics taken before any review (autovacuum off, or not yet run after an
import), served from ``annotation_author_idx``: every submit then read all the reviewer's earlier
versions (306 buffers for a reviewer with 300 of them). Each statement of a PL/pgSQL function
costs an executor start and end and a plan-cache check: the writes as one statement of
data-modifying CTEs (each runs exactly once, to completion) spare thirteen of them.

The reviewer's earlier version is updated before the new one is inserted, in its own statement:
the partial unique index ``annotation_one_current_per_author`` would refuse the new current row
if the two ran in one statement.
"""

from __future__ import annotations

import importlib

from django.db import migrations

SUBMIT_SQL = """
CREATE OR REPLACE FUNCTION review_submit(
    p_lease bigint, p_image bigint, p_reviewer bigint, p_now timestamptz, p_expected integer,
    p_answer_ids bigint[], p_review_ids bigint[], p_disagree boolean, p_doc jsonb
) RETURNS TABLE (annotation_id bigint, version integer, image_status text) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_status text;
    v_resolved text;
    v_dataset bigint;
    v_lease_reviewer bigint;
    v_lease_image bigint;
    v_state text;
    v_expires timestamptz;
    v_required integer;
    v_submitted integer;
    v_latest integer;
    v_newer boolean;
    v_answers bigint[];
    v_previous bigint;
    v_annotation bigint;
    v_author text := p_doc->>'author_name';
    v_decision text := p_doc->>'decision';
BEGIN
    SELECT im.status INTO v_status FROM annotations_image im WHERE im.id = p_image FOR UPDATE;
    IF NOT FOUND OR v_status <> 'in_review' THEN
        RAISE EXCEPTION 'review_submit: the image is not in review' USING ERRCODE = 'RS409';
    END IF;
    SELECT l.dataset_id, l.reviewer_id, l.image_id, l.state, l.expires_at, rp.required_reviews, rp.submitted_reviews
      INTO v_dataset, v_lease_reviewer, v_lease_image, v_state, v_expires, v_required, v_submitted
      FROM review_lease l LEFT JOIN review_reviewplan rp ON rp.image_id = p_image
     WHERE l.id = p_lease FOR UPDATE OF l;
    IF NOT FOUND OR v_lease_reviewer <> p_reviewer OR v_lease_image <> p_image
       OR v_state <> 'active' OR v_expires <= p_now THEN
        RAISE EXCEPTION 'review_submit: the lease is not live' USING ERRCODE = 'RS409';
    END IF;
    IF v_required IS NULL THEN
        RAISE EXCEPTION 'review_submit: no review plan' USING ERRCODE = 'RS409';
    END IF;
    -- The image's versions: the latest; any newer than expected_version that is not a submitted
    -- review (review.services.check_version); the current model and import answers; the
    -- reviewer's own current version.
    SELECT max(a.version), bool_or(a.version > p_expected AND s.id IS NULL),
           coalesce(array_agg(a.id ORDER BY a.id) FILTER (WHERE a.is_current AND a.kind IN ('model', 'import')), '{}'),
           max(a.id) FILTER (WHERE a.is_current AND a.kind = 'human' AND a.author_name = v_author)
      INTO v_latest, v_newer, v_answers, v_previous
      FROM annotations_annotation a LEFT JOIN review_reviewsubmission s ON s.annotation_id = a.id
     WHERE a.image_id = p_image;
    IF p_expected > coalesce(v_latest, 0) OR coalesce(v_newer, false) THEN
        RAISE EXCEPTION 'review_submit: version conflict' USING ERRCODE = 'RS409';
    END IF;
    IF v_answers IS DISTINCT FROM p_answer_ids THEN
        RAISE EXCEPTION 'review_submit: the model answers changed' USING ERRCODE = 'RS409';
    END IF;
    IF v_required > 1 AND v_submitted + 1 >= v_required AND (p_review_ids IS NULL OR
       (SELECT coalesce(array_agg(s.annotation_id ORDER BY s.annotation_id), '{}') FROM review_reviewsubmission s
         WHERE s.image_id = p_image) IS DISTINCT FROM p_review_ids) THEN
        RAISE EXCEPTION 'review_submit: the other reviews are not those compared' USING ERRCODE = 'RS409';
    END IF;

    IF v_previous IS NOT NULL THEN
        UPDATE annotations_annotation a SET is_current = false WHERE a.id = v_previous;
    END IF;
    WITH ann AS (
        INSERT INTO annotations_annotation AS a (image_id, version, parent_id, kind, author_name, author_user_id,
            is_current, decision, decision_reason, ces_label, ces_confidence, ces_distribution, ces_raw_distribution,
            des, rationale, prompt_version, pipeline_version, raw_output, critic, extra, import_run_id, created_at)
        VALUES (p_image, coalesce(v_latest, 0) + 1, (p_doc->>'parent_id')::bigint, 'human', v_author, p_reviewer, true,
            v_decision, p_doc->>'decision_reason', p_doc->>'ces_label', (p_doc->>'ces_confidence')::float8,
            nullif(p_doc->'ces_distribution', 'null'::jsonb), NULL, decode(p_doc->>'des', 'hex'), p_doc->>'rationale',
            '', '', '', NULL, p_doc->'extra', NULL, p_now)
        RETURNING a.id
    ), t AS (
        INSERT INTO annotations_triplet AS tr (annotation_id, index, key)
        SELECT ann.id, x.index, x.key FROM ann, jsonb_to_recordset(p_doc->'triplets') AS x(index integer, key uuid)
        RETURNING tr.id, tr.index
    ), el AS (
        INSERT INTO annotations_element (triplet_id, role, phrase, status, x0, y0, x1, y1, box_score, mask_counts,
                                         mask_height, mask_width, mask_score)
        SELECT t.id, e.role, e.phrase, e.status, e.x0, e.y0, e.x1, e.y1, e.box_score, e.mask_counts, e.mask_height,
               e.mask_width, e.mask_score
          FROM jsonb_to_recordset(p_doc->'elements') AS e(t integer, role text, phrase text, status text, x0 float8,
               y0 float8, x1 float8, y1 float8, box_score float8, mask_counts text, mask_height integer,
               mask_width integer, mask_score float8)
          JOIN t ON t.index = e.t
    ), le AS (
        UPDATE review_lease l SET state = 'submitted', ended_at = p_now WHERE l.id = p_lease
    ), sub AS (
        INSERT INTO review_reviewsubmission AS s (lease_id, image_id, dataset_id, reviewer_id, annotation_id, decision,
                                                  time_spent_ms, created_at)
        SELECT p_lease, p_image, v_dataset, p_reviewer, ann.id, v_decision, (p_doc->>'time_spent_ms')::integer, p_now
          FROM ann
        RETURNING s.id, s.annotation_id
    ), decs AS (
        INSERT INTO review_elementdecision (submission_id, kind, image_id, reviewer_id, annotation_id, triplet_key, role,
                                            action, before, after, time_ms, created_at)
        SELECT sub.id, 'review', p_image, p_reviewer, sub.annotation_id, d.triplet_key, d.role, d.action,
               nullif(d.before, 'null'::jsonb), nullif(d.after, 'null'::jsonb), d.time_ms, p_now
          FROM sub, jsonb_to_recordset(p_doc->'decisions') AS d(triplet_key uuid, role text, action text, before jsonb,
               after jsonb, time_ms integer)
    ), dis AS (
        INSERT INTO review_disagreement (image_id, dataset_id, model_name, model_annotation_id, field, triplet_key, role,
            model_value, model_confidence, human_value, box_iou, mask_iou, paired_by, reviewer_id, annotation_id, kind,
            created_at)
        SELECT p_image, v_dataset, r.model_name, r.model_annotation_id, r.field, r.triplet_key, r.role,
               nullif(r.model_value, 'null'::jsonb), r.model_confidence, nullif(r.human_value, 'null'::jsonb), r.box_iou,
               r.mask_iou, r.paired_by, p_reviewer, ann.id, 'review', p_now
          FROM ann, jsonb_to_recordset(p_doc->'disagreements') AS r(model_name text, model_annotation_id bigint,
               field text, triplet_key uuid, role text, model_value jsonb, model_confidence float8, human_value jsonb,
               box_iou float8, mask_iou float8, paired_by text)
    ), dr AS (
        DELETE FROM review_draft dr WHERE dr.image_id = p_image AND dr.reviewer_id = p_reviewer
    ), plan AS (
        UPDATE review_reviewplan rp SET submitted_reviews = rp.submitted_reviews + 1 WHERE rp.image_id = p_image
        RETURNING rp.required_reviews, rp.submitted_reviews
    ), img AS (
        UPDATE annotations_image im
           SET status = CASE WHEN plan.required_reviews > 1 AND p_disagree THEN 'adjudication' ELSE v_decision END,
               updated_at = p_now,
               label = CASE WHEN plan.required_reviews > 1 AND p_disagree THEN im.label
                            ELSE coalesce(nullif(p_doc->>'label', ''), im.label) END
          FROM plan
         WHERE im.id = p_image AND plan.submitted_reviews >= plan.required_reviews
        RETURNING im.status
    )
    SELECT ann.id, (SELECT img.status FROM img) INTO v_annotation, v_resolved FROM ann;
    annotation_id := v_annotation;
    version := coalesce(v_latest, 0) + 1;
    image_status := coalesce(v_resolved, v_status);
    RETURN NEXT;
END
$$;
"""


def _previous_sql() -> str:
    return importlib.import_module("review.migrations.0007_review_submit_function").SUBMIT_SQL


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite submits in Python (review.services._review_write)
        schema_editor.execute(SUBMIT_SQL)


def restore_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous_sql())


class Migration(migrations.Migration):
    dependencies = [("review", "0009_review_no_duplicate_fk_indexes")]

    operations = [migrations.RunPython(create_function, restore_function)]
