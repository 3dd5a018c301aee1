"""``review_claim_open`` back in SQL, as migration ``review.0005`` wrote it (``review.0014`` had moved
it to PL/pgSQL).

PL/pgSQL prepares the function's statement once per connection and keeps a generic plan, chosen on
whatever statistics the lease table had then. On statistics taken while the table was nearly empty
(a new database, autovacuum not yet run) that plan was a bitmap AND with the reviewer's lease index,
or a sequential scan, and every claim then read all of the reviewer's leases, or the whole table,
for every image it checked: with 8 reviewers at 219K images (``bench/review_api.py``, 2026-12-07
01:55) ``next`` cost the database 8.8 ms instead of 4.0. A SQL function that the planner cannot
inline is planned again on each statement that calls it, with the table as it is now: about 250 µs
of the database's CPU per claim on the review bench, which buys plans that follow the data
(``tests/review/test_claim_open_generic_plan.py``).
"""

from django.db import migrations


def _sql_function() -> str:
    from importlib import import_module

    return import_module("review.migrations.0014_claim_open_plpgsql")._previous_sql()


def _plpgsql_function() -> str:
    from importlib import import_module

    return import_module("review.migrations.0014_claim_open_plpgsql").OPEN_SQL


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # SQLite claims in Python (review.queue._claim_once)
        schema_editor.execute(_sql_function())


def restore_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_plpgsql_function())


class Migration(migrations.Migration):
    dependencies = [("review", "0014_claim_open_plpgsql")]

    operations = [migrations.RunPython(create_function, restore_function)]
