"""Cursor pagination of every list API: ``{"next", "previous", "results"}``.

``next`` and ``previous`` are always present (a URL, or null at either end); the OpenAPI
schema says so, so a generated client can follow ``next`` without guessing.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class CursorPage(CursorPagination):
    """Pages in ``ordering``; subclasses set it (and a page size parameter if they allow one)."""

    ordering = "id"

    def paginate_queryset(self, queryset, request, view=None):
        """A cursor is opaque, but a client can still send one that decodes to a position the
        ordering field cannot hold (``p=abc`` for an id): that is a bad cursor (404), as DRF
        answers for one that does not decode."""
        if not request.query_params.get(self.cursor_query_param):
            return super().paginate_queryset(queryset, request, view)
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, OverflowError, DjangoValidationError):
            raise NotFound(self.invalid_cursor_message) from None

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
