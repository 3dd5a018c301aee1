"""Every SQL-language function of ours is one the planner inlines into the statement that calls
it. One it cannot inline (a sub-select, a set-returning body, ...) is parsed and planned again on
every statement that calls it, cached plan or not: ``review_claim_open`` did this on every claim
(about 250 µs of the database's CPU per ``next`` on the review bench) until migration
``review.0014`` moved it to PL/pgSQL, whose statements are prepared once per connection."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

SQL_FUNCTIONS = """
SELECT p.proname, p.proargtypes::regtype[]::text[]
  FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
 WHERE p.pronamespace = 'public'::regnamespace AND l.lanname = 'sql' AND p.prokind = 'f' AND NOT p.proretset
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1
"""


def plan_of_a_call(cursor, name: str, types: list[str]) -> str:
    """EXPLAIN VERBOSE of a call on the columns of a materialised row (no constant to fold)."""
    columns = ", ".join(f"NULL::{t} AS a{i}" for i, t in enumerate(types))
    args = ", ".join(f"x.a{i}" for i in range(len(types)))
    cursor.execute(f"EXPLAIN (VERBOSE, COSTS OFF) WITH x AS MATERIALIZED (SELECT {columns or '1 AS a'}) "
                   f"SELECT {connection.ops.quote_name(name)}({args}) FROM x")
    return "\n".join(row[0] for row in cursor.fetchall())


def test_every_sql_function_of_ours_is_inlined_where_it_is_called(on_postgres):
    with connection.cursor() as cursor:
        cursor.execute(SQL_FUNCTIONS)
        functions = cursor.fetchall()
        assert "review_iso_datetime" in {name for name, _ in functions}  # the check below sees our functions
        not_inlined = {name: plan for name, types in functions
                       if f"{name}(" in (plan := plan_of_a_call(cursor, name, types))}
    assert not_inlined == {}

