"""``review_submit_read`` also gives the stored embeddings of the phrases it is handed, so that a
submit whose phrases are among them (the reviewer's answer's, and those its element decisions
replaced) needs no statement of its own to look them up.

``review_submit_read(p_lease, p_model, p_hashes)`` returns what ``review.0011``'s one-argument
function returned (the lease as jsonb on the first row, the image's answers on every row), then
one row per found embedding: ``part`` is ``'v'`` and the two new columns hold the phrase's
``text_hash`` and ``vector``. Phrases it was not handed are looked up by ``review.submit_postgres``
as before.
"""

from django.db import migrations

COLUMNS = """lease text, part text, decision text, id bigint, version integer, kind text, author_name text,
               ces_label text, ces_confidence float8, ces_distribution text, rationale text, prompt_version text,
               index integer, key uuid, role text, phrase text, status text, x0 float8, y0 float8, x1 float8, y1 float8,
               box_score float8, mask_counts text, mask_height integer, mask_width integer, mask_score float8"""

READ_SQL = f"""
CREATE OR REPLACE FUNCTION review_submit_read(p_lease bigint, p_model text, p_hashes text[])
RETURNS TABLE ({COLUMNS}, text_hash text, vector bytea)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    found jsonb := review_submit_lease(p_lease);
    plan jsonb;
BEGIN
    IF found IS NULL THEN
        RETURN;
    END IF;
    plan := nullif(found->3, 'null'::jsonb);
    RETURN QUERY
    SELECT CASE WHEN s.n IS NULL OR s.n = 1 THEN found::text END, s.part, s.decision, s.id, s.version, s.kind,
           s.author_name, s.ces_label, s.ces_confidence, s.ces_distribution, s.rationale, s.prompt_version, s.index,
           s.key, s.role, s.phrase, s.status, s.x0, s.y0, s.x1, s.y1, s.box_score, s.mask_counts, s.mask_height,
           s.mask_width, s.mask_score, NULL::text, NULL::bytea
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (
          SELECT row_number() OVER (ORDER BY x.part, x.author_name, x.id, x.index, x.role) AS n, x.*
            FROM review_submit_sources((found->1->>'id')::bigint,
                 coalesce((plan->>'required_reviews')::integer > 1
                          AND (plan->>'submitted_reviews')::integer + 1 >= (plan->>'required_reviews')::integer, false)) x
      ) s ON true
     ORDER BY s.n;
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
    import importlib

    return importlib.import_module("review.migrations.0011_review_submit_read").READ_SQL


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite reads through the ORM
        schema_editor.execute(READ_SQL)
        schema_editor.execute("DROP FUNCTION IF EXISTS review_submit_read(bigint)")


def restore_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous_sql())
        schema_editor.execute("DROP FUNCTION IF EXISTS review_submit_read(bigint, text, text[])")


class Migration(migrations.Migration):
    dependencies = [("review", "0011_review_submit_read")]

    operations = [migrations.RunPython(create_function, restore_function)]
