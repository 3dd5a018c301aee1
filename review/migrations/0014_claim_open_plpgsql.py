"""``review_claim_open`` (migration ``review.0005``) in PL/pgSQL instead of SQL: the same test, the
same answers.

A SQL function the planner cannot inline (this one has sub-selects) is parsed and planned again on
every statement that calls it: every claim's candidate statement parsed and planned its four
sub-selects afresh. In PL/pgSQL its statement is prepared once per connection and its plan kept.
A candidate statement that finds the first image open costs its PostgreSQL backend about 125 µs
instead of 375 µs (the review bench's database, 3,000 calls of each alternated in one session).
Migration ``review.0015`` takes this back (a kept generic plan did not follow the lease table).
"""

import importlib

from django.db import migrations

OPEN_SQL = """
CREATE OR REPLACE FUNCTION review_claim_open(p_image bigint, p_reviewer bigint, p_now timestamptz, p_states text[])
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN NOT EXISTS (SELECT 1 FROM review_lease m WHERE m.image_id = p_image AND m.reviewer_id = p_reviewer
                                                     AND m.state = ANY (p_states))
       AND coalesce((SELECT rp.required_reviews FROM review_reviewplan rp WHERE rp.image_id = p_image), 1)
           > (SELECT count(*) FROM review_lease l WHERE l.image_id = p_image AND l.state = 'active' AND l.expires_at > p_now)
             + coalesce((SELECT rp.submitted_reviews FROM review_reviewplan rp WHERE rp.image_id = p_image), 0);
END
$$;
"""


def _previous_sql() -> str:
    claim_sql = importlib.import_module("review.migrations.0005_review_claim_function").CLAIM_SQL
    return claim_sql[claim_sql.index("CREATE OR REPLACE FUNCTION review_claim_open"):]


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite claims in Python (review.queue._claim_once)
        schema_editor.execute(OPEN_SQL)


def restore_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_previous_sql())


class Migration(migrations.Migration):
    dependencies = [("review", "0013_review_submit_read_flat")]

    operations = [migrations.RunPython(create_function, restore_function)]
