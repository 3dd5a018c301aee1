"""Submitting reviews and adjudications.

A submission creates a new HUMAN annotation version (never overwriting), its
element decisions, and one disagreement row per difference from each current
model annotation; then it moves the image on: it stays in review until its
required number of independent reviews is in, goes to adjudication when those
reviews disagree, and is approved, rejected or flagged otherwise.
Queue and lease handling live in ``review.queue``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, F, Max, OuterRef
from django.utils import timezone

from annotations.errors import InvalidAnnotation, VersionConflict
from annotations.models import Annotation, AnnotationKind, Decision, ElementStatus, Image, ImageStatus
from annotations.phrase_embeddings import phrase_vectors
from annotations.selectors import (
    annotation_to_dict,
    annotations_with_elements,
    elements_attach,
    image_review_sources,
)
from annotations.services import annotation_create, image_set_status
from annotations.signals import phrases_added
from annotations.tokens import ReadWithToken
from annotations.validation import AnnotationInput, ElementInput, check_storable, validate_annotation, validate_text
from core.alignment import triplet_phrases
from core.vocabulary import ROLES
from review.disagreements import annotation_differences, reviews_disagree
from review.models import (
    Disagreement,
    DisagreementKind,
    Draft,
    ElementAction,
    ElementDecision,
    Lease,
    LeaseState,
    ReviewPlan,
    ReviewSubmission,
)
from core.text import is_blank
from review.queue import free_slot, lease_authorize, lease_get_for_update, lease_is_live
from review.submit_postgres import lease_read, submit_one_statement, submitted_phrases

MAX_ELEMENT_DECISIONS = 2000
MAX_TIME_MS = 24 * 3600 * 1000
FINAL_DECISIONS = (Decision.APPROVED, Decision.REJECTED, Decision.FLAGGED)
# Statuses that do not say a person decided the element (edited, rejected and added do).
ELEMENT_ACTIONS = frozenset(ElementAction.values)  # (``.values`` builds its list on every call)
UNDECIDED_STATUSES = frozenset({ElementStatus.PENDING, ElementStatus.ACCEPTED, ElementStatus.ACCEPTED_UNCHECKED})


@dataclass(frozen=True)
class ElementDecisionInput:
    triplet_key: uuid.UUID
    role: str
    action: str
    before: Any
    after: Any
    time_ms: int


@dataclass(frozen=True)
class SubmitResult:
    annotation: Annotation
    image_status: str
    disagreements: int
    unchecked: int = 0  # elements approved with the item without a reviewer's action


def _time_ms(value: Any, field: str) -> int:
    """A measured duration: a whole number of milliseconds, at least 0. Longer than
    :data:`MAX_TIME_MS` (a tab left open for days) is kept as that maximum: a bad
    measurement never blocks a submit."""
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidAnnotation(field, f"must be a whole number of milliseconds, at least 0, got {value!r}")
    return min(value, MAX_TIME_MS)


def check_decision(decision: Any, reason: Any) -> tuple[str, str]:
    if decision not in FINAL_DECISIONS:
        raise InvalidAnnotation("decision", f"must be one of {', '.join(FINAL_DECISIONS)}, got {decision!r}")
    reason = validate_text(reason or "", "reason")
    if decision != Decision.APPROVED and is_blank(reason):
        raise InvalidAnnotation("reason", f"a reason is required to mark an item {decision}")
    return decision, reason.strip()


def check_annotation(value: Any, image: Image, decision: str) -> AnnotationInput:
    """Validate a submitted annotation against the image (boxes inside it, masks of its size,
    known labels, non-empty masks, triplet keys that are UUIDs). Approving needs a CES label."""
    if not isinstance(value, Mapping):
        raise InvalidAnnotation("annotation", "must be an object with triplets and ces")
    data = validate_annotation(value, image.width, image.height, image.dataset.get_taxonomy())
    keys = set()
    for i, triplet in enumerate(data.triplets):
        if triplet.key is None:
            continue
        try:
            key = uuid.UUID(triplet.key)
        except ValueError:
            raise InvalidAnnotation(f"annotation.triplets[{i}].key", f"must be a UUID, got {triplet.key!r}") from None
        if key in keys:
            raise InvalidAnnotation(f"annotation.triplets[{i}].key", "appears twice")
        keys.add(key)
    if decision == Decision.APPROVED and data.ces is None:
        raise InvalidAnnotation("annotation.ces", "approving an item needs a CES label")
    return data


def check_element_decisions(value: Any) -> list[ElementDecisionInput]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidAnnotation("element_decisions", "must be a list")
    if len(value) > MAX_ELEMENT_DECISIONS:
        raise InvalidAnnotation("element_decisions", f"more than {MAX_ELEMENT_DECISIONS} decisions")
    out = []
    for i, item in enumerate(value):
        field = f"element_decisions[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidAnnotation(field, "must be an object")
        try:
            key = uuid.UUID(str(item.get("triplet_key")))
        except ValueError:
            raise InvalidAnnotation(f"{field}.triplet_key", "must be a triplet key (UUID)") from None
        if item.get("role") not in ROLES:
            raise InvalidAnnotation(f"{field}.role", f"must be one of {', '.join(ROLES)}")
        if item.get("action") not in ELEMENT_ACTIONS:
            raise InvalidAnnotation(f"{field}.action", f"must be one of {', '.join(ElementAction.values)}")
        check_storable(item.get("before"), f"{field}.before")
        check_storable(item.get("after"), f"{field}.after")
        out.append(ElementDecisionInput(key, item["role"], item["action"], item.get("before"), item.get("after"),
                                        _time_ms(item.get("time_ms"), f"{field}.time_ms")))
    return out


def with_statuses(data: AnnotationInput, status_of: Callable[[str | None, ElementInput], str]) -> AnnotationInput:
    """``data`` with every element's status replaced by ``status_of(triplet key or None, element)``."""
    triplets = tuple(
        replace(t, elements=tuple(replace(e, status=status_of(t.key and str(uuid.UUID(t.key)), e)) for e in t.elements))
        for t in data.triplets
    )
    return replace(data, triplets=triplets)


def element_checks(data: AnnotationInput, decisions: list[ElementDecisionInput], decision: str) -> tuple[AnnotationInput, int]:
    """Record how each element of a review was decided; returns the answer and how many elements nobody checked.

    An element the reviewer acted on (an element decision names its triplet key and role:
    ``accept``, ``accept_all`` (Shift+A), an edit) is ``accepted`` when it was sent as pending,
    accepted or accepted_unchecked. One without any action was not looked at: ``accepted_unchecked``
    when the item is approved (it goes with the item), else ``pending``. ``edited``, ``rejected``
    and ``added`` are acts themselves and stay.
    """
    acted = {(str(d.triplet_key), d.role) for d in decisions}
    unchecked = ElementStatus.ACCEPTED_UNCHECKED if decision == Decision.APPROVED else ElementStatus.PENDING
    count = 0

    def status_of(key: str | None, element: ElementInput) -> str:
        nonlocal count
        if element.status not in UNDECIDED_STATUSES:
            return element.status
        if (key, element.role) in acted:
            return ElementStatus.ACCEPTED
        count += 1
        return unchecked

    return with_statuses(data, status_of), count


def check_all_checked(image: Image, decision: str, unchecked: int) -> None:
    """Refuse to approve while elements are unchecked on a dataset with ``require_all_checked``."""
    if decision == Decision.APPROVED and unchecked and image.dataset.require_all_checked:
        noun = "element is" if unchecked == 1 else "elements are"
        raise InvalidAnnotation(
            "element_decisions",
            f"{unchecked} {noun} not checked yet; this dataset approves only when every element is decided: "
            "accept (A), reject (R) or edit each one, or accept all remaining at once (Shift+A)",
        )


def check_version(image: Image, expected_version: int, *, ignore: Set[int] = frozenset(), ignore_reviews: bool = False) -> None:
    """Raise :class:`VersionConflict` when versions other than ``ignore`` (and, with
    ``ignore_reviews``, other than submitted reviews of the image) appeared since
    ``expected_version``. One query unless it raises."""
    rows = image.annotations.filter(version__gte=expected_version).order_by("version")
    if ignore_reviews:
        rows = rows.annotate(is_review=Exists(ReviewSubmission.objects.filter(annotation=OuterRef("pk"))))
    rows = list(rows.values("id", "version", "kind", "author_name", "created_at", *(["is_review"] if ignore_reviews else [])))
    if rows:
        latest = rows[-1]["version"]
    elif expected_version == 0:
        latest = 0  # no version at all
    else:
        latest = None  # no version at or past expected_version: it is past the latest
    newer = [row for row in rows if row["version"] > expected_version and row["id"] not in ignore and not row.get("is_review")]
    if newer or latest is None:
        if latest is None:
            latest = image.annotations.aggregate(v=Max("version"))["v"] or 0
        for row in newer:
            del row["id"]
            row.pop("is_review", None)
        raise VersionConflict(
            f"The image changed since you opened it (version {expected_version}, now {latest}); your work is kept.",
            changes={"expected_version": expected_version, "current_version": latest, "newer_versions": newer},
        )


def _model_annotations(image: Image) -> list[Annotation]:
    qs = image.annotations.filter(is_current=True, kind__in=[AnnotationKind.MODEL, AnnotationKind.IMPORT])
    return list(annotations_with_elements(qs.order_by("author_name")))


@dataclass(frozen=True)
class Recorded:
    """What :func:`disagreements_record` wrote: the number of rows, and the person's phrases
    (normalised) that have no stored embedding yet, for :func:`embed_after_commit`."""

    rows: int
    unembedded: frozenset[str]


def disagreements_record(*, annotation: Annotation, person: AbstractBaseUser, kind: str,
                         model_answers: list[Annotation] | None = None) -> Recorded:
    """Write one row per difference between ``annotation`` and each current model annotation
    (``model_answers``: those, with their elements, by author name, when the caller has them).

    Triplets are paired by meaning with the stored phrase embeddings; a phrase the person
    wrote just now has none yet (it is embedded after the commit), so its triplet is paired
    by words, and the row says so (``paired_by``).
    """
    image = annotation.image
    human = annotation_to_dict(elements_attach([annotation])[0], include_des=False)
    if model_answers is None:
        model_answers = _model_annotations(image)
    models = [(m, annotation_to_dict(m, include_des=False)) for m in model_answers]
    own = triplet_phrases(human["triplets"])
    vectors = phrase_vectors(own | triplet_phrases(*(answer["triplets"] for _, answer in models)))
    rows = []
    for model, answer in models:
        for d in annotation_differences(answer, human, vectors):
            rows.append(Disagreement(
                image=image, dataset_id=image.dataset_id, model_name=model.author_name,
                model_annotation=model, field=d.field, triplet_key=d.triplet_key, role=d.role,
                model_value=d.model_value, model_confidence=d.model_confidence, human_value=d.human_value,
                box_iou=d.box_iou, mask_iou=d.mask_iou, paired_by=d.paired_by, reviewer=person, annotation=annotation,
                kind=kind,
            ))
    Disagreement.objects.bulk_create(rows, batch_size=500)
    return Recorded(rows=len(rows), unembedded=frozenset(p for p in own if p not in vectors))


def _check_not_submitted(lease: Lease) -> None:
    if lease.state == LeaseState.SUBMITTED:
        done = ReviewSubmission.objects.select_related("annotation").get(lease=lease)
        raise VersionConflict("This lease was already submitted.",
                              changes={"already_submitted": True, "version": done.annotation.version})


def _check_in_review(image: Image) -> None:
    if image.status != ImageStatus.IN_REVIEW:
        raise VersionConflict(
            f"The item is no longer in review (it is {image.get_status_display().lower()} now); your draft is kept.",
            changes={"lease_lost": True, "image_status": image.status})


def embed_after_commit(annotation: Annotation, phrases: frozenset[str]) -> None:
    """Have a worker embed the person's phrases that have no stored embedding (``phrases``,
    normalised: :attr:`Recorded.unembedded`) once this transaction commits; nothing when there
    are none, nor when this process asked for all of them a moment ago (``ml.embed_requests``),
    as the one-statement submit does."""
    if phrases:
        transaction.on_commit(lambda: phrases_added.send(sender=Annotation, annotation_ids=[annotation.pk], phrases=phrases))


def _lease_for_submit(lease: Lease, reviewer: AbstractBaseUser, image: Image, now) -> Lease:
    """The caller's lease, locked and live. A lapsed lease is taken up again if its slot is still free.

    Precondition: the image row is locked. Raises :class:`NotAllowed` for another
    reviewer's lease and :class:`VersionConflict` (``changes.lease_lost``) when the
    item is no longer the caller's to submit.
    """
    lease = lease_get_for_update(lease_id=lease.pk, reviewer=reviewer)
    _check_not_submitted(lease)
    if lease_is_live(lease, now):
        return lease
    newer = Lease.objects.filter(image=image, reviewer=reviewer, state=LeaseState.ACTIVE, expires_at__gt=now).exclude(pk=lease.pk).first()
    if newer is not None:
        raise VersionConflict("You hold a newer lease on this image (another tab?); submit through that one. Your draft is kept.",
                              changes={"lease_lost": True, "newer_lease": newer.pk})
    found = free_slot(image=image, reviewer=reviewer, dataset=lease.dataset, now=now)
    if found is None:
        raise VersionConflict("Your lease ended and the item was taken by another reviewer; your draft is kept.",
                              changes={"lease_lost": True, "taken": True})
    Lease.objects.filter(image=image, reviewer=reviewer, state=LeaseState.ACTIVE).exclude(pk=lease.pk).update(
        state=LeaseState.EXPIRED, ended_at=now)
    lease.state, lease.slot = LeaseState.ACTIVE, found[1]
    return lease


def _resolve_image(image: Image, plan: ReviewPlan, decision: str, label: str | None) -> str:
    """Move the image on once its required reviews are in (see module docstring)."""
    if plan.submitted_reviews < plan.required_reviews:
        return image.status
    if plan.required_reviews > 1:
        submissions = list(ReviewSubmission.objects.filter(image=image))
        reviews = [annotation_to_dict(a, include_des=False) for a in
                   annotations_with_elements(Annotation.objects.filter(pk__in=[s.annotation_id for s in submissions]))]
        vectors = phrase_vectors(triplet_phrases(*(r["triplets"] for r in reviews)))
        if reviews_disagree(reviews, [s.decision for s in submissions], min_iou=settings.EMOVERSE_ADJUDICATION_MIN_IOU,
                            vectors=vectors):
            image_set_status(image=image, status=ImageStatus.ADJUDICATION)
            return image.status
    fields = {"label": label} if label else {}
    image_set_status(image=image, status=decision, **fields)
    return image.status


def locked_image(image_id: int, checked: Image, annotation: Mapping[str, Any], data: AnnotationInput,
                  decision: str) -> tuple[Image, AnnotationInput]:
    """The image row, locked, and the annotation as validated against it. Precondition: in a
    transaction. An image's size never changes; should it have, the annotation is checked again."""
    image = Image.objects.select_for_update().select_related("dataset").get(pk=image_id)
    if (image.width, image.height) != (checked.width, checked.height):
        data = check_annotation(annotation, image, decision)
    return image, data


def lease_for_submit(pk: int, annotation: Any = None, element_decisions: Any = None,
                     read: ReadWithToken | None = None) -> Lease:
    """The lease with its image, the image's dataset and review plan (``image.review_plan``,
    absent before the first claim), in one query: what :func:`review_submit` checks first.
    Raises ``Lease.DoesNotExist``. On PostgreSQL :func:`review.submit_postgres.lease_read`, which
    also reads the image's answers and the stored embeddings of the phrases of ``annotation`` and
    ``element_decisions``, the answer about to be submitted (``submitted_phrases``), or takes the
    rows of that query from ``read``, sent with the token's statement; SQLite, whose columns need
    Django's converters, reads the lease through the ORM."""
    if connection.vendor != "postgresql":
        return Lease.objects.select_related("image__dataset", "image__review_plan").get(pk=pk)
    return lease_read(pk, submitted_phrases(annotation, element_decisions), read)


def review_submit(
    *,
    lease: Lease,
    reviewer: AbstractBaseUser,
    expected_version: int,
    decision: str,
    reason: str = "",
    annotation: Mapping[str, Any],
    element_decisions: list | None = None,
    time_spent_ms: int = 0,
    fresh: bool = False,
) -> SubmitResult:
    """Submit the reviewer's answer for the leased image.

    Raises :class:`InvalidAnnotation` for a bad value, :class:`NotAllowed` when
    the lease is not the caller's, :class:`VersionConflict` when the item is no
    longer the caller's to submit (``changes.lease_lost``: the lease lapsed and
    another reviewer took the item, a newer lease of the caller, the item left
    review) or changed since ``expected_version`` (other reviewers' independent
    reviews of the same item do not count). On any error nothing is written and
    the reviewer's draft stays; other reviewers' drafts are never deleted.

    Whose lease it is and whether it can still be submitted are checked first, on a
    plain read (``fresh``: ``lease`` was just read by :func:`lease_for_submit`, else it is
    read again here); then the answer is validated (a large mask takes a while) with no
    transaction open, so no lock is held meanwhile; the writes check everything again under
    the row locks. On PostgreSQL they are one statement (``review.submit_postgres``), which
    hands any case but the plain one back to the Python path below.
    """
    lease_authorize(lease=lease, reviewer=reviewer)
    read = lease if fresh else lease_for_submit(lease.pk)
    _check_not_submitted(read)
    checked = read.image
    _check_in_review(checked)
    decision, reason = check_decision(decision, reason)
    data = check_annotation(annotation, checked, decision)
    decisions = check_element_decisions(element_decisions)
    marked, unchecked = element_checks(data, decisions, decision)
    check_all_checked(checked, decision, unchecked)
    time_spent_ms = _time_ms(time_spent_ms, "time_spent_ms")
    check_storable(reviewer.get_username(), "author_name")
    if connection.vendor == "postgresql":
        written = submit_one_statement(lease=read, reviewer=reviewer, image=checked, expected_version=expected_version,
                                       decision=decision, reason=reason, data=marked, decisions=decisions,
                                       time_spent_ms=time_spent_ms)
        if written is not None:
            return SubmitResult(annotation=written.annotation, image_status=written.image_status,
                                disagreements=written.disagreements, unchecked=unchecked)
    with transaction.atomic():
        image, data = locked_image(lease.image_id, checked, annotation, data, decision)
        data, unchecked = element_checks(data, decisions, decision)
        return _review_write(lease=lease, reviewer=reviewer, image=image, expected_version=expected_version,
                             decision=decision, reason=reason, data=data, decisions=decisions, time_spent_ms=time_spent_ms,
                             unchecked=unchecked)


def _review_write(*, lease: Lease, reviewer: AbstractBaseUser, image: Image, expected_version: int, decision: str,
                  reason: str, data: AnnotationInput, decisions: list[ElementDecisionInput],
                  time_spent_ms: int, unchecked: int) -> SubmitResult:
    """The writes of :func:`review_submit`, after its checks under the locks. Precondition:
    in a transaction, the image row locked."""
    now = timezone.now()
    lease = _lease_for_submit(lease, reviewer, image, now)
    _check_in_review(image)
    check_version(image, expected_version, ignore_reviews=True)
    sources = image_review_sources(image_id=image.pk)
    version = annotation_create(
        image=image, data=data, kind=AnnotationKind.HUMAN, author_name=reviewer.get_username(), author_user=reviewer,
        parent=sources.base, decision=decision, decision_reason=reason,
        extra={"lease": lease.pk, "time_spent_ms": time_spent_ms},
    )
    lease.state, lease.ended_at = LeaseState.SUBMITTED, now
    lease.save(update_fields=["state", "slot", "ended_at"])
    submission = ReviewSubmission.objects.create(lease=lease, image=image, dataset_id=image.dataset_id, reviewer=reviewer,
                                                 annotation=version, decision=decision, time_spent_ms=time_spent_ms)
    ElementDecision.objects.bulk_create([
        ElementDecision(submission=submission, image=image, reviewer=reviewer, annotation=version, triplet_key=d.triplet_key,
                        role=d.role, action=d.action, before=d.before, after=d.after, time_ms=d.time_ms)
        for d in decisions
    ], batch_size=500)
    recorded = disagreements_record(annotation=version, person=reviewer, kind=DisagreementKind.REVIEW,
                                    model_answers=sources.answers)
    embed_after_commit(version, recorded.unembedded)
    ReviewPlan.objects.filter(image=image).update(submitted_reviews=F("submitted_reviews") + 1)
    Draft.objects.filter(image=image, reviewer=reviewer).delete()
    status = _resolve_image(image, ReviewPlan.objects.get(image=image), decision, data.ces.label if data.ces else None)
    return SubmitResult(annotation=version, image_status=status, disagreements=recorded.rows, unchecked=unchecked)
