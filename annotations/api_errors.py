"""Maps domain errors to HTTP answers for the API (domain code never picks status codes)."""

from __future__ import annotations

from rest_framework import exceptions, status
from rest_framework.response import Response
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


def exception_handler(exc, context):
    if isinstance(exc, (InvalidAnnotation, TextPolicyError)):
        return Response({"detail": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, InvalidImage):
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, VersionConflict):
        return Response({"detail": str(exc), "changes": exc.changes}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, NotAllowed):
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, NothingToDo):
        return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, LoginRefused):
        return Response({"detail": str(exc.detail), "field": exc.field}, status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, _AUTH_ERRORS):
        response.data = {"detail": str(exc.detail), "field": None}
    return response
