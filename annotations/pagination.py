"""Cursor pagination of every list API: ``{"next", "previous", "results"}``.

``next`` and ``previous`` are always present (a URL, or null at either end); the OpenAPI
schema says so, so a generated client can follow ``next`` without guessing.
"""

from __future__ import annotations

from annotations.text_policy import CursorPagination


class CursorPage(CursorPagination):
    """Pages in ``ordering``; subclasses set it (and a page size parameter if they allow one).
    A tampered cursor is a 404 (``annotations.text_policy.CursorPagination``)."""

    ordering = "id"

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": "string", "format": "uri", "nullable": True}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {**link, "description": "The next page, or null on the last one."},
                "previous": {**link, "description": "The previous page, or null on the first one."},
                "results": schema,
            },
        }


class NewestFirst(CursorPage):
    ordering = "-id"
