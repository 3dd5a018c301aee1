"""review_submit: versions, decisions, image status, K reviews, conflicts and bad input."""

import copy
from datetime import timedelta

import pytest
from django.utils import timezone

from annotations.errors import InvalidAnnotation, NotAllowed, VersionConflict
from annotations.models import Annotation, AnnotationKind, Image, ImageStatus
from review import queue, selectors, services
from review.models import Disagreement, Draft, ElementDecision, Lease, LeaseState, ReviewSubmission
from tests.factories import DatasetFactory, UserFactory, make_annotation, rect_mask_rle
from tests.review.conftest import accept_each, human_answer, image_in_review

pytestmark = pytest.mark.django_db


def lease_and_payload(dataset, reviewer):
    lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
    return lease, selectors.lease_payload(lease)


def submit(lease, reviewer, payload, **kwargs):
    kwargs.setdefault("decision", "approved")
    kwargs.setdefault("annotation", human_answer(payload))
    return services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"], **kwargs)


def test_submit_creates_a_human_version_with_decisions(dataset, reviewer):
    image = image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    answer = human_answer(payload, label="sadness")
    key = answer["triplets"][0]["key"]
    answer["triplets"][0]["attribute"]["status"] = "rejected"
    decisions = [{"triplet_key": key, "role": "attribute", "action": "reject", "before": {"phrase": "dark, churning"},
                  "after": None, "time_ms": 1500}]
    result = submit(lease, reviewer, payload, annotation=answer, element_decisions=decisions, time_spent_ms=9000)

    version = result.annotation
    assert (version.kind, version.author_name, version.author_user, version.decision) == (
        AnnotationKind.HUMAN, reviewer.username, reviewer, "approved")
    assert version.version == payload["version"] + 1
    assert version.parent_id == payload["base"]["id"]
    assert version.triplets.get().elements.get(role="attribute").status == "rejected"
    assert str(version.triplets.get().key) == key  # the element identity survives the version
    image.refresh_from_db()
    assert (image.status, image.label) == (ImageStatus.APPROVED, "sadness")
    decision = ElementDecision.objects.get()
    assert (decision.action, decision.time_ms, decision.before, decision.reviewer) == ("reject", 1500, {"phrase": "dark, churning"}, reviewer)
    assert ReviewSubmission.objects.get().time_spent_ms == 9000
    lease.refresh_from_db()
    assert lease.state == LeaseState.SUBMITTED
    # The model versions are untouched.
    assert Annotation.objects.filter(image=image, kind=AnnotationKind.MODEL, is_current=True).count() == 3


def test_submit_removes_the_draft(dataset, reviewer):
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    queue.draft_save(lease=lease, reviewer=reviewer, payload={"x": 1})
    submit(lease, reviewer, payload)
    assert not Draft.objects.exists()


@pytest.mark.parametrize("decision, status", [("rejected", ImageStatus.REJECTED), ("flagged", ImageStatus.FLAGGED)])
def test_reject_and_flag_need_a_reason(dataset, reviewer, decision, status):
    image = image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    with pytest.raises(InvalidAnnotation) as info:
        submit(lease, reviewer, payload, decision=decision)
    assert info.value.field == "reason"
    submit(lease, reviewer, payload, decision=decision, reason="not an emotional image")
    image.refresh_from_db()
    assert image.status == status


def test_an_edit_since_the_item_was_opened_is_a_conflict_and_nothing_is_written(dataset, reviewer):
    image = image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    queue.draft_save(lease=lease, reviewer=reviewer, payload={"keep": "me"})
    admin = UserFactory(username="boss", roles=["admin"])
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name="boss", author_user=admin)
    before = Annotation.objects.count()
    with pytest.raises(VersionConflict) as info:
        submit(lease, reviewer, payload)
    changes = info.value.changes
    assert changes["expected_version"] == payload["version"]
    assert changes["current_version"] == payload["version"] + 1
    assert changes["newer_versions"][0]["author_name"] == "boss"
    assert Annotation.objects.count() == before
    assert Draft.objects.get().payload == {"keep": "me"}
    lease.refresh_from_db()
    assert lease.state == LeaseState.ACTIVE


def test_a_second_submit_of_the_same_lease_is_a_conflict(dataset, reviewer):
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    first = submit(lease, reviewer, payload)
    with pytest.raises(VersionConflict) as info:
        submit(lease, reviewer, payload)
    assert info.value.changes == {"already_submitted": True, "version": first.annotation.version}


def test_a_lapsed_lease_nobody_took_can_still_be_submitted(dataset, reviewer):
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert submit(lease, reviewer, payload).image_status == ImageStatus.APPROVED


def test_a_lapsed_lease_someone_else_took_is_refused_and_the_draft_kept(dataset, make_reviewer):
    image_in_review(dataset)
    ann, bob = make_reviewer("ann"), make_reviewer("bob")
    lease, payload = lease_and_payload(dataset, ann)
    queue.draft_save(lease=lease, reviewer=ann, payload={"mine": True})
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    lease_b, payload_b = lease_and_payload(dataset, bob)
    with pytest.raises(VersionConflict, match="taken by another reviewer") as info:
        submit(lease, ann, payload)
    assert info.value.changes == {"lease_lost": True, "taken": True}
    assert Draft.objects.get(reviewer=ann).payload == {"mine": True}
    submit(lease_b, bob, payload_b)  # bob's submit resolves the item; ann's draft is still hers
    assert Draft.objects.get(reviewer=ann).payload == {"mine": True}


def test_a_newer_lease_of_the_same_reviewer_is_a_conflict(dataset, reviewer):
    image_in_review(dataset)
    old, payload = lease_and_payload(dataset, reviewer)
    Lease.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    new, _ = lease_and_payload(dataset, reviewer)  # the lapsed lease closed, a new one opened
    assert new.pk != old.pk  # a second tab still shows the item under the old lease
    with pytest.raises(VersionConflict, match="newer lease") as info:
        submit(old, reviewer, payload)
    assert info.value.changes == {"lease_lost": True, "newer_lease": new.pk}


@pytest.mark.parametrize("status", [ImageStatus.PREANNOTATING, ImageStatus.FLAGGED, ImageStatus.APPROVED])
def test_an_item_that_left_review_meanwhile_is_a_conflict_and_keeps_its_status(dataset, reviewer, status):
    """An admin flagged it, or the pipeline is running on it again: the submit must not overwrite that."""
    image = image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    queue.draft_save(lease=lease, reviewer=reviewer, payload={"mine": True})
    Image.objects.filter(pk=image.pk).update(status=status)
    with pytest.raises(VersionConflict, match="no longer in review") as info:
        submit(lease, reviewer, payload)
    assert info.value.changes == {"lease_lost": True, "image_status": status}
    image.refresh_from_db()
    assert image.status == status and not ReviewSubmission.objects.exists()
    assert Draft.objects.get(reviewer=reviewer).payload == {"mine": True}


def test_a_time_measured_over_days_is_kept_as_the_maximum_not_refused(dataset, reviewer):
    image_in_review(dataset)
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    answer = human_answer(payload)
    key = answer["triplets"][0]["key"]
    week = 7 * 24 * 3600 * 1000
    result = submit(lease, reviewer, payload, annotation=answer, time_spent_ms=week, element_decisions=[
        {"triplet_key": key, "role": "subject", "action": "accept", "before": None, "after": None, "time_ms": week}])
    assert ReviewSubmission.objects.get(annotation=result.annotation).time_spent_ms == services.MAX_TIME_MS
    assert ElementDecision.objects.get().time_ms == services.MAX_TIME_MS
    second, second_payload = lease_and_payload(dataset, reviewer)
    with pytest.raises(InvalidAnnotation, match="at least 0"):
        submit(second, reviewer, second_payload, time_spent_ms=-5)


def test_only_the_lease_holder_can_submit(dataset, make_reviewer):
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, make_reviewer("ann"))
    with pytest.raises(NotAllowed, match="another reviewer"):
        submit(lease, make_reviewer("bob"), payload)


def overlap_dataset(k=2):
    return DatasetFactory(slug=f"overlap-{k}", reviews_per_item=k, overlap_fraction=1.0)


def test_k_reviews_stay_in_review_until_all_are_in_and_do_not_conflict(make_reviewer):
    dataset = overlap_dataset(2)
    image = image_in_review(dataset)
    ann, bob = make_reviewer("ann"), make_reviewer("bob")
    lease_a, payload_a = lease_and_payload(dataset, ann)
    lease_b, payload_b = lease_and_payload(dataset, bob)
    assert submit(lease_a, ann, payload_a).image_status == ImageStatus.IN_REVIEW
    # Bob opened the item before Ann submitted: her independent review is no conflict for him.
    assert submit(lease_b, bob, payload_b).image_status == ImageStatus.APPROVED
    image.refresh_from_db()
    assert image.status == ImageStatus.APPROVED


def test_k_reviews_that_disagree_on_the_label_go_to_adjudication(make_reviewer):
    dataset = overlap_dataset(2)
    image = image_in_review(dataset)
    ann, bob = make_reviewer("ann"), make_reviewer("bob")
    lease_a, payload_a = lease_and_payload(dataset, ann)
    submit(lease_a, ann, payload_a, annotation=human_answer(payload_a, label="awe"))
    lease_b, payload_b = lease_and_payload(dataset, bob)
    assert submit(lease_b, bob, payload_b).image_status == ImageStatus.ADJUDICATION
    image.refresh_from_db()
    assert image.status == ImageStatus.ADJUDICATION


def test_k_reviews_that_disagree_on_an_element_go_to_adjudication(make_reviewer):
    dataset = overlap_dataset(2)
    image_in_review(dataset)
    ann, bob = make_reviewer("ann"), make_reviewer("bob")
    lease_a, payload_a = lease_and_payload(dataset, ann)
    answer = human_answer(payload_a)
    answer["triplets"][0]["subject"]["status"] = "rejected"
    submit(lease_a, ann, payload_a, annotation=answer)
    lease_b, payload_b = lease_and_payload(dataset, bob)
    assert submit(lease_b, bob, payload_b).image_status == ImageStatus.ADJUDICATION


def test_a_reviewer_reviews_an_overlap_item_at_most_once(make_reviewer):
    dataset = overlap_dataset(3)
    image_in_review(dataset)
    ann = make_reviewer("ann")
    lease, payload = lease_and_payload(dataset, ann)
    submit(lease, ann, payload)
    from annotations.errors import NothingToDo
    with pytest.raises(NothingToDo):
        queue.lease_next(dataset=dataset, reviewer=ann)
    assert queue.lease_next(dataset=dataset, reviewer=make_reviewer("bob")).image_id == lease.image_id


@pytest.mark.parametrize("mutate, field", [
    (lambda a, w, h: a["triplets"][0]["subject"].update(box=[0, 0, w + 10, h]), "triplets[0].subject.box"),
    (lambda a, w, h: a["triplets"][0]["subject"].update(mask=rect_mask_rle(w + 1, h, (1, 1, 5, 5))), "triplets[0].subject.mask"),
    (lambda a, w, h: a["triplets"][0]["subject"].update(mask={"size": [h, w], "counts": [w * h]}), "triplets[0].subject.mask"),
    (lambda a, w, h: a["ces"].update(label="joy"), "ces.label"),
    (lambda a, w, h: a["triplets"][0].update(key="not-a-uuid"), "annotation.triplets[0].key"),
    (lambda a, w, h: a["triplets"][0]["subject"].update(phrase="  "), "triplets[0].subject.phrase"),
    (lambda a, w, h: a.pop("ces"), "annotation.ces"),
])
def test_bad_values_are_refused_with_the_field_and_nothing_is_written(dataset, reviewer, mutate, field):
    """Box outside the image, mask of the wrong size, empty mask, unknown label, bad key, blank phrase, no label."""
    image = image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    answer = copy.deepcopy(human_answer(payload))
    mutate(answer, image.width, image.height)
    before = Annotation.objects.count()
    with pytest.raises(InvalidAnnotation) as info:
        submit(lease, reviewer, payload, annotation=answer)
    assert info.value.field == field
    assert Annotation.objects.count() == before


def test_bad_element_decisions_are_refused(dataset, reviewer):
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    key = payload["base"]["triplets"][0]["key"]
    with pytest.raises(InvalidAnnotation) as info:
        submit(lease, reviewer, payload, element_decisions=[{"triplet_key": key, "role": "subject", "action": "explode"}])
    assert info.value.field == "element_decisions[0].action"
    with pytest.raises(InvalidAnnotation) as info:
        submit(lease, reviewer, payload, element_decisions=[{"triplet_key": key, "role": "subject", "action": "accept", "time_ms": -4}])
    assert info.value.field == "element_decisions[0].time_ms"


# ---- explicit checks: how each element was decided --------------------------------------------


def element_statuses(annotation) -> dict[str, str]:
    return {e.role: e.status for t in annotation.triplets.all() for e in t.elements.all()}


def decision_of(answer: dict, role: str, action: str) -> dict:
    return {"triplet_key": answer["triplets"][0]["key"], "role": role, "action": action, "before": None, "after": None}


def test_an_element_the_reviewer_acted_on_is_accepted_and_one_never_looked_at_is_accepted_unchecked(dataset, reviewer):
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    answer = human_answer(payload)  # every element sent as "accepted"
    answer["triplets"][0]["subject"].update(phrase="fishing boat", status="edited")
    decisions = [decision_of(answer, "background", "accept"), decision_of(answer, "subject", "edit_phrase")]
    result = submit(lease, reviewer, payload, annotation=answer, element_decisions=decisions)
    assert element_statuses(result.annotation) == {"background": "accepted", "attribute": "accepted_unchecked",
                                                   "subject": "edited"}
    assert result.unchecked == 1


def test_a_pending_element_with_an_accept_decision_is_accepted(dataset, reviewer):
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    answer = human_answer(payload)
    for role in ("background", "attribute", "subject"):
        answer["triplets"][0][role]["status"] = "pending"
    result = submit(lease, reviewer, payload, annotation=answer, element_decisions=[decision_of(answer, "attribute", "accept")])
    assert element_statuses(result.annotation) == {"background": "accepted_unchecked", "attribute": "accepted",
                                                   "subject": "accepted_unchecked"}


def test_rejecting_an_item_leaves_its_unchecked_elements_pending(dataset, reviewer):
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    result = submit(lease, reviewer, payload, decision="rejected", reason="not an emotional image")
    assert set(element_statuses(result.annotation).values()) == {"pending"}
    assert result.unchecked == 3


def test_an_unchecked_element_gives_no_disagreement_row_and_a_checked_one_does(dataset, make_reviewer):
    """gemini-2.5 named the subject "lone boat"; the base (the reviewer's answer) says "small boat"."""
    image_in_review(dataset)
    image_in_review(dataset)
    unchecked_by, checked_by = make_reviewer("ann"), make_reviewer("bob")
    lease, payload = lease_and_payload(dataset, unchecked_by)
    first = submit(lease, unchecked_by, payload)
    assert first.unchecked == 3
    assert not Disagreement.objects.filter(annotation=first.annotation, field="element_phrase").exists()
    lease, payload = lease_and_payload(dataset, checked_by)
    answer = human_answer(payload)
    second = submit(lease, checked_by, payload, annotation=answer, element_decisions=accept_each(answer))
    assert second.unchecked == 0
    row = Disagreement.objects.get(annotation=second.annotation, field="element_phrase")
    assert (row.model_name, row.model_value, row.human_value) == ("gemini-2.5", "lone boat", "small boat")


def test_require_all_checked_refuses_to_approve_with_unchecked_elements_and_writes_nothing(dataset, reviewer):
    dataset.require_all_checked = True
    dataset.save()
    image = image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    queue.draft_save(lease=lease, reviewer=reviewer, payload={"keep": "me"})
    answer = human_answer(payload)
    counts = lambda: (Annotation.objects.count(), ElementDecision.objects.count(), Disagreement.objects.count(),  # noqa: E731
                      ReviewSubmission.objects.count())
    before = counts()
    with pytest.raises(InvalidAnnotation) as info:
        submit(lease, reviewer, payload, annotation=answer, element_decisions=accept_each(answer)[:1])
    assert info.value.field == "element_decisions"
    assert info.value.message.startswith("2 elements are not checked yet")
    assert "Shift+A" in info.value.message
    assert counts() == before
    assert Draft.objects.get().payload == {"keep": "me"}
    lease.refresh_from_db()
    image.refresh_from_db()
    assert (lease.state, image.status) == (LeaseState.ACTIVE, ImageStatus.IN_REVIEW)

    result = submit(lease, reviewer, payload, annotation=answer, element_decisions=accept_each(answer))
    assert (result.image_status, result.unchecked) == (ImageStatus.APPROVED, 0)
    assert set(element_statuses(result.annotation).values()) == {"accepted"}


def test_require_all_checked_lets_an_item_be_rejected_unchecked(dataset, reviewer):
    dataset.require_all_checked = True
    dataset.save()
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    assert submit(lease, reviewer, payload, decision="flagged", reason="unclear").image_status == ImageStatus.FLAGGED


def test_shift_a_accepts_all_remaining_as_one_recorded_explicit_act(dataset, reviewer):
    dataset.require_all_checked = True
    dataset.save()
    image_in_review(dataset)
    lease, payload = lease_and_payload(dataset, reviewer)
    answer = human_answer(payload)
    answer["triplets"][0]["attribute"]["status"] = "rejected"
    result = submit(lease, reviewer, payload, annotation=answer, element_decisions=accept_each(answer, "accept_all"))
    assert element_statuses(result.annotation) == {"background": "accepted", "attribute": "rejected", "subject": "accepted"}
    assert result.unchecked == 0
    actions = dict(ElementDecision.objects.filter(annotation=result.annotation).values_list("role", "action"))
    assert actions == {"background": "accept_all", "attribute": "reject", "subject": "accept_all"}
