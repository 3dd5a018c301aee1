"""``emoverse_token_user``: the token, its user and the user's roles, read by
``annotations.tokens.token_with_user`` before every API call on PostgreSQL.

The same join as the plain statement (``annotations.tokens._token_user_sql``), inside a PL/pgSQL
function so that PostgreSQL keeps its plan per connection (planning the four-table join cost
several times what running it does; the web process's client-side cursors prepare nothing, and
nothing prepared by a client would survive PgBouncer's transaction pooling). One row per token
with the rows of ``authtoken_token`` and ``auth_user`` whole and the user's roles among
``p_roles`` as an array; no row for an unknown key.
"""

from django.db import migrations

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION emoverse_token_user(p_key text, p_roles text[])
RETURNS TABLE(token authtoken_token, account auth_user, roles text[])
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT t, u, ARRAY(SELECT g.name::text FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id
                       WHERE ug.user_id = u.id AND g.name::text = ANY(p_roles))
    FROM authtoken_token t JOIN auth_user u ON u.id = t.user_id
    WHERE t.key = p_key;
END
$$;
"""
DROP_SQL = "DROP FUNCTION IF EXISTS emoverse_token_user(text, text[]);"


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite runs the plain statement
        schema_editor.execute(FUNCTION_SQL)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0010_dataset_taxonomy"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_function, drop_function)]
