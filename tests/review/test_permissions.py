"""Who may do what: every review endpoint checks its role, and reviews stay independent."""

import pytest

from tests.factories import DatasetFactory, UserFactory
from tests.review.conftest import human_answer, image_in_review

pytestmark = pytest.mark.django_db

REVIEWER_WRITES = [("post", "/api/review/next/", {"dataset": "demo"}), ("post", "/api/review/refine/", {"image_id": 1})]
ADJUDICATOR_ONLY = [("get", "/api/review/adjudication/", None), ("get", "/api/review/adjudication/1/", None),
                    ("post", "/api/review/adjudication/1/", {"expected_version": 1, "annotation": {}})]
LOG = [("get", "/api/review/disagreements/", None)]


def call(client, method, url, body):
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


@pytest.mark.parametrize("method, url, body", REVIEWER_WRITES + ADJUDICATOR_ONLY + LOG +
                         [("get", "/api/review/progress/?dataset=demo", None)])
def test_anonymous_callers_are_refused(api_client, dataset, method, url, body):
    assert call(api_client, method, url, body).status_code in (401, 403)


@pytest.mark.parametrize("method, url, body", REVIEWER_WRITES)
def test_a_researcher_cannot_review(api_client, researcher, dataset, method, url, body):
    api_client.force_authenticate(researcher)
    assert call(api_client, method, url, body).status_code == 403


@pytest.mark.parametrize("method, url, body", ADJUDICATOR_ONLY)
def test_a_reviewer_cannot_adjudicate(api_client, reviewer, dataset, method, url, body):
    api_client.force_authenticate(reviewer)
    assert call(api_client, method, url, body).status_code == 403


@pytest.mark.parametrize("role", ["reviewer", "adjudicator"])
def test_only_admins_and_researchers_read_the_disagreement_log(api_client, role, dataset):
    api_client.force_authenticate(UserFactory(username=f"x-{role}", roles=[role]))
    assert api_client.get("/api/review/disagreements/").status_code == 403
    for allowed in ("admin", "researcher"):
        api_client.force_authenticate(UserFactory(username=f"y-{allowed}", roles=[allowed]))
        assert api_client.get("/api/review/disagreements/").status_code == 200


def test_a_reviewer_cannot_touch_another_reviewers_lease(api_client, make_reviewer, dataset):
    image_in_review(dataset)
    api_client.force_authenticate(make_reviewer("ann"))
    item = api_client.post("/api/review/next/", {"dataset": "demo"}, format="json").json()
    lease = item["lease"]["id"]
    api_client.force_authenticate(make_reviewer("bob"))
    for method, suffix, body in (("post", "release", None), ("post", "skip", None), ("get", "draft", None),
                                 ("put", "draft", {"payload": {}}),
                                 ("post", "submit", {"expected_version": item["version"], "decision": "approved",
                                                     "annotation": human_answer(item)})):
        r = call(api_client, method, f"/api/review/leases/{lease}/{suffix}/", body)
        assert r.status_code == 403, (suffix, r.content)


def test_a_reviewer_never_sees_another_reviewers_answer_first(api_client, make_reviewer):
    dataset = DatasetFactory(slug="pairs", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset)
    api_client.force_authenticate(make_reviewer("quentin"))
    item = api_client.post("/api/review/next/", {"dataset": "pairs"}, format="json").json()
    done = api_client.post(f"/api/review/leases/{item['lease']['id']}/submit/", {
        "expected_version": item["version"], "decision": "approved", "annotation": human_answer(item, label="awe")},
        format="json")
    assert done.status_code == 201
    api_client.force_authenticate(make_reviewer("bob"))
    seen = api_client.post("/api/review/next/", {"dataset": "pairs"}, format="json").json()
    assert seen["image"]["id"] == image.pk
    shown = [seen["base"]] + seen["annotators"]
    assert {a["kind"] for a in shown} == {"model"}
    assert "quentin" not in str(seen)
    # Nor through the general annotations API.
    versions = api_client.get(f"/api/images/{image.pk}/versions/").json()
    rows = versions["results"] if isinstance(versions, dict) else versions
    assert all(row["kind"] != "human" for row in rows)
