"""Adjudication: items whose independent reviews disagree get a final answer."""

import pytest

from annotations.errors import NotAllowed, VersionConflict
from annotations.models import Annotation, AnnotationKind, ImageStatus
from review import adjudication, queue, selectors, services
from review.models import Disagreement
from tests.factories import DatasetFactory, UserFactory, distribution_for
from tests.review.conftest import human_answer, image_in_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def disputed(make_reviewer):
    """An image two reviewers labelled differently (awe vs fear): waiting for adjudication."""
    dataset = DatasetFactory(slug="pairs", reviews_per_item=2, overlap_fraction=1.0)
    image = image_in_review(dataset)
    for name, label in (("ann", "awe"), ("bob", "fear")):
        reviewer = make_reviewer(name)
        lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
        payload = selectors.lease_payload(lease)
        services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                               annotation=human_answer(payload, label=label))
    image.refresh_from_db()
    assert image.status == ImageStatus.ADJUDICATION
    return image


def test_the_adjudicator_sees_every_review_side_by_side(disputed, adjudicator):
    payload = selectors.adjudication_payload(disputed)
    assert [(r["reviewer"], r["ces"]["label"]) for r in payload["reviews"]] == [("ann", "awe"), ("bob", "fear")]
    assert payload["base"]["author_name"] == "pipeline"
    assert {a["author_name"] for a in payload["annotators"]} == {"gpt-4o", "gemini-2.5"}
    assert list(selectors.adjudication_queue(user=adjudicator)) == [disputed]


def test_adjudication_sets_the_final_answer(disputed, adjudicator):
    payload = selectors.adjudication_payload(disputed)
    answer = human_answer(payload, label="awe")
    result = adjudication.adjudication_submit(image=disputed, adjudicator=adjudicator, expected_version=payload["version"],
                                          annotation=answer)
    disputed.refresh_from_db()
    assert (disputed.status, disputed.label) == (ImageStatus.APPROVED, "awe")
    assert result.annotation.kind == AnnotationKind.ADJUDICATION and result.annotation.author_user == adjudicator
    rows = Disagreement.objects.filter(annotation=result.annotation)
    assert rows.count() == result.disagreements > 0
    assert set(rows.values_list("kind", flat=True)) == {"adjudication"}
    assert set(rows.filter(field="ces_label").values_list("model_name", flat=True)) == {"pipeline", "gpt-4o"}
    assert list(selectors.adjudication_queue(user=adjudicator)) == []


def test_the_elements_an_adjudicator_keeps_are_accepted_even_when_the_review_left_them_unchecked(disputed, adjudicator):
    payload = selectors.adjudication_payload(disputed)
    review = payload["reviews"][0]
    assert {review["triplets"][0][r]["status"] for r in ("background", "attribute", "subject")} == {"accepted_unchecked"}
    answer = {"triplets": [{k: v for k, v in review["triplets"][0].items()}], "ces": {"label": "awe"}, "rationale": ""}
    answer["triplets"][0]["attribute"] = {**answer["triplets"][0]["attribute"], "status": "rejected"}
    result = adjudication.adjudication_submit(image=disputed, adjudicator=adjudicator, expected_version=payload["version"],
                                          annotation=answer)
    statuses = {e.role: e.status for t in result.annotation.triplets.all() for e in t.elements.all()}
    assert statuses == {"background": "accepted", "attribute": "rejected", "subject": "accepted"}


def test_a_stale_adjudication_is_a_conflict(disputed, adjudicator):
    payload = selectors.adjudication_payload(disputed)
    adjudication.adjudication_submit(image=disputed, adjudicator=adjudicator, expected_version=payload["version"],
                                 annotation=human_answer(payload))
    other = UserFactory(username="adj2", roles=["adjudicator"])
    with pytest.raises(VersionConflict):
        adjudication.adjudication_submit(image=disputed, adjudicator=other, expected_version=payload["version"],
                                     annotation=human_answer(payload))


def test_only_items_waiting_for_adjudication_can_be_adjudicated(dataset, adjudicator):
    image = image_in_review(dataset)
    payload = selectors.adjudication_payload(image)
    with pytest.raises(NotAllowed, match="not waiting for adjudication"):
        adjudication.adjudication_submit(image=image, adjudicator=adjudicator, expected_version=payload["version"],
                                     annotation=human_answer(payload))


def reviewed_with_confidence(make_reviewer, answers):
    """An image in adjudication whose reviewers gave ``(name, label, confidence, distribution)``."""
    dataset = DatasetFactory(slug="sure", reviews_per_item=len(answers), overlap_fraction=1.0)
    image = image_in_review(dataset)
    for name, label, confidence, distribution in answers:
        reviewer = make_reviewer(name)
        lease = queue.lease_next(dataset=dataset, reviewer=reviewer)
        payload = selectors.lease_payload(lease)
        answer = human_answer(payload, label=label)
        answer["ces"].update({k: v for k, v in (("confidence", confidence), ("distribution", distribution)) if v})
        if name == "cy":  # differs on an element, so agreeing labels still go to adjudication
            answer["triplets"][0]["subject"]["status"] = "rejected"
        services.review_submit(lease=lease, reviewer=reviewer, expected_version=payload["version"], decision="approved",
                               annotation=answer)
    image.refresh_from_db()
    assert image.status == ImageStatus.ADJUDICATION
    return image


def adjudicate(image, adjudicator, label, **ces):
    payload = selectors.adjudication_payload(image)
    answer = human_answer(payload, label=label)
    answer["ces"].update(ces)
    return adjudication.adjudication_submit(image=image, adjudicator=adjudicator, expected_version=payload["version"],
                                        annotation=answer).annotation


def test_adjudication_keeps_the_confidence_of_the_review_whose_label_it_chose(make_reviewer, adjudicator):
    image = reviewed_with_confidence(make_reviewer, [("ann", "awe", 0.9, None), ("bob", "fear", 0.6, None)])
    final = adjudicate(image, adjudicator, "awe")
    ann = Annotation.objects.get(image=image, author_name="ann", kind="human")
    assert (final.ces_label, final.ces_confidence) == ("awe", 0.9)
    assert (final.extra["confidence_from"], final.extra["confidence_reviews"]) == ("reviews", [ann.pk])


def test_reviews_that_chose_the_same_label_give_their_mean(make_reviewer, adjudicator):
    image = reviewed_with_confidence(make_reviewer, [("ann", "awe", None, distribution_for("awe", 0.8)),
                                                     ("cy", "awe", None, distribution_for("awe", 0.6))])
    final = adjudicate(image, adjudicator, "awe")
    assert final.ces_confidence == pytest.approx(0.7)
    assert final.ces_distribution["awe"] == pytest.approx(0.7) and sum(final.ces_distribution.values()) == pytest.approx(1)


def test_the_adjudicators_own_confidence_wins(make_reviewer, adjudicator):
    image = reviewed_with_confidence(make_reviewer, [("ann", "awe", 0.9, None), ("bob", "fear", 0.6, None)])
    final = adjudicate(image, adjudicator, "fear", confidence=0.4)
    assert (final.ces_confidence, final.ces_distribution, final.extra["confidence_from"]) == (0.4, None, "adjudicator")


def test_a_label_no_review_chose_carries_no_confidence(make_reviewer, adjudicator):
    image = reviewed_with_confidence(make_reviewer, [("ann", "awe", 0.9, None), ("bob", "fear", 0.6, None)])
    final = adjudicate(image, adjudicator, "sadness")
    assert (final.ces_confidence, final.extra["confidence_from"]) == (None, None)
