"""Answers whose JSON is built before the view returns (``review.selectors.lease_payload_json``),
sent as they are instead of rendered again by DRF."""

from __future__ import annotations

import json

from django.http import HttpResponse
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
