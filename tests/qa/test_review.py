"""QA review over HTTP: leases (one image per reviewer, expiry, release), 409 on a stale or
second submit, drafts, independence of K reviews, the final versions and decision rows, and
adjudication of disagreements; role checks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from qa.models import (
    AuthorKind,
    QAAdjudication,
    QADecision,
    QALease,
    QALeaseState,
    QAPair,
    QAStatus,
)
from qa.selectors import qa_axes
from qa.review import qa_decision_summary
from qa.services import qa_config_install_defaults, qa_pair_create, qa_pair_new_version
from qa.validation import validate_pair
from tests.factories import DatasetFactory, ImageFactory, UserFactory, make_annotation

pytestmark = pytest.mark.django_db

MC = {
    "category": "perception",
    "dimension": "scene",
    "type": "multiple_choice",
    "question": "Which emotion does the <b>sea</b> evoke?",
    "options": ["awe", "fear", "sadness"],
    "answer": 1,
}
YN = {"category": "intensity", "dimension": "atmosphere", "type": "yes_no", "question": "Is it calm?", "answer": "no"}


def make_pair(image, values, *, critic_agrees=None, elements=()):
    axes = qa_axes(dataset_id=image.dataset_id)
    pair = qa_pair_create(
        image=image,
        values=validate_pair(values, categories=axes.categories, dimensions=axes.dimensions),
        author_kind=AuthorKind.MODEL,
        author_name="gpt-4o",
        model_name="gpt-4o",
        elements=elements,
    )
    if critic_agrees is not None:
        QAPair.objects.filter(pk=pair.pk).update(critic_agrees=critic_agrees, priority=1.0 if critic_agrees else 0.0)
        pair.refresh_from_db()
    return pair


@pytest.fixture
def dataset():
    dataset = DatasetFactory(slug="qa-set")
    qa_config_install_defaults(dataset=dataset)
    return dataset


def image_with_pairs(dataset):
    image = ImageFactory(dataset=dataset)
    annotation = make_annotation(image)
    element = annotation.triplets.first().elements.get(role="background")
    return image, [make_pair(image, MC, elements=[element]), make_pair(image, YN, critic_agrees=False)]


def client(user):
    c = APIClient()
    c.force_authenticate(user)
    return c


def reviewer(name):
    return UserFactory(username=name, roles=["reviewer"])


def next_item(c, dataset):
    return c.post(f"/api/qa/review/{dataset.slug}/next/")


def accept_all(item):
    return [{"pair": p["id"], "decision": "accept"} for p in item["pairs"]]


def test_next_leases_one_image_with_its_pairs_and_elements_critic_misses_first(dataset):
    image, (mc, yn) = image_with_pairs(dataset)
    c = client(reviewer("ann"))
    item = next_item(c, dataset).json()
    assert item["image"]["id"] == image.pk
    assert [p["id"] for p in item["pairs"]] == [yn.pk, mc.pk]  # the critic's miss first
    assert item["pairs"][1]["question"] == MC["question"]  # raw text: the page inserts it as text
    (element_id,) = item["pairs"][1]["elements"]
    assert item["elements"][element_id]["role"] == "background" and item["elements"][element_id]["box"]
    assert [r["value"] for r in item["reasons"]] == [
        "wrong_answer",
        "ambiguous",
        "not_about_image",
        "leaks_answer",
        "duplicate",
    ]
    again = next_item(c, dataset).json()
    assert again["lease"]["id"] == item["lease"]["id"]  # the held lease comes back
    assert next_item(client(reviewer("bob")), dataset).status_code == 404  # one review needed, slot taken


def test_submit_accept_edit_reject_writes_versions_and_decision_rows(dataset):
    image, (mc, yn) = image_with_pairs(dataset)
    c = client(reviewer("ann"))
    item = next_item(c, dataset).json()
    decisions = [
        {
            "pair": mc.pk,
            "decision": "edit",
            "edit": {"question": "Which emotion fits?", "options": ["awe", "fear", "joy"], "answer": 0},
        },
        {"pair": yn.pk, "decision": "reject", "reason": "wrong_answer"},
    ]
    res = c.post(f"/api/qa/review/leases/{item['lease']['id']}/submit/", {"decisions": decisions}, format="json")
    assert res.status_code == 200 and res.json() == {"final": True, "applied": 2, "adjudications": 0}
    edited = QAPair.objects.get(key=mc.key, is_current=True)
    assert (edited.version, edited.status, edited.options, edited.answer_index) == (
        2,
        "edited",
        ["awe", "fear", "joy"],
        0,
    )
    assert edited.elements.count() == 1 and edited.author_name == "ann" and edited.model_name == "gpt-4o"
    rejected = QAPair.objects.get(key=yn.key, is_current=True)
    assert (rejected.status, rejected.reject_reason) == ("rejected", "wrong_answer")
    rows = {d.pair_id: d for d in QADecision.objects.all()}
    assert rows[mc.pk].answer_changed and rows[mc.pk].model_answer_correct is False
    assert rows[yn.pk].model_answer_correct is False and rows[yn.pk].critic_agrees is False
    assert rows[mc.pk].category.key == "perception" and rows[mc.pk].dimension.key == "scene"
    assert next_item(c, dataset).status_code == 404  # nothing pending any more


def test_bad_decisions_are_400_with_the_field_and_nothing_is_written(dataset):
    image, (mc, yn) = image_with_pairs(dataset)
    c = client(reviewer("ann"))
    lease = next_item(c, dataset).json()["lease"]["id"]
    url = f"/api/qa/review/leases/{lease}/submit/"
    cases = [
        ([{"pair": mc.pk, "decision": "accept"}], "decisions"),  # yn undecided
        ([{"pair": mc.pk, "decision": "maybe"}, {"pair": yn.pk, "decision": "accept"}], "decisions[0].decision"),
        ([{"pair": mc.pk, "decision": "reject"}, {"pair": yn.pk, "decision": "accept"}], "decisions[0].reason"),
        (
            [{"pair": mc.pk, "decision": "edit", "edit": {"answer": 7}}, {"pair": yn.pk, "decision": "accept"}],
            "decisions[0].edit.answer",
        ),
        (
            [{"pair": mc.pk, "decision": "accept"}, {"pair": yn.pk, "decision": "edit", "edit": {"answer": "maybe"}}],
            "decisions[1].edit.answer",
        ),
        ("nope", "decisions"),
    ]
    for decisions, field in cases:
        res = c.post(url, {"decisions": decisions}, format="json")
        assert res.status_code == 400 and res.json()["field"] == field, (decisions, res.json())
    assert QALease.objects.get(pk=lease).state == QALeaseState.ACTIVE
    assert QAPair.objects.filter(image=image, is_current=True, status="pending").count() == 2


def test_second_submit_and_stale_pairs_are_409(dataset):
    image, (mc, yn) = image_with_pairs(dataset)
    c = client(reviewer("ann"))
    item = next_item(c, dataset).json()
    url = f"/api/qa/review/leases/{item['lease']['id']}/submit/"
    # Someone (an admin through the services) changes a pair after the reviewer read it.
    qa_pair_new_version(pair=mc, expected_version=1, user=UserFactory(username="boss"), status=QAStatus.IN_REVIEW)
    stale = c.post(url, {"decisions": accept_all(item)}, format="json")
    assert stale.status_code == 409 and stale.json()["changes"]["pairs"] == [mc.pk]
    fresh = next_item(c, dataset).json()
    assert c.post(url, {"decisions": accept_all(fresh)}, format="json").status_code == 200
    twice = c.post(url, {"decisions": accept_all(fresh)}, format="json")
    assert twice.status_code == 409 and twice.json()["changes"] == {"submitted": True}


def test_lapsed_lease_taken_by_another_is_409_free_one_is_taken_up_again(dataset):
    image_with_pairs(dataset)
    ann, bob = client(reviewer("ann")), client(reviewer("bob"))
    item = next_item(ann, dataset).json()
    lease = QALease.objects.get(pk=item["lease"]["id"])
    QALease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    taken = next_item(bob, dataset).json()
    assert taken["image"]["id"] == item["image"]["id"]
    lost = ann.post(f"/api/qa/review/leases/{lease.pk}/submit/", {"decisions": accept_all(item)}, format="json")
    assert lost.status_code == 409 and lost.json()["changes"] == {"lease_lost": True}
    # Bob's lease lapses too, nobody takes the image: his late submit still counts.
    QALease.objects.filter(pk=taken["lease"]["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = bob.post(
        f"/api/qa/review/leases/{taken['lease']['id']}/submit/", {"decisions": accept_all(taken)}, format="json"
    )
    assert late.status_code == 200


def test_another_reviewers_lease_is_403_and_roles_are_checked(dataset):
    image_with_pairs(dataset)
    item = next_item(client(reviewer("ann")), dataset).json()
    lease = item["lease"]["id"]
    bob = client(reviewer("bob"))
    assert (
        bob.post(f"/api/qa/review/leases/{lease}/submit/", {"decisions": accept_all(item)}, format="json").status_code
        == 403
    )
    assert bob.put(f"/api/qa/review/leases/{lease}/draft/", {"payload": {}}, format="json").status_code == 403
    assert bob.post(f"/api/qa/review/leases/{lease}/release/").status_code == 403
    for role in ("rater", "researcher", "adjudicator"):
        assert next_item(client(UserFactory(username=role, roles=[role])), dataset).status_code == 403
    assert APIClient().post(f"/api/qa/review/{dataset.slug}/next/").status_code in (401, 403)


def test_draft_round_trip_and_release(dataset):
    image_with_pairs(dataset)
    c = client(reviewer("ann"))
    item = next_item(c, dataset).json()
    lease = item["lease"]["id"]
    payload = {"decisions": {str(item["pairs"][0]["id"]): {"decision": "accept"}}, "focus": 1}
    assert c.put(f"/api/qa/review/leases/{lease}/draft/", {"payload": payload}, format="json").status_code == 200
    assert next_item(c, dataset).json()["draft"] == payload
    assert c.post(f"/api/qa/review/leases/{lease}/release/").json() == {"state": "released"}
    bob = next_item(client(reviewer("bob")), dataset).json()
    assert bob["draft"] is None  # never another reviewer's draft
    assert next_item(c, dataset).status_code == 404  # bob holds the one slot now
    assert next_item(client(reviewer("cy")), dataset).status_code == 404


def _two_reviews(dataset):
    dataset.reviews_per_item, dataset.overlap_fraction = 2, 1.0
    dataset.save()
    image, pairs = image_with_pairs(dataset)
    return image, pairs, client(reviewer("ann")), client(reviewer("bob"))


def test_k_reviews_are_independent_agreement_applies_disagreement_goes_to_adjudication(dataset):
    image, (mc, yn), ann, bob = _two_reviews(dataset)
    a = next_item(ann, dataset).json()
    b = next_item(bob, dataset).json()
    assert a["image"]["id"] == b["image"]["id"] and a["lease"]["id"] != b["lease"]["id"]
    assert next_item(client(reviewer("cy")), dataset).status_code == 404  # both slots held
    first = ann.post(
        f"/api/qa/review/leases/{a['lease']['id']}/submit/",
        {
            "decisions": [
                {"pair": mc.pk, "decision": "accept"},
                {"pair": yn.pk, "decision": "reject", "reason": "ambiguous"},
            ]
        },
        format="json",
    )
    assert first.json() == {"final": False, "applied": 0, "adjudications": 0}
    # Bob still sees the pairs as generated: nothing of Ann's review shows.
    seen = next_item(bob, dataset).json()
    assert seen["draft"] is None and {p["id"] for p in seen["pairs"]} == {mc.pk, yn.pk}
    assert QAPair.objects.filter(image=image, is_current=True, status="pending").count() == 2
    second = bob.post(
        f"/api/qa/review/leases/{b['lease']['id']}/submit/",
        {"decisions": [{"pair": mc.pk, "decision": "accept"}, {"pair": yn.pk, "decision": "accept"}]},
        format="json",
    )
    assert second.json() == {"final": True, "applied": 1, "adjudications": 1}
    assert QAPair.objects.get(key=mc.key, is_current=True).status == "accepted"
    assert QAPair.objects.get(key=yn.key, is_current=True).status == "pending"
    item = QAAdjudication.objects.get()
    assert item.pair_id == yn.pk and item.state == "open"


def test_adjudication_list_and_decide_page(dataset, client):
    image, (mc, yn), ann, bob = _two_reviews(dataset)
    for c, d in ((ann, {"decision": "reject", "reason": "ambiguous"}), (bob, {"decision": "accept"})):
        item = next_item(c, dataset).json()
        c.post(
            f"/api/qa/review/leases/{item['lease']['id']}/submit/",
            {"decisions": [{"pair": mc.pk, "decision": "accept"}, {"pair": yn.pk, **d}]},
            format="json",
        )
    adjudication = QAAdjudication.objects.get()
    # An adjudicator who reviewed the image may not decide it.
    UserFactory(username="judge", roles=["adjudicator"])
    client.force_login(UserFactory(username="ann", roles=["adjudicator"]))
    assert client.get(f"/qa/adjudication/{adjudication.pk}/").status_code == 403
    assert f"/qa/adjudication/{adjudication.pk}/" not in client.get("/qa/adjudication/").content.decode()
    client.force_login(UserFactory(username="judge"))
    page = client.get("/qa/adjudication/")
    assert page.status_code == 200 and f"/qa/adjudication/{adjudication.pk}/" in page.content.decode()
    detail = client.get(f"/qa/adjudication/{adjudication.pk}/").content.decode()
    assert "Ambiguous" in detail and "bob" in detail
    bad = client.post(f"/qa/adjudication/{adjudication.pk}/", {"choice": "reject", "reason": "nope"})
    assert bad.status_code == 400
    ann_decision = QADecision.objects.get(pair=yn, decision="reject")
    done = client.post(f"/qa/adjudication/{adjudication.pk}/", {"choice": f"decision:{ann_decision.pk}"})
    assert done.status_code == 302
    final = QAPair.objects.get(key=yn.key, is_current=True)
    assert (final.status, final.reject_reason, final.author_name) == ("rejected", "ambiguous", "judge")
    again = client.post(f"/qa/adjudication/{adjudication.pk}/", {"choice": "accept"})
    assert again.status_code == 409
    client.force_login(reviewer("rev"))
    assert client.get("/qa/adjudication/").status_code == 403


def test_review_page_renders_model_text_escaped_and_roles(dataset, client):
    image_with_pairs(dataset)
    client.force_login(reviewer("ann"))
    page = client.get(f"/qa/review/{dataset.slug}/")
    html = page.content.decode()
    assert page.status_code == 200 and "<b>sea</b>" not in html and "\\u003Cb\\u003Esea" in html
    assert 'src="/static/qa/qa_review.js"' in html or "qa/qa_review.js" in html
    client.force_login(UserFactory(username="r", roles=["rater"]))
    assert client.get(f"/qa/review/{dataset.slug}/").status_code == 403


def test_decision_summary_per_category_and_dimension(dataset):
    image, (mc, yn) = image_with_pairs(dataset)
    c = client(reviewer("ann"))
    item = next_item(c, dataset).json()
    decisions = [
        {"pair": mc.pk, "decision": "edit", "edit": {"question": "Which emotion, mostly?"}},  # answer kept
        {"pair": yn.pk, "decision": "reject", "reason": "leaks_answer"},  # says nothing of the answer
    ]
    c.post(f"/api/qa/review/leases/{item['lease']['id']}/submit/", {"decisions": decisions}, format="json")
    assert qa_decision_summary(dataset_id=dataset.pk) == [
        {
            "category": "intensity",
            "dimension": "atmosphere",
            "decisions": 1,
            "accepted": 0,
            "edited": 0,
            "rejected": 1,
            "acceptance_rate": 0.0,
            "model_accuracy": None,
        },
        {
            "category": "perception",
            "dimension": "scene",
            "decisions": 1,
            "accepted": 0,
            "edited": 1,
            "rejected": 0,
            "acceptance_rate": 1.0,
            "model_accuracy": 1.0,
        },
    ]
