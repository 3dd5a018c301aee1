"""Maps domain errors to HTTP answers for the API (domain code never picks status codes)."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotations.errors import (
    InvalidAnnotation,
    InvalidImage,
    NotAllowed,
    NothingToDo,
    VersionConflict,
)
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
    return drf_exception_handler(exc, context)
