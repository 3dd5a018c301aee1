"""The review API over HTTP: next, draft, submit (201/400/409), release, progress, refine,
adjudication and the disagreement log."""

from unittest import mock

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout
from django.contrib.auth.models import Group
from django.urls import reverse
from rest_framework.renderers import JSONRenderer

from annotations.models import Annotation, AnnotationKind, Image, ImageStatus
from review.models import Disagreement
from tests.factories import DatasetFactory, make_annotation, rect_mask_rle
from tests.review.conftest import accept_each, human_answer, image_in_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_reviewer(api_client, reviewer):
    api_client.force_authenticate(reviewer)
    return api_client


def next_item(client, slug="demo"):
    return client.post("/api/review/next/", {"dataset": slug}, format="json")


def submit(client, item, **body):
    body.setdefault("expected_version", item["version"])
    body.setdefault("decision", "approved")
    body.setdefault("annotation", human_answer(item))
    return client.post(f"/api/review/leases/{item['lease']['id']}/submit/", body, format="json")


def reviewed_twice_apart(client, make_reviewer):
    """An image of dataset "pairs" (two reviews per item) that ann (awe) and bob (fear) reviewed: up for adjudication."""
    dataset = DatasetFactory(slug="pairs", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset)
    for name, label in (("ann", "awe"), ("bob", "fear")):
        client.force_authenticate(make_reviewer(name))
        item = next_item(client, "pairs").json()
        assert submit(client, item, annotation=human_answer(item, label=label)).status_code == 201
    return image


def test_next_returns_the_item_with_base_annotators_and_critic(as_reviewer, dataset):
    image = image_in_review(dataset)
    Annotation.objects.filter(image=image, author_name="pipeline").update(critic={"label_verdict": "ok", "elements": []})
    r = next_item(as_reviewer)
    assert r.status_code == 200
    item = r.json()
    assert item["image"]["id"] == image.pk and item["image"]["url"] == reverse("image-file", args=[image.pk])
    assert (item["image"]["width"], item["image"]["height"]) == (image.width, image.height)
    assert item["version"] == 3 and item["lease"]["dataset"] == "demo"
    assert item["base"]["author_name"] == "pipeline" and item["base"]["triplets"][0]["subject"]["mask"]["size"] == [48, 64]
    assert [a["author_name"] for a in item["annotators"]] == ["gemini-2.5", "gpt-4o"]
    assert item["disagreement"]["label"] == {"values": {"gemini-2.5": "awe", "gpt-4o": "fear"}, "agree": False}
    assert item["critic"] == {"label_verdict": "ok", "elements": []}
    assert item["draft"] is None
    assert item["require_all_checked"] is False and item["earlier_annotators"] == []


def test_next_on_an_empty_queue_is_404_with_a_message(as_reviewer, dataset):
    r = next_item(as_reviewer)
    assert r.status_code == 404 and r.json()["detail"] == "No item left to review in demo."
    assert next_item(as_reviewer, "nope").status_code == 404


def test_draft_round_trip_and_reload_returns_it(as_reviewer, dataset):
    image_in_review(dataset)
    item = next_item(as_reviewer).json()
    url = f"/api/review/leases/{item['lease']['id']}/draft/"
    assert as_reviewer.get(url).status_code == 404
    r = as_reviewer.put(url, {"payload": {"label": "awe", "elements": {"0:subject": "rejected"}}}, format="json")
    assert r.status_code == 200 and r.json()["saved_at"]
    assert as_reviewer.get(url).json()["payload"]["label"] == "awe"
    reloaded = next_item(as_reviewer).json()
    assert reloaded["lease"]["id"] == item["lease"]["id"]
    assert reloaded["draft"]["payload"] == {"label": "awe", "elements": {"0:subject": "rejected"}}


def test_submit_answers_201_with_the_new_version(as_reviewer, dataset):
    image_in_review(dataset)
    item = next_item(as_reviewer).json()
    answer = human_answer(item, label="sadness")
    r = submit(as_reviewer, item, annotation=answer, element_decisions=accept_each(answer), time_spent_ms=4200)
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["version"] == item["version"] + 1 and body["image_status"] == "approved"
    # The label differs from each of the 3 models; gemini-2.5 also named the (checked) subject differently.
    assert body["disagreements"] == Disagreement.objects.count() == 4
    assert body["unchecked"] == 0
    assert Annotation.objects.get(pk=body["annotation_id"]).kind == AnnotationKind.HUMAN
    # written as DRF's JSONRenderer writes it (the view sends orjson's bytes)
    assert r["Content-Type"] == "application/json" and r.content == JSONRenderer().render(body)


def test_submit_answers_the_browsable_api_and_indented_json_through_drf(as_reviewer, dataset):
    image_in_review(dataset)
    item = next_item(as_reviewer).json()
    answer = human_answer(item)
    r = as_reviewer.post(f"/api/review/leases/{item['lease']['id']}/submit/",
                         {"expected_version": item["version"], "decision": "approved", "annotation": answer,
                          "element_decisions": accept_each(answer)}, format="json", HTTP_ACCEPT="application/json; indent=2")
    assert r.status_code == 201 and r.content.startswith(b'{\n  "annotation_id"')


def test_approving_unchecked_elements_under_require_all_checked_answers_400_and_writes_nothing(as_reviewer, dataset):
    dataset.require_all_checked = True
    dataset.save()
    image_in_review(dataset)
    item = next_item(as_reviewer).json()
    assert item["require_all_checked"] is True
    answer = human_answer(item)
    before = Annotation.objects.count()
    r = submit(as_reviewer, item, annotation=answer)
    assert r.status_code == 400
    body = r.json()
    assert body["field"] == "element_decisions" and "3 elements are not checked yet" in body["detail"]
    assert Annotation.objects.count() == before and not Disagreement.objects.exists()
    r = submit(as_reviewer, item, annotation=answer, element_decisions=accept_each(answer, "accept_all"))
    assert r.status_code == 201 and r.json()["unchecked"] == 0


def test_a_conflict_answers_409_with_the_changes_and_keeps_the_draft(as_reviewer, dataset):
    image = image_in_review(dataset)
    item = next_item(as_reviewer).json()
    draft_url = f"/api/review/leases/{item['lease']['id']}/draft/"
    as_reviewer.put(draft_url, {"payload": {"work": "in progress"}}, format="json")
    make_annotation(image, author_name="pipeline", payload_kwargs={"label": "awe"})  # pipeline re-ran meanwhile
    r = submit(as_reviewer, item)
    assert r.status_code == 409
    body = r.json()
    assert body["changes"]["current_version"] == item["version"] + 1
    assert body["changes"]["newer_versions"][0]["author_name"] == "pipeline"
    assert "your work is kept" in body["detail"]
    assert as_reviewer.get(draft_url).json()["payload"] == {"work": "in progress"}
    # After looking at the changes, the reviewer can submit against the current version.
    assert submit(as_reviewer, item, expected_version=body["changes"]["current_version"]).status_code == 201


@pytest.mark.parametrize("change, field, words", [
    ({"box": [0, 0, 500, 10]}, "triplets[0].subject.box", "outside"),
    ({"mask": rect_mask_rle(10, 10, (0, 0, 5, 5))}, "triplets[0].subject.mask", "differs from the image size"),
    ({"mask": {"size": [48, 64], "counts": [48 * 64]}}, "triplets[0].subject.mask", "empty"),
])
def test_bad_element_values_answer_400_with_the_field(as_reviewer, dataset, change, field, words):
    image_in_review(dataset)
    item = next_item(as_reviewer).json()
    answer = human_answer(item)
    answer["triplets"][0]["subject"].update(change)
    r = submit(as_reviewer, item, annotation=answer)
    assert r.status_code == 400
    assert r.json()["field"] == field and words in r.json()["detail"]


def test_unknown_label_and_decision_answer_400(as_reviewer, dataset):
    image_in_review(dataset)
    item = next_item(as_reviewer).json()
    r = submit(as_reviewer, item, annotation=human_answer(item, label="joy"))
    assert r.status_code == 400 and r.json()["field"] == "ces.label"
    assert submit(as_reviewer, item, decision="maybe").status_code == 400
    r = submit(as_reviewer, item, decision="rejected")
    assert r.status_code == 400 and r.json()["field"] == "reason"


@pytest.mark.parametrize("version", [2**31, 10**12, 10**19])
def test_a_version_past_any_stored_one_answers_400_and_writes_nothing(as_reviewer, dataset, version):
    """Versions are 32-bit columns: on PostgreSQL a larger expected_version reached review_submit as a
    bigint or numeric argument, found no such function and answered 500."""
    image_in_review(dataset)
    item = next_item(as_reviewer).json()
    r = submit(as_reviewer, item, expected_version=version)
    assert r.status_code == 400 and r.json()["field"] == "expected_version"
    assert not Annotation.objects.filter(kind=AnnotationKind.HUMAN).exists()
    assert submit(as_reviewer, item).status_code == 201


def test_an_adjudication_with_a_version_past_any_stored_one_answers_400(api_client, make_reviewer, adjudicator):
    image = reviewed_twice_apart(api_client, make_reviewer)
    api_client.force_authenticate(adjudicator)
    detail = api_client.get(f"/api/review/adjudication/{image.pk}/").json()
    r = api_client.post(f"/api/review/adjudication/{image.pk}/", {"expected_version": 2**31,
                        "annotation": human_answer(detail, label="fear"), "reason": "fear"}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "expected_version"


def test_release_and_skip_answer_204(as_reviewer, dataset):
    image_in_review(dataset)
    item = next_item(as_reviewer).json()
    assert as_reviewer.post(f"/api/review/leases/{item['lease']['id']}/release/").status_code == 204
    item = next_item(as_reviewer).json()
    assert as_reviewer.post(f"/api/review/leases/{item['lease']['id']}/skip/").status_code == 204
    assert as_reviewer.post("/api/review/leases/999999/skip/").status_code == 404


def test_progress_counts_done_in_review_left_and_per_reviewer(as_reviewer, dataset):
    for _ in range(3):
        image_in_review(dataset, annotators=False)
    submit(as_reviewer, next_item(as_reviewer).json())
    next_item(as_reviewer)
    r = as_reviewer.get("/api/review/progress/?dataset=demo")
    assert r.json() == {"dataset": "demo", "total": 3, "done": 1, "in_review": 1, "adjudication": 0, "left": 1,
                        "per_reviewer": [{"username": "reviewer1", "done": 1}], "you": {"reviewed": 1, "left": 1}}


def leased_image(client, dataset):
    """An image in review that ``client``'s reviewer holds the lease of (refine needs one)."""
    image = image_in_review(dataset, annotators=False)
    assert next_item(client).json()["image"]["id"] == image.pk
    return image


def test_refine_needs_a_live_lease_or_the_adjudication_of_the_image(as_reviewer, api_client, dataset, settings,
                                                                     make_reviewer, adjudicator):
    settings.EMOVERSE_ML = {}  # past the permission check the answer is 503 (no segmenter)
    body = {"points": [[10, 10]], "labels": [1]}
    image = image_in_review(dataset, annotators=False)
    other = make_reviewer("other")
    api_client.force_authenticate(other)
    assert next_item(api_client).json()["image"]["id"] == image.pk
    r = api_client.post("/api/review/refine/", {"image_id": image.pk, **body}, format="json")
    assert r.status_code == 503  # other holds the lease
    api_client.force_authenticate(make_reviewer("nolease"))
    r = api_client.post("/api/review/refine/", {"image_id": image.pk, **body}, format="json")
    assert r.status_code == 403 and "hold its lease" in r.json()["detail"]
    api_client.force_authenticate(adjudicator)
    assert api_client.post("/api/review/refine/", {"image_id": image.pk, **body}, format="json").status_code == 403
    Image.objects.filter(pk=image.pk).update(status=ImageStatus.ADJUDICATION)
    assert api_client.post("/api/review/refine/", {"image_id": image.pk, **body}, format="json").status_code == 503


def test_refine_without_a_segmenter_answers_503_saying_what_to_configure(as_reviewer, reviewer, dataset, settings):
    image = leased_image(as_reviewer, dataset)
    settings.EMOVERSE_ML = {}
    r = as_reviewer.post("/api/review/refine/", {"image_id": image.pk, "points": [[10, 10]], "labels": [1]}, format="json")
    assert r.status_code == 503 and r.json()["detail"] == "Click-to-refine is not set up on this server."
    reviewer.groups.add(Group.objects.get_or_create(name="admin")[0])  # what to configure is for admins
    reviewer.__dict__.pop("_emoverse_roles", None)  # roles are cached on the user
    r = as_reviewer.post("/api/review/refine/", {"image_id": image.pk, "points": [[10, 10]], "labels": [1]}, format="json")
    assert r.status_code == 503
    assert "no segmenter is configured" in r.json()["detail"] and "EMOVERSE_ML_CONFIG" in r.json()["detail"]


def test_refine_without_a_broker_answers_503(as_reviewer, reviewer, dataset, settings):
    image = leased_image(as_reviewer, dataset)
    settings.EMOVERSE_ML = {"segmenter": {"backend": "sam"}}
    settings.CELERY_TASK_ALWAYS_EAGER = True
    r = as_reviewer.post("/api/review/refine/", {"image_id": image.pk, "points": [[10, 10]], "labels": [1]}, format="json")
    assert r.status_code == 503 and r.json()["detail"] == "Click-to-refine is not set up on this server."
    reviewer.groups.add(Group.objects.get_or_create(name="admin")[0])
    reviewer.__dict__.pop("_emoverse_roles", None)  # roles are cached on the user
    r = as_reviewer.post("/api/review/refine/", {"image_id": image.pk, "points": [[10, 10]], "labels": [1]}, format="json")
    assert r.status_code == 503 and "CELERY_BROKER_URL" in r.json()["detail"]


@pytest.fixture
def gpu_configured(settings):
    settings.EMOVERSE_ML = {"segmenter": {"backend": "sam"}}
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_RESULT_BACKEND = "redis://127.0.0.1:6379/0"
    settings.EMOVERSE_REFINE_TIMEOUT_S = 3


def test_refine_sends_the_task_to_the_refine_queue_and_returns_its_mask(as_reviewer, dataset, gpu_configured):
    image = leased_image(as_reviewer, dataset)
    mask = rect_mask_rle(64, 48, (5, 5, 20, 20))
    result = mock.Mock()
    result.get.return_value = {"mask": mask, "score": 0.93}
    with mock.patch("review.refine.celery_app.send_task", return_value=result) as send:
        r = as_reviewer.post("/api/review/refine/", {"image_id": image.pk, "box": [1, 1, 30, 30], "points": [[10, 12]],
                                                     "labels": [1]}, format="json")
    assert r.status_code == 200 and r.json() == {"mask": mask, "score": 0.93}
    send.assert_called_once_with("ml.tasks.gpu_refine_mask", args=[image.pk, [1.0, 1.0, 30.0, 30.0], [[10.0, 12.0]], [1]], queue="refine", expires=3)
    result.get.assert_called_once_with(timeout=3)


def test_refine_timeout_answers_504(as_reviewer, dataset, gpu_configured):
    image = leased_image(as_reviewer, dataset)
    result = mock.Mock()
    result.get.side_effect = CeleryTimeout("late")
    with mock.patch("review.refine.celery_app.send_task", return_value=result):
        r = as_reviewer.post("/api/review/refine/", {"image_id": image.pk, "points": [[10, 12]], "labels": [1]}, format="json")
    assert r.status_code == 504 and "timed out" in r.json()["detail"]


def test_refine_refuses_points_outside_the_image(as_reviewer, dataset):
    image = leased_image(as_reviewer, dataset)
    r = as_reviewer.post("/api/review/refine/", {"image_id": image.pk, "points": [[100, 10]], "labels": [1]}, format="json")
    assert r.status_code == 400 and r.json()["field"] == "points[0]"


def test_adjudication_over_http(api_client, make_reviewer, adjudicator):
    image = reviewed_twice_apart(api_client, make_reviewer)
    api_client.force_authenticate(adjudicator)
    queue_page = api_client.get("/api/review/adjudication/?dataset=pairs").json()
    assert [row["id"] for row in queue_page["results"]] == [image.pk]
    detail = api_client.get(f"/api/review/adjudication/{image.pk}/").json()
    assert [r["reviewer"] for r in detail["reviews"]] == ["ann", "bob"]
    r = api_client.post(f"/api/review/adjudication/{image.pk}/", {"expected_version": detail["version"],
                        "annotation": human_answer(detail, label="fear"), "reason": "fear fits the waves"}, format="json")
    assert r.status_code == 201 and r.json()["image_status"] == "approved"


def test_disagreement_log_filters_and_paginates(api_client, make_reviewer, researcher, dataset):
    ann = make_reviewer("ann")
    api_client.force_authenticate(ann)
    for _ in range(3):
        image_in_review(dataset)
        item = next_item(api_client).json()
        submit(api_client, item, annotation=human_answer(item, label="sadness"))
    api_client.force_authenticate(researcher)
    r = api_client.get("/api/review/disagreements/?dataset=demo&model=gemini-2.5&field=ces_label&page_size=2")
    body = r.json()
    assert r.status_code == 200 and len(body["results"]) == 2 and body["next"]
    row = body["results"][0]
    assert (row["model_name"], row["field"], row["model_value"], row["human_value"], row["reviewer"]) == (
        "gemini-2.5", "ces_label", "awe", "sadness", "ann")
    rest = api_client.get(body["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None
    assert api_client.get("/api/review/disagreements/?reviewer=nobody").json()["results"] == []
    assert api_client.get("/api/review/disagreements/?field=colour").status_code == 400


def test_every_review_endpoint_is_in_the_openapi_schema(api_client, admin_user):
    api_client.force_authenticate(admin_user)
    schema = api_client.get("/api/schema/?format=json").json()
    paths = set(schema["paths"])
    for path in ("/api/review/next/", "/api/review/leases/{id}/release/", "/api/review/leases/{id}/skip/",
                 "/api/review/leases/{id}/draft/", "/api/review/leases/{id}/submit/", "/api/review/progress/",
                 "/api/review/refine/", "/api/review/adjudication/", "/api/review/adjudication/{image_id}/",
                 "/api/review/disagreements/"):
        assert path in paths, path
    assert "SubmitInputRequest" in schema["components"]["schemas"]


def _phrase_only(*triplets):
    return {"triplets": [{"background": {"phrase": b}, "attribute": {"phrase": a}, "subject": {"phrase": s}}
                         for b, a, s in triplets],
            "ces": {"label": "awe"}, "rationale": ""}


def test_the_annotators_panel_pairs_triplets_by_content_not_by_position(as_reviewer, dataset):
    """gpt-4o lists the boat first, gemini the lighthouse first: the rows pair the boats and
    the lighthouses, and gemini's extra triplet gets a row of its own."""
    image = image_in_review(dataset, annotators=False)
    make_annotation(image, author_name="gpt-4o", payload=_phrase_only(
        ("stormy sea", "dark, churning", "small boat"), ("night sky", "cold", "lighthouse")))
    make_annotation(image, author_name="gemini-2.5", payload=_phrase_only(
        ("black sky", "cold, distant", "the lighthouse"), ("rough sea", "dark", "a small boat"), ("clouds", "heavy", "moon")))
    rows = next_item(as_reviewer).json()["disagreement"]["triplets"]
    subjects = [(r["index"], r["values"]) for r in rows if r["role"] == "subject"]
    assert subjects == [  # in the order of the first annotator (by name): gemini-2.5
        (0, {"gemini-2.5": "the lighthouse", "gpt-4o": "lighthouse"}),
        (1, {"gemini-2.5": "a small boat", "gpt-4o": "small boat"}),
        (2, {"gemini-2.5": "moon", "gpt-4o": None}),
    ]
    # "the lighthouse" and "lighthouse" say the same (same content words: no embeddings here),
    # gemini's moon has no counterpart: only that row is marked for the reviewer.
    assert [r["agree"] for r in rows if r["role"] == "subject"] == [True, True, False]
    assert {r["paired_by"] for r in rows if r["index"] < 2} == {"words"} and rows[-1]["paired_by"] == ""
    alignment = next_item(as_reviewer).json()["disagreement"]["alignment"]
    assert alignment["method"] == "words" and alignment["fallback"] and alignment["note"].startswith("paired by words")
