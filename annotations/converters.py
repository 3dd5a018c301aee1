"""URL converters, registered once in ``annotations.apps``."""

from __future__ import annotations

from core.text import INT64_MAX


class DatabaseIdConverter:
    """``<id:pk>``: a row id, 1 to 2**63 - 1 (a ``BigAutoField``). A longer number matches
    no URL, so it answers 404 like any id without a row, never an overflow."""

    regex = "[0-9]+"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= INT64_MAX:
            raise ValueError(f"{value} is not a database id")  # Django reads it as "no match"
        return number

    def to_url(self, value: int) -> str:
        return str(value)
