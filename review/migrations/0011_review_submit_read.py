"""``review_submit_read``: the lease with its image, dataset and review plan (``review_submit_lease``)
and the image's answers (``review_submit_sources``, with the other reviews when this may be the
last review of an overlapping item) in one statement, so that a submit reads what it compares in
one round trip instead of two. The first row carries the lease as jsonb text (and no source when
the image has no answer); every other row has none. No row: no such lease.

Reading the answers with the lease, before the reviewer's answer is validated, changes nothing
``review_submit`` relies on: it compares, under the image row lock, the ids of the current answers
and of the submitted reviews with those it was given, and hands any difference to Python.
"""

from django.db import migrations

READ_SQL = """
CREATE OR REPLACE FUNCTION review_submit_read(p_lease bigint)
RETURNS TABLE (lease text, part text, decision text, id bigint, version integer, kind text, author_name text,
               ces_label text, ces_confidence float8, ces_distribution text, rationale text, prompt_version text,
               index integer, key uuid, role text, phrase text, status text, x0 float8, y0 float8, x1 float8, y1 float8,
               box_score float8, mask_counts text, mask_height integer, mask_width integer, mask_score float8)
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
           s.mask_width, s.mask_score
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (
          SELECT row_number() OVER (ORDER BY x.part, x.author_name, x.id, x.index, x.role) AS n, x.*
            FROM review_submit_sources((found->1->>'id')::bigint,
                 coalesce((plan->>'required_reviews')::integer > 1
                          AND (plan->>'submitted_reviews')::integer + 1 >= (plan->>'required_reviews')::integer, false)) x
      ) s ON true
     ORDER BY s.n;
END
$$;
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite reads through the ORM
        schema_editor.execute(READ_SQL)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS review_submit_read(bigint)")


class Migration(migrations.Migration):
    dependencies = [("review", "0010_review_submit_fewer_statements")]

    operations = [migrations.RunPython(create_function, drop_function)]
