"""Answers whose JSON is built before the view returns (``review.selectors.lease_payload_json``),
sent as they are instead of rendered again by DRF; and the content negotiation of the review
hot path (:class:`PlainJSONNegotiation`)."""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response


def json_answer(request: Request, body: bytes, status: int = 200) -> HttpResponse:
    """``body`` (JSON bytes, as DRF's ``JSONRenderer`` writes them) as the answer, when the request
    negotiated plain JSON; else (the browsable API, ``Accept: application/json; indent=4``) parsed
    and handed to DRF's renderers like any other answer."""
    renderer = getattr(request, "accepted_renderer", None)
    if type(renderer) is JSONRenderer and "indent" not in (request.accepted_media_type or ""):
        return HttpResponse(body, content_type=renderer.media_type, status=status)
    return Response(json.loads(body), status=status)


_PLAIN_ACCEPT = frozenset({"*/*", "application/json"})


class PlainJSONNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, without parsing the headers and the query for the usual request: no
    ``Accept`` (read as ``*/*``), ``*/*`` or ``application/json``, no query string (so no
    ``?format=``). DRF then picks the first renderer that matches: JSON, named
    ``application/json`` (tests/review/test_apis.py). Anything else is negotiated by DRF."""

    def select_renderer(self, request, renderers, format_suffix=None):
        meta = request.META
        if (format_suffix is None and not meta.get("QUERY_STRING") and meta.get("HTTP_ACCEPT", "*/*") in _PLAIN_ACCEPT
                and renderers and type(renderers[0]) is JSONRenderer):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)
