"""``review_submit_read`` (migration ``review.0012``) without the functions it called: the lease
row's statement is its own first statement and the answers' (and the other reviews') queries its
own ``RETURN QUERY`` statements, each ordered as ``review_submit_sources`` rows were read, instead of
calls of ``review_submit_lease`` and ``review_submit_sources`` (PL/pgSQL functions each) and a
window over their rows. The same rows in the same order, except that the lease now has a first
row of its own (``part`` empty), which ``review.submit_postgres.lease_read`` reads as before.

A call costs its PostgreSQL backend about 195 µs instead of 230 µs (500 leases of the review
bench, a tight loop, six rounds each). ``review_submit_sources`` stays (the submit's fallback read
uses it); ``review_submit_lease``, which nothing else called, is dropped.
"""

import importlib

from django.db import migrations

COLUMNS = importlib.import_module("review.migrations.0012_review_submit_read_phrases").COLUMNS

READ_SQL = f"""
CREATE OR REPLACE FUNCTION review_submit_read(p_lease bigint, p_model text, p_hashes text[])
RETURNS TABLE ({COLUMNS}, text_hash text, vector bytea)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_lease jsonb;
    v_image bigint;
    v_required integer;
    v_submitted integer;
BEGIN
    SELECT jsonb_build_array(to_jsonb(l), to_jsonb(i), to_jsonb(d), to_jsonb(p)), i.id, p.required_reviews, p.submitted_reviews
      INTO v_lease, v_image, v_required, v_submitted
      FROM review_lease l
      JOIN annotations_image i ON i.id = l.image_id
      JOIN annotations_dataset d ON d.id = i.dataset_id
      LEFT JOIN review_reviewplan p ON p.image_id = i.id
     WHERE l.id = p_lease;
    IF v_lease IS NULL THEN
        RETURN;
    END IF;
    lease := v_lease::text;
    RETURN NEXT;
    RETURN QUERY
    SELECT NULL::text, 'a'::text, NULL::text, a.id, a.version::integer, a.kind::text, a.author_name::text, a.ces_label::text,
           a.ces_confidence, a.ces_distribution::text, a.rationale, a.prompt_version::text, t.index::integer, t.key,
           e.role::text, e.phrase::text, e.status::text, e.x0, e.y0, e.x1, e.y1, e.box_score, e.mask_counts,
           e.mask_height::integer, e.mask_width::integer, e.mask_score, NULL::text, NULL::bytea
      FROM annotations_annotation a
      LEFT JOIN annotations_triplet t ON t.annotation_id = a.id
      LEFT JOIN annotations_element e ON e.triplet_id = t.id
     WHERE a.image_id = v_image AND a.is_current AND a.kind IN ('model', 'import')
     ORDER BY a.author_name, a.id, t.index, e.role;
    IF v_required > 1 AND v_submitted + 1 >= v_required THEN
        RETURN QUERY
        SELECT NULL::text, 'r'::text, s.decision::text, a.id, a.version::integer, a.kind::text, a.author_name::text,
               a.ces_label::text, a.ces_confidence, a.ces_distribution::text, a.rationale, a.prompt_version::text,
               t.index::integer, t.key, e.role::text, e.phrase::text, e.status::text, e.x0, e.y0, e.x1, e.y1,
               e.box_score, e.mask_counts, e.mask_height::integer, e.mask_width::integer, e.mask_score, NULL::text, NULL::bytea
          FROM review_reviewsubmission s
          JOIN annotations_annotation a ON a.id = s.annotation_id
          LEFT JOIN annotations_triplet t ON t.annotation_id = a.id
          LEFT JOIN annotations_element e ON e.triplet_id = t.id
         WHERE s.image_id = v_image
         ORDER BY a.author_name, a.id, t.index, e.role;
    END IF;
    IF cardinality(p_hashes) > 0 THEN
        RETURN QUERY
        SELECT NULL::text, 'v'::text, NULL::text, NULL::bigint, NULL::integer, NULL::text, NULL::text, NULL::text,
               NULL::float8, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::uuid, NULL::text, NULL::text,
               NULL::text, NULL::float8, NULL::float8, NULL::float8, NULL::float8, NULL::float8, NULL::text,
               NULL::integer, NULL::integer, NULL::float8, pe.text_hash::text, pe.vector
          FROM annotations_phraseembedding pe
         WHERE pe.model_name = p_model AND pe.text_hash = ANY(p_hashes);
    END IF;
END
$$;
"""


def _previous_sql() -> str:
    return importlib.import_module("review.migrations.0012_review_submit_read_phrases").READ_SQL


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite reads through the ORM
        schema_editor.execute(READ_SQL)
        schema_editor.execute("DROP FUNCTION IF EXISTS review_submit_lease(bigint)")


def restore_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(importlib.import_module("review.migrations.0007_review_submit_function").LEASE_SQL)
        schema_editor.execute(_previous_sql())


class Migration(migrations.Migration):
    dependencies = [("review", "0012_review_submit_read_phrases")]

    operations = [migrations.RunPython(create_function, restore_function)]
