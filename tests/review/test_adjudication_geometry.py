"""Adjudication that decides geometry: why items conflict (queue page and API), and a final answer
whose boxes and masks the adjudicator edited (validated as a review submit, recorded as edits)."""

import pytest
from django.urls import reverse

from annotations.models import Annotation, AnnotationKind, ImageStatus
from core.masks import mask_area
from review import queue, selectors, services
from review.models import ElementDecision
from review.disagreements import reviews_conflict
from tests.factories import DatasetFactory, rect_mask_rle
from tests.review.conftest import human_answer, image_in_review

pytestmark = pytest.mark.django_db


def reviewed(make_reviewer, edits):
    """An image two reviewers answered; ``edits[name](answer, image)`` changes that reviewer's answer."""
    dataset = DatasetFactory(slug="geo", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset)
    for name in ("ann", "bob"):
        reviewer = make_reviewer(name)
        lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
        payload = selectors.lease_payload(lease)
        answer = human_answer(payload)
        edits.get(name, lambda a, i: None)(answer, image)
        services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                               annotation=answer)
    image.refresh_from_db()
    assert image.status == ImageStatus.ADJUDICATION
    return image


def label(value):
    def edit(answer, image):
        answer["ces"]["label"] = value
    return edit


def drop_attribute_and_shrink_subject(answer, image):
    answer["triplets"][0]["attribute"]["status"] = "rejected"
    w, h = image.width, image.height
    box = [w // 4, h // 4, w // 4 + w // 16, h // 4 + h // 16]  # a sixteenth of the reviewers' other box
    answer["triplets"][0]["subject"].update({"box": box, "mask": rect_mask_rle(w, h, tuple(box)), "status": "edited"})


def test_the_conflict_names_the_labels(make_reviewer, settings):
    image = reviewed(make_reviewer, {"ann": label("awe"), "bob": label("fear")})
    conflict = selectors.adjudication_conflicts([image])[image.pk]
    assert (conflict["labels"], conflict["elements"], conflict["geometry"]) == (["awe", "fear"], 0, None)
    assert conflict["reasons"] == ["label: awe / fear"]


def test_the_conflict_counts_elements_and_gives_the_lowest_iou(make_reviewer):
    image = reviewed(make_reviewer, {"bob": drop_attribute_and_shrink_subject})
    conflict = selectors.adjudication_conflicts([image])[image.pk]
    assert (conflict["labels"], conflict["elements"]) == ([], 1)
    assert conflict["geometry"] == pytest.approx(1 / 16, abs=0.01)
    assert conflict["reasons"][0].startswith("elements: 1 kept by one reviewer")
    assert conflict["reasons"][1].startswith("geometry: IoU 0.06 < 0.75")


def test_geometry_above_the_threshold_is_no_conflict():
    element = {"phrase": "boat", "box": [0, 0, 10, 10], "status": "accepted"}
    near = {**element, "box": [0, 0, 10, 9]}
    reviews = [{"ces": {"label": "awe"}, "triplets": [{"key": "k", "subject": e}]} for e in (element, near)]
    assert reviews_conflict(reviews, min_iou=0.75)["geometry"] is None
    assert reviews_conflict(reviews, min_iou=0.95)["geometry"] == pytest.approx(0.9)


def test_the_queue_page_and_api_say_why(make_reviewer, adjudicator, client, api_client):
    image = reviewed(make_reviewer, {"ann": label("awe"), "bob": drop_attribute_and_shrink_subject})
    client.force_login(adjudicator)
    html = client.get(reverse("adjudication-queue")).content.decode()
    assert "label: awe / fear" in html and "elements: 1 kept by one reviewer" in html and "geometry: IoU 0.06" in html
    api_client.force_authenticate(adjudicator)
    row = api_client.get(reverse("api-adjudication-queue")).json()["results"][0]
    assert row["id"] == image.pk
    assert (row["conflict"]["labels"], row["conflict"]["elements"]) == (["awe", "fear"], 1)
    item = api_client.get(reverse("api-adjudication-item", args=[image.pk])).json()
    assert item["conflict"]["labels"] == ["awe", "fear"] and "critic" in item
    assert item["disagreement"]["label"]["values"] == {"gemini-2.5": "awe", "gpt-4o": "fear"}


def test_an_edited_mask_and_box_are_stored_and_recorded(make_reviewer, adjudicator, api_client):
    image = reviewed(make_reviewer, {"bob": drop_attribute_and_shrink_subject})
    payload = selectors.adjudication_payload(image)
    answer = human_answer(payload, label="fear")  # the model's answer, which ann kept as it was
    w, h = image.width, image.height
    grown = (w // 4, h // 4, w * 3 // 4, h * 3 // 4)
    answer["triplets"][0]["subject"].update({"box": list(grown), "mask": rect_mask_rle(w, h, grown), "status": "edited"})
    answer["ces"]["confidence"] = 0.8
    api_client.force_authenticate(adjudicator)
    response = api_client.post(reverse("api-adjudication-item", args=[image.pk]),
                               {"expected_version": payload["version"], "annotation": answer}, format="json")
    assert response.status_code == 201, response.json()
    final = Annotation.objects.get(image=image, kind=AnnotationKind.ADJUDICATION)
    subject = final.triplets.get().elements.get(role="subject")
    assert mask_area(subject.mask) == (w // 2) * (h // 2) and list(subject.box) == list(grown)
    assert final.ces_confidence == 0.8 and final.extra["confidence_from"] == "adjudicator"
    rows = ElementDecision.objects.filter(annotation=final)
    assert {(d.role, d.action) for d in rows} == {
        ("subject", "edit_box"), ("subject", "edit_mask"), ("background", "accept"), ("attribute", "accept")}
    assert {(d.kind, d.submission_id, d.reviewer_id) for d in rows} == {("adjudication", None, adjudicator.pk)}
    assert "element_decisions" not in final.extra  # one place: the rows


def test_the_adjudicators_element_decisions_are_rows_beside_the_reviewers(make_reviewer, adjudicator, api_client):
    """A reject and a phrase edit by the adjudicator are ElementDecision rows of kind adjudication, read
    like the reviewers' rows, in the one table."""
    image = reviewed(make_reviewer, {"bob": drop_attribute_and_shrink_subject})
    payload = selectors.adjudication_payload(image)
    answer = human_answer(payload, label="fear")
    key = answer["triplets"][0]["key"]
    answer["triplets"][0]["attribute"]["status"] = "rejected"
    answer["triplets"][0]["background"].update({"phrase": "an open field", "status": "edited"})
    api_client.force_authenticate(adjudicator)
    response = api_client.post(reverse("api-adjudication-item", args=[image.pk]),
                               {"expected_version": payload["version"], "annotation": answer}, format="json")
    assert response.status_code == 201, response.json()
    final = Annotation.objects.get(image=image, kind=AnnotationKind.ADJUDICATION)
    adjudicated = ElementDecision.objects.filter(image=image, kind="adjudication")
    assert set(adjudicated.values_list("annotation_id", flat=True)) == {final.pk}
    by_role = {d.role: d for d in adjudicated}
    assert by_role["attribute"].action == "reject" and str(by_role["attribute"].triplet_key) == key
    assert (by_role["background"].action, by_role["background"].after) == ("edit_phrase", "an open field")
    assert by_role["subject"].action == "accept"  # the model's subject, which ann kept as it was


@pytest.mark.parametrize(("change", "field"), [
    (lambda s, w, h: s.update({"box": [0, 0, w + 50, h]}), "triplets[0].subject.box"),
    (lambda s, w, h: s.update({"mask": rect_mask_rle(w + 1, h, (0, 0, 4, 4))}), "triplets[0].subject.mask"),
])
def test_bad_geometry_is_a_400_naming_the_field(make_reviewer, adjudicator, api_client, change, field):
    image = reviewed(make_reviewer, {"bob": drop_attribute_and_shrink_subject})
    payload = selectors.adjudication_payload(image)
    answer = human_answer(payload, label="fear")
    change(answer["triplets"][0]["subject"], image.width, image.height)
    api_client.force_authenticate(adjudicator)
    response = api_client.post(reverse("api-adjudication-item", args=[image.pk]),
                               {"expected_version": payload["version"], "annotation": answer}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) >= {"detail", "field"} and body["field"].startswith(field)
    assert not Annotation.objects.filter(image=image, kind=AnnotationKind.ADJUDICATION).exists()
