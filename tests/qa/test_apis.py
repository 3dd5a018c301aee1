"""The QA REST API: role checks, configuration by admins, pairs (list, filter, create,
versions), ratings (raters rate blind to each other, 400s name their field, 409 on a second
rating) and aggregates."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from qa.models import AssessmentScale, AuthorKind, QAPair, QAStatus
from qa.selectors import qa_axes
from qa.services import qa_config_install_defaults, qa_pair_create, qa_pair_new_version
from qa.validation import validate_pair
from tests.factories import ImageFactory, UserFactory

pytestmark = pytest.mark.django_db

MC = {
    "category": "perception",
    "dimension": "scene",
    "type": "multiple_choice",
    "question": "Which emotion?",
    "options": ["awe", "fear", "sadness"],
    "answer": 1,
}


@pytest.fixture
def image():
    image = ImageFactory()
    qa_config_install_defaults(dataset=image.dataset)
    return image


def client_for(*roles, username=None):
    client = APIClient()
    client.force_authenticate(UserFactory(username=username or "-".join(roles) or "nobody", roles=list(roles)))
    return client


def _pair(image, **over):
    axes = qa_axes(dataset_id=image.dataset_id)
    values = validate_pair({**MC, **over}, categories=axes.categories, dimensions=axes.dimensions)
    return qa_pair_create(image=image, values=values, author_kind=AuthorKind.MODEL, author_name="gpt-4o")


def test_configuration_every_role_reads_admins_change(image):
    slug = image.dataset.slug
    url = f"/api/qa/datasets/{slug}/categories/"
    listed = client_for("rater").get(url)
    assert listed.status_code == 200 and [c["key"] for c in listed.json()][:2] == ["perception", "attribution"]
    body = {"key": "aesthetics", "name": "Aesthetics", "question_types": ["open", "yes_no"]}
    assert client_for("reviewer").post(url, body, format="json").status_code == 403
    created = client_for("admin").post(url, body, format="json")
    assert created.status_code == 201 and created.json()["question_types"] == ["yes_no", "open"]
    bad = client_for("admin").post(url, {**body, "key": "x", "question_types": ["essay"]}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "question_types[0]"
    patched = client_for("admin").patch(f"{url}aesthetics/", {"active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["active"] is False

    scales = f"/api/qa/datasets/{slug}/scales/"
    scale = {
        "key": "dominance",
        "name": "Dominance",
        "kind": "dominance",
        "min_value": 1,
        "max_value": 5,
        "step": 1,
        "anchors": [[1, "submissive"], [5, "in control"]],
    }
    assert client_for("admin").post(scales, scale, format="json").status_code == 201
    off_step = client_for("admin").post(scales, {**scale, "key": "d2", "anchors": [[1.5, "x"]]}, format="json")
    assert off_step.status_code == 400 and off_step.json()["field"] == "anchors[0]"
    upside_down = client_for("admin").post(
        scales, {**scale, "key": "d3", "min_value": 5, "max_value": 1}, format="json"
    )
    assert upside_down.status_code == 400 and upside_down.json()["field"] == "max_value"


def test_pairs_list_filter_versions_and_roles(image):
    pair = _pair(image)
    _pair(image, question="Is it calm?", type="yes_no", options=None, answer="no", dimension="atmosphere")
    qa_pair_new_version(
        pair=pair, expected_version=1, user=UserFactory(), status=QAStatus.REJECTED, reject_reason="ambiguous"
    )
    for role in ("reviewer", "rater"):
        assert client_for(role).get("/api/qa/pairs/").status_code == 403
    researcher = client_for("researcher")
    listed = researcher.get("/api/qa/pairs/", {"dataset": image.dataset.slug}).json()["results"]
    assert len(listed) == 2  # current versions only
    rejected = researcher.get("/api/qa/pairs/", {"status": "rejected", "category": "perception"}).json()["results"]
    assert [(p["version"], p["reject_reason"], p["options"], p["answer_index"]) for p in rejected] == [
        (2, "ambiguous", ["awe", "fear", "sadness"], 1)
    ]
    atmosphere = researcher.get("/api/qa/pairs/", {"dimension": "atmosphere"}).json()["results"]
    assert [p["answer"] for p in atmosphere] == ["no"]
    versions = researcher.get(f"/api/qa/pairs/key/{pair.key}/versions/").json()
    assert [v["version"] for v in versions] == [1, 2] and versions[0]["status"] == "pending"
    bad = researcher.get("/api/qa/pairs/", {"status": "maybe"})
    assert bad.status_code == 400 and bad.json()["field"] == "status"
    for image_id in ("abc", str(2**70)):
        bad = researcher.get("/api/qa/pairs/", {"image": image_id})
        assert bad.status_code == 400 and bad.json()["field"] == "image"


def test_admin_creates_a_pair_and_bad_input_is_400(image):
    admin = client_for("admin")
    body = {"image": image.pk, **MC}
    created = admin.post("/api/qa/pairs/", body, format="json")
    assert created.status_code == 201
    assert created.json()["author_kind"] == "human" and created.json()["status"] == "pending"
    assert admin.post("/api/qa/pairs/", body, format="json").status_code == 409  # duplicate question
    for change, field in (
        ({"answer": 5}, "answer"),
        ({"category": "nope"}, "category"),
        ({"question": "\u200b"}, "question"),
        ({"type": "essay"}, "type"),
    ):
        response = admin.post("/api/qa/pairs/", {**body, **change}, format="json")
        assert response.status_code == 400 and response.json()["field"] == field, (change, response.json())
    assert client_for("researcher").post("/api/qa/pairs/", body, format="json").status_code == 403
    assert QAPair.objects.count() == 1


def test_ratings_blind_between_raters_and_aggregates(image):
    scale = AssessmentScale.objects.get(dataset=image.dataset, key="arousal")
    ann, bob = client_for("rater", username="ann"), client_for("rater", username="bob")
    assert (
        ann.post(
            "/api/qa/ratings/", {"image": image.pk, "scale": scale.pk, "value": 3, "blind": True}, format="json"
        ).status_code
        == 201
    )
    assert (
        bob.post("/api/qa/ratings/", {"image": image.pk, "scale": scale.pk, "value": 6}, format="json").status_code
        == 201
    )
    again = ann.post("/api/qa/ratings/", {"image": image.pk, "scale": scale.pk, "value": 4}, format="json")
    assert again.status_code == 409
    off = ann.post("/api/qa/ratings/", {"image": image.pk, "scale": scale.pk, "value": 9.5}, format="json")
    assert off.status_code == 400 and off.json()["field"] == "value"
    missing = ann.post("/api/qa/ratings/", {"image": image.pk, "scale": 99999, "value": 4}, format="json")
    assert missing.status_code == 400 and missing.json()["field"] == "scale"
    assert (
        client_for("reviewer")
        .post("/api/qa/ratings/", {"image": image.pk, "scale": scale.pk, "value": 4}, format="json")
        .status_code
        == 403
    )

    mine = ann.get("/api/qa/ratings/").json()["results"]
    assert [(r["rater_name"], r["value"], r["blind"]) for r in mine] == [("ann", 3.0, True)]
    everyone = client_for("researcher").get("/api/qa/ratings/", {"dataset": image.dataset.slug, "scale": "arousal"})
    assert sorted(r["rater_name"] for r in everyone.json()["results"]) == ["ann", "bob"]

    assert ann.get("/api/qa/ratings/aggregates/", {"dataset": image.dataset.slug}).status_code == 403
    [row] = (
        client_for("researcher")
        .get("/api/qa/ratings/aggregates/", {"dataset": image.dataset.slug, "scale": "arousal"})
        .json()
    )
    assert (row["image"], row["mean"], row["count"]) == (image.pk, 4.5, 2)
    assert row["ci95"][0] < 4.5 < row["ci95"][1]
    huge = client_for("researcher").get("/api/qa/ratings/aggregates/", {"dataset": image.dataset.slug, "image": 2**70})
    assert huge.status_code == 400 and huge.json()["field"] == "image"
    no_dataset = client_for("researcher").get("/api/qa/ratings/aggregates/")
    assert no_dataset.status_code == 400 and no_dataset.json()["field"] == "dataset"


@pytest.mark.parametrize("kind", ["categories", "dimensions", "scales"])
def test_a_key_the_dataset_already_uses_is_a_400_not_a_500(image, kind):
    """Found by the API fuzzer: a second entry with a used key hit the unique constraint (500)."""
    url = f"/api/qa/datasets/{image.dataset.slug}/{kind}/"
    admin = client_for("admin")
    body = ({"key": "k1", "name": "One", "kind": "valence", "min_value": 1, "max_value": 9, "step": 1}
            if kind == "scales" else {"key": "k1", "name": "One", "question_types": ["open"]})
    assert admin.post(url, body, format="json").status_code == 201
    again = admin.post(url, {**body, "name": "Two"}, format="json")
    assert again.status_code == 400 and again.json()["field"] == "key"
    assert admin.post(url, {**body, "key": "k2"}, format="json").status_code == 201
    renamed = admin.put(f"{url}k2/", {**body, "key": "k1"}, format="json")
    assert renamed.status_code == 400 and renamed.json()["field"] == "key"
    assert admin.get(f"{url}k2/").json()["name"] == "One"
