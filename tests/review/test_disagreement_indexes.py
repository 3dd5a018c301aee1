"""``review_disagreement`` gets a row per difference on every submit, and each row updates every
index of the table: no index there may repeat another, and each foreign key still leads one (the
deletes that cascade or are protected look rows up by it)."""

from __future__ import annotations

import pytest
from django.db import connection

from review.models import Disagreement

pytestmark = pytest.mark.django_db


def _indexes() -> dict[str, tuple[str, ...]]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, Disagreement._meta.db_table)
    return {name: tuple(c["columns"]) for name, c in found.items() if c["index"] and not c["primary_key"]}


def test_no_index_repeats_or_is_the_prefix_of_another():
    indexes = _indexes()
    for name, columns in indexes.items():
        longer = [other for other, cols in indexes.items() if other != name and cols[:len(columns)] == columns]
        assert not longer, f"{name} {columns} is covered by {longer}"


def test_every_foreign_key_leads_an_index():
    leading = {columns[0] for columns in _indexes().values()}
    for field in Disagreement._meta.concrete_fields:
        if field.is_relation:
            assert field.column in leading, field.column
