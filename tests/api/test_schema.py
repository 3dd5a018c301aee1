"""The OpenAPI schema tells the truth: real answers of the main endpoints validate against
the schema served at ``/api/schema/`` (status code documented, content type, body), and
the schema has real components for what used to be untyped JSON."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.vocabulary import ADJUDICATOR, ADMIN, RESEARCHER, REVIEWER

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api(world):
    """``api(role, method, path, expected_status, **parts)``: send a request through the schema's
    operation, check the answer against the schema, return its JSON."""
    app = WSGIHandler()
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", app, headers=world.headers(ADMIN))

    def call(role, method, path, status, *, path_parameters=None, query=None, body=None):
        operation = schema[path][method]
        extra = {"body": body, "media_type": "application/json"} if body is not None else {}
        case = operation.Case(path_parameters=path_parameters or {}, query=query or {}, **extra)
        response = case.call(headers=world.headers(role))
        case.validate_response(response, checks=CHECKS, headers=world.headers(role))
        assert response.status_code == status, response.content[:500]
        return response.json() if response.content else None

    call.schema = schema
    return call


def test_review_answers_match_the_schema(api, world):
    item = api(REVIEWER, "POST", "/api/review/next/", 200, body={"dataset": "fuzz"})
    assert item["critic"]["elements"] and item["disagreement"]["triplets"] and item["draft"]["payload"]["note"]
    assert item["base"]["triplets"][0]["subject"]["mask"]["counts"] and item["base"]["ces"]["distribution"]
    lease = {"id": item["lease"]["id"]}
    api(REVIEWER, "GET", "/api/review/leases/{id}/draft/", 200, path_parameters=lease)
    api(REVIEWER, "PUT", "/api/review/leases/{id}/draft/", 200, path_parameters=lease, body={"payload": {"step": 2}})
    api(REVIEWER, "GET", "/api/review/progress/", 200, query={"dataset": "fuzz"})
    bad = api(REVIEWER, "POST", "/api/review/leases/{id}/submit/", 400, path_parameters=lease,
              body={**world.submit_body, "time_spent_ms": "soon"})
    assert bad == {"detail": "time_spent_ms: A valid integer is required.", "field": "time_spent_ms"}
    api(REVIEWER, "POST", "/api/review/leases/{id}/submit/", 201, path_parameters=lease, body=world.submit_body)
    again = api(REVIEWER, "POST", "/api/review/leases/{id}/submit/", 409, path_parameters=lease, body=world.submit_body)
    assert again["changes"]["already_submitted"] is True
    api(REVIEWER, "POST", "/api/review/leases/{id}/release/", 403, path_parameters={"id": world.leases[1]})
    api(REVIEWER, "GET", "/api/review/disagreements/", 403)


def test_adjudication_and_logs_match_the_schema(api, world):
    queue = api(ADJUDICATOR, "GET", "/api/review/adjudication/", 200, query={"dataset": "fuzz"})
    assert set(queue) == {"next", "previous", "results"} and len(queue["results"]) == 1
    image = {"image_id": queue["results"][0]["id"]}
    item = api(ADJUDICATOR, "GET", "/api/review/adjudication/{image_id}/", 200, path_parameters=image)
    assert len(item["reviews"]) == 2 and item["reviews"][0]["triplets"]
    api(ADJUDICATOR, "POST", "/api/review/adjudication/{image_id}/", 201, path_parameters=image, body=world.adjudication_body)
    log = api(RESEARCHER, "GET", "/api/review/disagreements/", 200, query={"page_size": 2})
    assert len(log["results"]) == 2 and log["next"] and log["previous"] is None
    api(RESEARCHER, "GET", "/api/review/disagreements/", 404, query={"cursor": "cD1hYmM="})  # position "abc"


def test_data_answers_match_the_schema(api, world):
    api(RESEARCHER, "GET", "/api/datasets/", 200)
    api(RESEARCHER, "GET", "/api/datasets/{slug}/", 200, path_parameters={"slug": "fuzz"})
    api(RESEARCHER, "GET", "/api/datasets/{slug}/", 404, path_parameters={"slug": "nope"})
    images = api(RESEARCHER, "GET", "/api/images/", 200, query={"dataset": "fuzz"})
    assert images["next"] is None and len(images["results"]) == 4
    api(RESEARCHER, "GET", "/api/images/", 400, query={"label": "joy"})
    image = {"id": world.images[0]}
    api(RESEARCHER, "GET", "/api/images/{id}/", 200, path_parameters=image)
    versions = api(RESEARCHER, "GET", "/api/images/{id}/versions/", 200, path_parameters=image)
    assert versions[0]["critic"]["label_verdict"] == "ok" and versions[0]["content"]["triplets"]
    annotations = api(RESEARCHER, "GET", "/api/annotations/", 200, query={"current": "true", "kind": "model"})
    assert annotations["results"][0]["content"]["annotator"]["kind"] == "model"
    api(RESEARCHER, "GET", "/api/annotations/{id}/", 200, path_parameters={"id": world.annotations[0]})
    api(RESEARCHER, "GET", "/api/agreement/datasets/{slug}/report/", 200, path_parameters={"slug": "fuzz"})
    api(RESEARCHER, "GET", "/api/agreement/calibration/versions/", 200)
    progress = api(ADMIN, "GET", "/api/pipeline/{slug}/progress/", 200, path_parameters={"slug": "fuzz"})
    assert set(progress) >= {"runs", "stages", "prompt_tokens", "completion_tokens", "cost_usd"}
    api(ADMIN, "GET", "/api/pipeline/{slug}/progress/", 404, path_parameters={"slug": "nope"})
    api(RESEARCHER, "GET", "/api/pipeline/{slug}/progress/", 403, path_parameters={"slug": "fuzz"})
    api(ADMIN, "GET", "/api/exports/", 200)
    snapshot = api(ADMIN, "GET", "/api/exports/{id}/", 200, path_parameters={"id": world.exports[0]})
    assert snapshot["status"] == "complete" and snapshot["files"]
    api(ADMIN, "GET", "/api/exports/{id}/files/{path}", 200, path_parameters={"id": world.exports[0], "path": "manifest.json"})
    api(ADMIN, "PATCH", "/api/datasets/{slug}/", 400, path_parameters={"slug": "fuzz"}, body={"lease_minutes": "long"})


def test_the_check_is_not_vacuous(api, world):
    """An answer that breaks the schema (the critic as a string) fails the same check."""
    operation = api.schema["/api/review/next/"]["POST"]
    case = operation.Case(body={"dataset": "fuzz"}, media_type="application/json")
    response = case.call(headers=world.headers(REVIEWER))
    body = response.json()
    body["critic"] = "looks fine"
    tampered = schemathesis.Response(status_code=200, headers=response.headers, content=json.dumps(body).encode(),
                                     request=response.request, elapsed=0, verify=True)
    with pytest.raises(FailureGroup):
        case.validate_response(tampered, checks=[response_schema_conformance])


def test_schema_components_describe_the_json(api):
    schema = api.schema.raw_schema
    components = schema["components"]["schemas"]
    for name in ("Annotation", "AnnotationContent", "Triplet", "Element", "CES", "Critic", "AnnotatorsDisagreement",
                 "Error", "Conflict", "PaginatedDisagreementListOutputList", "PaginatedAdjudicationQueueOutputList"):
        assert name in components, name
    assert components["AnnotationOutput"]["properties"]["triplets"]["items"] == {"$ref": "#/components/schemas/Triplet"}
    assert components["PaginatedImageList"]["required"] == ["next", "previous", "results"]
    disagreements = schema["paths"]["/api/review/disagreements/"]["get"]
    assert {p["name"] for p in disagreements["parameters"]} >= {"cursor", "page_size"}
    assert disagreements["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PaginatedDisagreementListOutputList"}
    submit = schema["paths"]["/api/review/leases/{id}/submit/"]["post"]["responses"]
    assert set(submit) == {"201", "400", "401", "403", "404", "409", "413", "429"}
    assert submit["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert submit["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Conflict"}
