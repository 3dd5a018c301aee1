"""Maps errors to HTTP answers for the API (domain code never picks status codes).

Every error answer is JSON in one shape (docs/review-api.md): ``{"detail": str}``,
with ``"field"`` on every 400 (the path of the offending value, e.g.
``element_decisions[0].before``, or null when the request as a whole is bad) and
``"changes"`` on 409. DRF's own validation errors (a dict of lists per field) are
turned into that shape here: the first error wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from annotations.errors import (
    InvalidAnnotation,
    InvalidImage,
    NotAllowed,
    NothingToDo,
    VersionConflict,
)
from annotations.token_apis import LoginLockedOut, LoginRefused

# Who-are-you errors: DRF's answer (status, WWW-Authenticate, Retry-After) in our shape.
_AUTH_ERRORS = (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, LoginLockedOut)
from core.text import TextPolicyError

# Keys under which DRF serializers and Django forms put errors about the whole object.
WHOLE_OBJECT_KEYS = frozenset({api_settings.NON_FIELD_ERRORS_KEY, "__all__"})


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def first_error(detail: Any, path: str = "") -> tuple[str, str] | None:
    """The first message in a DRF error structure and the path of the value it is about.

    ``detail`` is what ``ValidationError.detail`` holds: a message, a list of messages
    (one field), a dict of field -> errors (a serializer), a dict of index -> errors (a
    ``ListField``) or a list with one entry per item (``many=True``, ``{}`` for good items).
    Paths read like the domain validation's: ``annotation.triplets[0].subject``.
    """
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            found = first_error(value, path if key in WHOLE_OBJECT_KEYS else _join(path, key))
            if found:
                return found
        return None
    if isinstance(detail, (list, tuple)):
        for index, value in enumerate(detail):
            nested = isinstance(value, (Mapping, list, tuple))
            found = first_error(value, _join(path, index)) if nested else (str(value), path)
            if found:
                return found
        return None
    return str(detail), path


def validation_error_body(detail: Any) -> dict[str, Any]:
    """``{"detail", "field"}`` for a DRF ``ValidationError.detail``."""
    message, path = first_error(detail) or ("Invalid input.", "")
    return {"detail": f"{path}: {message}" if path else message, "field": path or None}


def exception_handler(exc, context):
    if isinstance(exc, (InvalidAnnotation, TextPolicyError)):
        return Response({"detail": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, InvalidImage):
        return Response({"detail": str(exc), "field": None}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, VersionConflict):
        return Response({"detail": str(exc), "changes": exc.changes}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, NotAllowed):
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, NothingToDo):
        return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, LoginRefused):
        return Response({"detail": str(exc.detail), "field": exc.field}, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, _AUTH_ERRORS):
        response.data = {"detail": str(exc.detail), "field": None}
    elif isinstance(exc, exceptions.ValidationError):
        response.data = validation_error_body(exc.detail)
    elif response.status_code == status.HTTP_400_BAD_REQUEST and isinstance(response.data, dict):
        response.data.setdefault("field", None)  # e.g. a body that is not JSON (ParseError)
    return response


def not_found(request, exception):
    """Django's 404 handler (``handler404``): a URL under ``/api/`` that no API has (an id
    that is not a number, a path parameter with a slash) answers in the API's JSON shape;
    pages keep Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    return page_not_found(request, exception)
