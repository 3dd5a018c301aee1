"""annotations.api_json.PlainJSONNegotiation picks what DRF's negotiation picks."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request

from annotations.api_json import PlainJSONNegotiation
from review.apis import SubmitAPI

ACCEPTS = [None, "*/*", "application/json", "application/json; indent=4", "text/html", "text/html,*/*;q=0.8",
           " */*", "application/*", "image/png", "application/json, text/html"]


def _choice(negotiation, accept, query):
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(RequestFactory().post(f"/api/review/next/{query}", **headers))
    renderers = SubmitAPI().get_renderers()
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except NotAcceptable:
        return "406"
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("query", ["", "?format=api", "?format=json", "?x=1"])
@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_plain_negotiation_chooses_as_drf_does(accept, query):
    assert _choice(PlainJSONNegotiation(), accept, query) == _choice(DefaultContentNegotiation(), accept, query)


def test_the_usual_request_is_answered_without_parsing(monkeypatch):
    monkeypatch.setattr(DefaultContentNegotiation, "select_renderer", lambda *a, **k: pytest.fail("parsed"))
    assert _choice(PlainJSONNegotiation(), None, "") == ("JSONRenderer", "application/json")
    assert _choice(PlainJSONNegotiation(), "application/json", "") == ("JSONRenderer", "application/json")
