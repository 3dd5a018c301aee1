"""Every API error is ``{"detail", "field"}`` (docs/review-api.md), whichever layer refused
the request: a DRF serializer, a django-filter filter set, a Django form, the JSON parser,
the URL resolver or the cursor paginator."""

from __future__ import annotations

import base64

import pytest
from rest_framework.exceptions import ErrorDetail

from annotations.api_errors import first_error, validation_error_body
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_role(api_client, reviewer, researcher):
    def login(user):
        api_client.force_authenticate(user)
        return api_client

    return {"reviewer": lambda: login(reviewer), "researcher": lambda: login(researcher)}


def test_a_serializer_error_names_its_field(as_role):
    response = as_role["reviewer"]().post("/api/review/next/", {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "dataset: This field is required.", "field": "dataset"}


def test_a_filter_set_error_names_its_parameter(as_role):
    response = as_role["researcher"]().get("/api/images/", {"created_after": "yesterday"})
    assert response.status_code == 400
    assert response.json() == {"detail": "created_after: Enter a valid date/time.", "field": "created_after"}


def test_a_form_error_names_its_parameter(as_role):
    DatasetFactory(slug="study")
    response = as_role["researcher"]().get("/api/agreement/datasets/study/report/", {"label": "joy"})
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"detail", "field"} and body["field"] == "label" and "joy" in body["detail"]


def test_a_body_that_is_not_json_is_a_400_about_the_whole_request(as_role):
    response = as_role["reviewer"]().post("/api/review/next/", "{not json", content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["field"] is None and body["detail"].startswith("JSON parse error")


def test_domain_errors_keep_their_shape(as_role):
    """403 and 404 carry ``detail``; 409 bodies keep ``changes`` (tests/api/test_schema.py submits twice)."""
    client = as_role["reviewer"]()
    assert client.get("/api/review/disagreements/").json() == {"detail": "Your role does not allow this."}
    assert client.post("/api/review/leases/999/release/").json() == {"detail": "No Lease matches the given query."}


@pytest.mark.parametrize("path", ["/api/images/abc/", "/api/review/leases/-1/draft/", "/api/nothing-here/"])
def test_a_url_the_api_does_not_have_answers_json(as_role, path):
    response = as_role["researcher"]().get(path)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_page_that_does_not_exist_stays_html(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("position", ["abc", "1e999", "nul\x00"])
def test_a_cursor_with_a_position_the_ordering_cannot_hold_is_a_bad_cursor(as_role, position):
    """It used to be a 500: the position went into the id filter as given."""
    cursor = base64.b64encode(f"p={position}".encode()).decode()
    response = as_role["researcher"]().get("/api/images/", {"cursor": cursor})
    assert response.status_code == 404 and response.json() == {"detail": "Invalid cursor"}


def test_the_first_error_is_found_at_any_depth():
    error = ErrorDetail("This field is required.", code="required")
    assert first_error({"time_spent_ms": [error]}) == ("This field is required.", "time_spent_ms")
    assert first_error({"element_decisions": {0: {"before": [error]}}}) == (error, "element_decisions[0].before")
    assert first_error({"items": [{}, {"box": [error]}]}) == (error, "items[1].box")
    assert first_error({"annotation": {"non_field_errors": [error]}}) == (error, "annotation")
    assert first_error({"__all__": [error], "label": ["later"]}) == (error, "")
    assert first_error({"a": [], "b": {}, "c": ["third"]}) == ("third", "c")
    assert first_error({}) is None


def test_the_body_names_the_path_or_null():
    assert validation_error_body({"element_decisions": {2: {"action": ["Unknown."]}}}) == {
        "detail": "element_decisions[2].action: Unknown.", "field": "element_decisions[2].action"}
    assert validation_error_body(["Nothing to submit."]) == {"detail": "Nothing to submit.", "field": None}
    assert validation_error_body({}) == {"detail": "Invalid input.", "field": None}
