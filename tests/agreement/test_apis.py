"""Agreement API: read-only for researchers and admins, recalibration for admins."""

from __future__ import annotations

import pytest

from ml.models import CalibrationVersion
from tests.agreement.scenes import build_scene
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _few_resamples(settings):
    settings.EMOVERSE_AGREEMENT_RESAMPLES = 50


def test_report_for_researchers_with_filters(api_client, researcher):
    build_scene()
    api_client.force_authenticate(researcher)
    response = api_client.get("/api/agreement/datasets/study/report/", {"reviewer": ["alice", "carol"]})
    assert response.status_code == 200
    body = response.json()
    assert body["counts"]["reviewers"] == ["alice", "carol"]
    assert [(p["a"], p["b"]) for p in body["labels"]["pairwise_cohen_kappa"]] == [("alice", "carol")]
    kappa = body["labels"]["pairwise_cohen_kappa"][0]["kappa"]
    assert kappa["low"] <= kappa["value"] <= kappa["high"] and kappa["n"] == 9
    bad = api_client.get("/api/agreement/datasets/study/report/", {"label": "joy"})
    assert bad.status_code == 400 and bad.json()["field"] == "label" and "joy" in bad.json()["detail"]
    assert api_client.get("/api/agreement/datasets/nope/report/").status_code == 404


def test_calibration_endpoints(api_client, researcher, admin_user):
    build_scene()
    api_client.force_authenticate(researcher)
    now = api_client.get("/api/agreement/calibration/", {"dataset": "study"}).json()
    assert {row["model"] for row in now} == {"gpt-4o", "qwen"}
    assert all(row["n"] == 10 and len(row["reliability"]["before"]["counts"]) == 15 for row in now)
    assert api_client.post("/api/agreement/calibration/recalibrate/", {"min_samples": 5}, format="json").status_code == 403
    assert api_client.get("/api/agreement/calibration/versions/").json() == []

    api_client.force_authenticate(admin_user)
    result = api_client.post("/api/agreement/calibration/recalibrate/", {"dataset": "study", "min_samples": 5}, format="json")
    assert result.status_code == 200
    body = result.json()
    stored = {v["model_name"] for v in body["stored"]}
    assert stored | set(body["skipped"]) == {"gpt-4o", "qwen"}
    assert CalibrationVersion.objects.count() == len(stored)
    api_client.force_authenticate(researcher)
    versions = api_client.get("/api/agreement/calibration/versions/").json()
    assert {v["model_name"] for v in versions} == stored and all(v["created_by"] == admin_user.username for v in versions)
    api_client.force_authenticate(admin_user)
    bad = api_client.post("/api/agreement/calibration/recalibrate/", {"min_samples": 0}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "min_samples"


@pytest.mark.parametrize("url", ["/api/agreement/datasets/study/report/", "/api/agreement/calibration/",
                                 "/api/agreement/calibration/versions/"])
def test_reviewers_get_403_and_anonymous_401(api_client, reviewer, adjudicator, url):
    DatasetFactory(slug="study")
    assert api_client.get(url).status_code in (401, 403)
    for user in (reviewer, adjudicator):
        api_client.force_authenticate(user)
        assert api_client.get(url).status_code == 403
