"""Adjudication: the final answer of an item whose independent reviews disagree.

The adjudicator's CES keeps a confidence (:func:`adjudicated_ces`), their geometry and
element decisions are recorded as ElementDecision rows (:func:`adjudicator_edits`), and nobody adjudicates an item they
reviewed. Checks and writes follow :func:`review.services.review_submit`: who and what
first, validation with no transaction open, then the writes under the image's row lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotations.errors import NotAllowed
from annotations.models import Annotation, AnnotationKind, Decision, ElementStatus, Image, ImageStatus
from annotations.selectors import (
    annotation_to_dict,
    annotations_with_elements,
    image_review_base,
)
from annotations.services import annotation_create, image_set_status
from annotations.validation import AnnotationInput, CesInput
from core.vocabulary import ROLES
from core.alignment import phrase_key
from core.boxes import box_iou
from core.masks import mask_iou
from review.disagreements import IOU_EQUAL
from review.models import (
    DisagreementKind,
    ElementAction,
    ElementDecision,
    ReviewSubmission,
)
from review.visibility import DONE_STATUSES, reviewer_has_submitted

from review.services import (
    UNDECIDED_STATUSES,
    SubmitResult,
    check_annotation,
    check_decision,
    check_version,
    disagreements_record,
    embed_after_commit,
    locked_image,
    with_statuses,
)


def adjudicated_ces(ces: CesInput | None, reviews: list[Annotation]) -> tuple[CesInput | None, dict[str, Any]]:
    """The CES of an adjudication: the adjudicator's label, with a confidence and a distribution that survive.

    When the adjudicator gives a confidence (or a distribution, which gives it),
    both are theirs. Otherwise both are carried from the reviews whose label the
    adjudicator chose: the mean of their confidences and the mean of their
    distributions (over the reviews that give one); none when no such review
    gives one. Returns the CES and where its confidence came from
    (``{"confidence_from": "adjudicator" | "reviews" | None, "confidence_reviews": [annotation ids]}``).
    """
    if ces is None:
        return None, {"confidence_from": None, "confidence_reviews": []}
    if ces.confidence is not None:
        return ces, {"confidence_from": "adjudicator", "confidence_reviews": []}
    chosen = [r for r in reviews if r.ces_label == ces.label and r.ces_confidence is not None]
    if not chosen:
        return ces, {"confidence_from": None, "confidence_reviews": []}
    confidence = sum(r.ces_confidence for r in chosen) / len(chosen)
    given = [r.ces_distribution for r in chosen if r.ces_distribution]
    distribution = None
    if given:
        emotions = sorted({e for d in given for e in d})
        distribution = {e: sum(d.get(e, 0.0) for d in given) / len(given) for e in emotions}
    carried = CesInput(label=ces.label, confidence=confidence, distribution=distribution)
    return carried, {"confidence_from": "reviews", "confidence_reviews": [r.pk for r in chosen]}


def _check_adjudicable(image: Image, adjudicator: AbstractBaseUser, expected_version: int) -> None:
    """Who may decide and whether the image waits for it, before anything about its versions is said
    (except for an image decided since it was opened: :class:`VersionConflict`)."""
    if reviewer_has_submitted(image=image, user=adjudicator):
        raise NotAllowed(f"You reviewed image {image.pk}; another adjudicator decides it.")
    if image.status != ImageStatus.ADJUDICATION:
        if image.status in DONE_STATUSES:  # decided since it was opened: say what changed
            check_version(image, expected_version, ignore=set())
        raise NotAllowed(f"Image {image.pk} is not waiting for adjudication (status {image.status}).")
    check_version(image, expected_version, ignore=set())


def adjudicator_edits(data: AnnotationInput, reviews: list[Annotation]) -> list[dict[str, Any]]:
    """How the adjudicator decided each element of the final answer, against every review's copy of the
    element (same triplet key and role): ``reject`` for a rejected element some review kept, ``add`` for
    a kept element no review has, ``edit_box`` / ``edit_mask`` / ``edit_phrase`` when its box / mask /
    phrase matches no review's copy, else ``accept``. Rows for :class:`~review.models.ElementDecision`
    (``triplet_key``, ``role``, ``action``, ``before``, ``after``)."""
    copies: dict[tuple[str, str], list[dict]] = {}
    for review in reviews:
        for t in annotation_to_dict(review, include_des=False)["triplets"]:
            for role in ROLES:
                if t.get(role):
                    copies.setdefault((t["key"], role), []).append(t[role])
    out = []
    for triplet in data.triplets:
        key = str(uuid.UUID(triplet.key)) if triplet.key else None
        for e in triplet.elements:
            found = copies.get((key, e.role), [])
            record = {"triplet_key": key, "role": e.role, "before": None, "after": None}
            if e.status == ElementStatus.REJECTED:
                kept = [c for c in found if c.get("status") != ElementStatus.REJECTED]
                if kept:
                    out.append({**record, "action": ElementAction.REJECT, "before": kept[0].get("phrase")})
                continue
            if not found:
                out.append({**record, "action": ElementAction.ADD, "after": e.phrase})
                continue
            edits = []
            if e.box and not any(c.get("box") and box_iou(c["box"], list(e.box)) >= IOU_EQUAL for c in found):
                edits.append({**record, "action": ElementAction.EDIT_BOX, "before": found[0].get("box"), "after": list(e.box)})
            if e.mask and not any(c.get("mask") and mask_iou(c["mask"], e.mask) >= IOU_EQUAL for c in found):
                edits.append({**record, "action": ElementAction.EDIT_MASK})
            if all(phrase_key(c.get("phrase")) != phrase_key(e.phrase) for c in found):
                edits.append({**record, "action": ElementAction.EDIT_PHRASE, "before": found[0].get("phrase"),
                              "after": e.phrase})
            out.extend(edits or [{**record, "action": ElementAction.ACCEPT}])
    return out


def adjudication_submit(
    *,
    image: Image,
    adjudicator: AbstractBaseUser,
    expected_version: int,
    decision: str = Decision.APPROVED,
    reason: str = "",
    annotation: Mapping[str, Any],
) -> SubmitResult:
    """Set the final answer of an item whose independent reviews disagree.

    Raises :class:`NotAllowed` when the adjudicator reviewed the image or it is
    not waiting for adjudication, :class:`VersionConflict` when it moved on. As in
    :func:`review_submit`, who decides, the image's state and its version are checked
    before the answer is validated, and the validation runs with no transaction open.
    Creates an ADJUDICATION annotation version, whose CES confidence and distribution
    follow :func:`adjudicated_ces`, and its disagreement rows against every model
    annotation; an :class:`ElementDecision` row (``kind`` adjudication) per element the adjudicator
    decided (:func:`adjudicator_edits`), beside the reviewers' rows; the image becomes approved, rejected or flagged. The adjudicator's answer
    decides every element it holds (the page lists each one with its Keep box): an
    approved answer's pending and unchecked elements are ``accepted``.
    """
    checked = Image.objects.select_related("dataset").get(pk=image.pk)
    _check_adjudicable(checked, adjudicator, expected_version)
    decision, reason = check_decision(decision, reason)
    data = check_annotation(annotation, checked, decision)
    with transaction.atomic():
        image, data = locked_image(image.pk, checked, annotation, data, decision)
        _check_adjudicable(image, adjudicator, expected_version)
        return _adjudication_write(image=image, adjudicator=adjudicator, decision=decision, reason=reason, data=data)


def _adjudication_write(*, image: Image, adjudicator: AbstractBaseUser, decision: str, reason: str,
                        data: AnnotationInput) -> SubmitResult:
    """The writes of :func:`adjudication_submit`. Precondition: in a transaction, the image row locked."""
    if decision == Decision.APPROVED:
        data = with_statuses(data, lambda _key, e: ElementStatus.ACCEPTED if e.status in UNDECIDED_STATUSES else e.status)
    # every triplet gets its key now, so each element decision names the triplet it is stored under
    data = replace(data, triplets=tuple(t if t.key else replace(t, key=str(uuid.uuid4())) for t in data.triplets))
    submissions = list(ReviewSubmission.objects.filter(image=image).select_related("annotation").order_by("id"))
    reviews = [s.annotation for s in submissions]
    ces, provenance = adjudicated_ces(data.ces, reviews)
    edits = adjudicator_edits(data, list(annotations_with_elements(
        Annotation.objects.filter(pk__in=[r.pk for r in reviews]))))
    version = annotation_create(
        image=image, data=replace(data, ces=ces), kind=AnnotationKind.ADJUDICATION, author_name=adjudicator.get_username(),
        author_user=adjudicator, parent=image_review_base(image=image), decision=decision, decision_reason=reason,
        extra={"reviews": [s.annotation_id for s in submissions], **provenance},
    )
    ElementDecision.objects.bulk_create([
        ElementDecision(kind=DisagreementKind.ADJUDICATION, image=image, reviewer=adjudicator, annotation=version, **edit)
        for edit in edits
    ], batch_size=500)
    recorded = disagreements_record(annotation=version, person=adjudicator, kind=DisagreementKind.ADJUDICATION)
    embed_after_commit(version, recorded.unembedded)
    fields = {"label": ces.label} if ces else {}
    image_set_status(image=image, status=decision, **fields)
    return SubmitResult(annotation=version, image_status=image.status, disagreements=recorded.rows)
