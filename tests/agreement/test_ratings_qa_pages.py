"""Ratings and QA agreement on the report page, in the CSV/JSON downloads and over the API
(roles, schema, filters, escaping)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from qa.models import QACategory
from tests.agreement.qa_scenes import build_qa_scene
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _few_resamples(settings):
    settings.EMOVERSE_AGREEMENT_RESAMPLES = 50


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_report_page_shows_ratings_and_qa_sections(researcher):
    build_qa_scene()
    html = _client(researcher).get("/agreement/rq/").content.decode()
    assert 'id="ratings"' in html and "Intensity of the evoked emotion" in html
    assert "ICC(A,1): absolute agreement, single" in html and "ICC(A,k): absolute agreement, average of 4" in html
    assert '0.290 <span class="ci">[0.019, 0.761]</span>' in html  # Shrout & Fleiss ICC(2,1), psych's interval
    assert '0.620 <span class="ci">[0.071, 0.927]</span>' in html  # ICC(2,4)
    assert "6 images × 4 raters (r1, r2, r3, r4)" in html
    assert "Krippendorff's α (ordinal)" in html and 'gpt-4o <span class="badge">model</span>' in html
    assert "undefined (a correlation needs at least three pairs, got 2)" in html  # r5 rated two images
    assert 'id="qa"' in html and "Emotion perception" in html and "Scene and background" in html
    assert "66.7 %" in html and "rejected" in html and "wrong_answer 1" in html
    assert "(written by a person)" not in html


def test_csv_and_json_carry_ratings_and_qa(researcher):
    build_qa_scene()
    client = _client(researcher)
    report = json.loads(client.get("/agreement/rq/report.json").content)
    rows = list(csv.DictReader(io.StringIO(client.get("/agreement/rq/report.csv").content.decode())))
    by_stat = {(r["section"], r["statistic"], r["a"], r["b"]): r for r in rows}
    icc = report["ratings"]["scales"][0]["icc"]["forms"]["ICC2"]
    row = by_stat[("ratings", "icc_agreement_single", "intensity", "")]
    assert float(row["value"]) == pytest.approx(icc["value"]) and float(row["low"]) == pytest.approx(icc["low"])
    assert row["n"] == "6" and row["note"] == "ICC(A,1); raters r1, r2, r3, r4"
    assert ("ratings", "icc_agreement_average", "intensity", "") in by_stat
    assert ("ratings", "krippendorff_alpha_ordinal", "intensity", "") in by_stat
    assert by_stat[("ratings", "rater_vs_mean_spearman", "intensity", "r5")]["value"] == ""
    assert "at least three pairs" in by_stat[("ratings", "rater_vs_mean_spearman", "intensity", "r5")]["note"]
    assert ("ratings", "model_vs_human_pearson", "intensity", "gpt-4o") in by_stat
    overall = by_stat[("qa", "acceptance", "all", "all")]
    assert float(overall["value"]) == pytest.approx(4 / 6) and overall["n"] == "6"
    assert overall["note"] == "4 of 6; rejected: ambiguous 1, wrong_answer 1"
    assert float(by_stat[("qa", "model_accuracy", "perception", "all")]["value"]) == pytest.approx(2 / 3)
    assert by_stat[("qa", "critic_accuracy", "reasoning", "holistic")]["note"] == "no pair to score"
    assert ("qa", "acceptance", "all", "scene") in by_stat and ("qa_models", "model_accuracy", "gpt-4o", "") in by_stat


def test_a_category_name_is_escaped_on_the_page(researcher):
    scene = build_qa_scene(ratings=False)
    QACategory.objects.filter(dataset=scene.dataset, key="perception").update(name="<script>x</script>")
    html = _client(researcher).get("/agreement/rq/").content.decode()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


@pytest.mark.parametrize("url", ["/api/agreement/datasets/rq/ratings/", "/api/agreement/datasets/rq/qa/"])
def test_api_roles(api_client, reviewer, adjudicator, researcher, admin_user, url):
    build_qa_scene(ratings=False, pairs=False)
    assert api_client.get(url).status_code == 401
    for user, status in ((reviewer, 403), (adjudicator, 403), (researcher, 200), (admin_user, 200)):
        api_client.force_authenticate(user)
        assert api_client.get(url).status_code == status
    api_client.force_authenticate(UserFactory(username="rater-only", roles=["rater"]))
    assert api_client.get(url).status_code == 403


def test_api_sections_filters_and_errors(api_client, researcher):
    build_qa_scene()
    api_client.force_authenticate(researcher)
    ratings = api_client.get("/api/agreement/datasets/rq/ratings/", {"reviewer": ["r1", "r2", "r3"]}).json()
    assert ratings["dataset"]["slug"] == "rq" and ratings["filters"]["reviewers"] == ["r1", "r2", "r3"]
    [scale] = ratings["scales"]
    assert scale["icc"]["raters"] == ["r1", "r2", "r3"] and scale["icc"]["forms"]["ICC2"]["low"] is not None
    qa = api_client.get("/api/agreement/datasets/rq/qa/").json()
    assert qa["overall"]["reviewed"] == 6 and {r["category"] for r in qa["by_category"]} == {
        "attribution",
        "perception",
        "reasoning",
    }
    bad = api_client.get("/api/agreement/datasets/rq/qa/", {"reviewer": "mallory"})
    assert bad.status_code == 400 and bad.json()["field"] == "reviewer"
    assert api_client.get("/api/agreement/datasets/nope/ratings/").status_code == 404


@pytest.mark.django_db(transaction=True)  # the WSGI handler closes the connection after each request
def test_api_answers_match_the_schema(researcher):
    build_qa_scene()
    token = Token.objects.create(user=researcher)
    headers = {"Authorization": f"Token {token.key}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler(), headers=headers)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    for path in (
        "/api/agreement/datasets/{slug}/ratings/",
        "/api/agreement/datasets/{slug}/qa/",
        "/api/agreement/datasets/{slug}/report/",
    ):
        case = schema[path]["GET"].Case(path_parameters={"slug": "rq"}, query={})
        response = case.call(headers=headers)
        case.validate_response(response, checks=checks, headers=headers)
        assert response.status_code == 200
    components = schema.raw_schema["components"]["schemas"]
    assert {"AgreementRatings", "AgreementICC", "AgreementQA", "AgreementQARow", "AgreementCorrelation"} <= set(
        components
    )
