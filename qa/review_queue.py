"""The QA review queue: leases, K overlap slots and drafts (the rules of ``qa.review``'s
docstring). Claiming is one short transaction; on PostgreSQL the candidate image row is
taken with ``SELECT … FOR UPDATE SKIP LOCKED`` and the partial unique constraints on
:class:`qa.models.QALease` are the last line, as in ``review.queue``."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, IntegerField, Min, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotations.errors import NotAllowed, NothingToDo, VersionConflict
from annotations.models import Dataset, Image
from annotations.validation import check_storable
from qa.errors import InvalidPair
from qa.models import (
    QADraft,
    QALease,
    QALeaseState,
    QAPair,
    QAReviewPlan,
    QAStatus,
    RejectReason,
)

REVIEWABLE = (QAStatus.PENDING, QAStatus.IN_REVIEW)
REJECT_REASONS = [value for value in RejectReason.values if value]  # in the order of the keys 1-5
CLAIM_ATTEMPTS = 20


def required_qa_reviews(*, dataset: Dataset, image_id: int) -> int:
    """``dataset.reviews_per_item`` for a stable ``overlap_fraction`` sample of images, else 1
    (the triplet review's rule, so an image in the sample is in it for both)."""
    if dataset.reviews_per_item <= 1 or dataset.overlap_fraction <= 0:
        return 1
    digest = hashlib.sha256(f"{dataset.pk}:{image_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return dataset.reviews_per_item if position < dataset.overlap_fraction else 1


def live_leases(now) -> QuerySet[QALease]:
    return QALease.objects.filter(state=QALeaseState.ACTIVE, expires_at__gt=now)


def qa_queue_candidates(*, dataset: Dataset, reviewer: AbstractBaseUser, now) -> QuerySet[Image]:
    """Images of ``dataset`` with pending pairs that ``reviewer`` has not reviewed and that have
    a free slot (live leases plus submitted reviews below the required reviews), lowest pair
    priority first, then oldest."""
    pending = QAPair.objects.filter(image=OuterRef("pk"), is_current=True, status__in=REVIEWABLE)
    mine = QALease.objects.filter(image=OuterRef("pk"), reviewer=reviewer, state=QALeaseState.SUBMITTED)
    live = live_leases(now).filter(image=OuterRef("pk")).order_by().values("image").annotate(n=Count("id")).values("n")
    plan = QAReviewPlan.objects.filter(image=OuterRef("pk"))
    first = pending.order_by().values("image").annotate(p=Min("priority")).values("p")
    return (
        Image.objects.filter(dataset=dataset)
        .filter(Exists(pending))
        .exclude(Exists(mine))
        .alias(
            n_live=Coalesce(Subquery(live, output_field=IntegerField()), Value(0)),
            n_required=Coalesce(Subquery(plan.values("required_reviews")[:1]), Value(1)),
            n_submitted=Coalesce(Subquery(plan.values("submitted_reviews")[:1]), Value(0)),
        )
        .filter(n_required__gt=F("n_live") + F("n_submitted"))
        .annotate(first_priority=Subquery(first))
        .order_by("first_priority", "id")
    )


def free_slot(*, image: Image, reviewer: AbstractBaseUser, dataset: Dataset, now) -> int | None:
    """A free slot of ``image`` for ``reviewer``, or None. Precondition: the image row is locked."""
    QALease.objects.filter(image=image, state=QALeaseState.ACTIVE, expires_at__lte=now).update(
        state=QALeaseState.EXPIRED, ended_at=now
    )
    plan, _ = QAReviewPlan.objects.get_or_create(
        image=image,
        defaults={"dataset": dataset, "required_reviews": required_qa_reviews(dataset=dataset, image_id=image.pk)},
    )
    if QALease.objects.filter(image=image, reviewer=reviewer, state=QALeaseState.SUBMITTED).exists():
        return None
    used = set(
        QALease.objects.filter(image=image, state=QALeaseState.ACTIVE)
        .exclude(reviewer=reviewer)
        .values_list("slot", flat=True)
    )
    if len(used) + plan.submitted_reviews >= plan.required_reviews:
        return None
    return next(s for s in range(plan.required_reviews + len(used) + 1) if s not in used)


def _claim_once(dataset: Dataset, reviewer: AbstractBaseUser, now) -> QALease | None:
    held = live_leases(now).filter(dataset=dataset, reviewer=reviewer).select_related("image").first()
    if held is not None:
        return held
    candidates = qa_queue_candidates(dataset=dataset, reviewer=reviewer, now=now)
    image = candidates.select_for_update(skip_locked=True, of=("self",)).first()
    if image is None and candidates.exists():
        image = candidates.select_for_update(of=("self",)).first()
    if image is None:
        return None
    slot = free_slot(image=image, reviewer=reviewer, dataset=dataset, now=now)
    if slot is None:
        raise IntegrityError("slot taken between selection and lock")
    QALease.objects.filter(image=image, reviewer=reviewer, state=QALeaseState.ACTIVE).update(
        state=QALeaseState.EXPIRED, ended_at=now
    )
    return QALease.objects.create(
        image=image,
        dataset=dataset,
        reviewer=reviewer,
        slot=slot,
        expires_at=now + timedelta(minutes=dataset.lease_minutes),
    )


def qa_lease_next(*, dataset: Dataset, reviewer: AbstractBaseUser) -> QALease:
    """The reviewer's live QA lease on ``dataset``, else a new one on the next image.
    Raises :class:`NothingToDo` when nothing is left for this reviewer."""
    for _ in range(CLAIM_ATTEMPTS):
        try:
            with transaction.atomic():
                lease = _claim_once(dataset, reviewer, timezone.now())
        except IntegrityError:
            continue  # a concurrent claim won that slot; pick again
        if lease is None:
            raise NothingToDo(f"No QA pair left to review in {dataset.slug}.")
        return lease
    raise NothingToDo(f"The QA queue of {dataset.slug} is busy; try again.")


def lease_locked(lease_id: int, reviewer: AbstractBaseUser) -> QALease:
    lease = QALease.objects.select_for_update(of=("self",)).select_related("dataset").get(pk=lease_id)
    if lease.reviewer_id != reviewer.pk:
        raise NotAllowed("This lease belongs to another reviewer.")
    return lease


@transaction.atomic
def qa_lease_release(*, lease: QALease, reviewer: AbstractBaseUser) -> QALease:
    """Give the image back to the queue; the draft is kept."""
    lease = lease_locked(lease.pk, reviewer)
    if lease.state == QALeaseState.SUBMITTED:
        raise VersionConflict("This lease was already submitted.", changes={"submitted": True})
    lease.state, lease.ended_at = QALeaseState.RELEASED, timezone.now()
    lease.save(update_fields=["state", "ended_at"])
    return lease


def qa_draft_save(*, lease: QALease, reviewer: AbstractBaseUser, payload: Any) -> QADraft:
    """Save the reviewer's decisions in progress; a live lease is renewed. The payload's size
    (``EMOVERSE_MAX_DRAFT_BYTES``) and text are checked before anything is written."""
    if lease.reviewer_id != reviewer.pk:
        raise NotAllowed("This lease belongs to another reviewer.")
    size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > settings.EMOVERSE_MAX_DRAFT_BYTES:
        raise InvalidPair("payload", f"the draft has {size:,} bytes, more than {settings.EMOVERSE_MAX_DRAFT_BYTES:,}")
    check_storable(payload, "payload")
    with transaction.atomic():
        lease = lease_locked(lease.pk, reviewer)
        if lease.state == QALeaseState.SUBMITTED:
            raise VersionConflict("This lease was already submitted.", changes={"submitted": True})
        now = timezone.now()
        if lease.state == QALeaseState.ACTIVE and lease.expires_at > now:
            lease.expires_at = now + timedelta(minutes=lease.dataset.lease_minutes)
            lease.save(update_fields=["expires_at"])
        draft, _ = QADraft.objects.update_or_create(
            image_id=lease.image_id, reviewer=reviewer, defaults={"lease": lease, "payload": payload}
        )
    return draft


def qa_draft_payload(*, image_id: int, reviewer_id: int) -> Any:
    draft = QADraft.objects.filter(image_id=image_id, reviewer_id=reviewer_id).first()
    return draft.payload if draft is not None else None


def qa_pairs_for_review(*, image_id: int) -> list[QAPair]:
    """The image's pairs a reviewer decides: current and pending, lowest priority first."""
    return list(
        QAPair.objects.filter(image_id=image_id, is_current=True, status__in=REVIEWABLE)
        .select_related("category", "dimension")
        .prefetch_related("elements")
        .order_by("priority", "id")
    )


def qa_lease_state(*, lease: QALease, now=None) -> dict:
    now = now or timezone.now()
    return {
        "id": lease.pk,
        "expires_at": lease.expires_at.isoformat(),
        "live": lease.state == QALeaseState.ACTIVE and lease.expires_at > now,
    }


def qa_review_payload(*, lease: QALease) -> dict:
    """What the QA review page and ``POST …/next/`` give the reviewer: the lease, the image,
    its pending pairs (with the ids of their B-A-S elements), those elements (role, phrase,
    box, mask) and the reviewer's draft. Never another reviewer's decisions."""
    pairs = qa_pairs_for_review(image_id=lease.image_id)
    elements = {}
    for pair in pairs:
        for e in pair.elements.all():
            elements[str(e.pk)] = {"role": e.role, "phrase": e.phrase, "box": e.box, "mask": e.mask}
    image = lease.image
    return {
        "lease": qa_lease_state(lease=lease),
        "image": {"id": image.pk, "width": image.width, "height": image.height, "name": image.original_name},
        "pairs": [
            {
                "id": p.pk,
                "key": str(p.key),
                "version": p.version,
                "category": {"key": p.category.key, "name": p.category.name},
                "dimension": {"key": p.dimension.key, "name": p.dimension.name},
                "type": p.question_type,
                "question": p.question,
                "options": p.options,
                "answer": p.answer_index if p.question_type == "multiple_choice" else p.answer,
                "rationale": p.rationale,
                "model": p.model_name or p.author_name,
                "critic_agrees": p.critic_agrees,
                "elements": [str(e.pk) for e in p.elements.all()],
            }
            for p in pairs
        ],
        "elements": elements,
        "reasons": [{"value": v, "label": str(RejectReason(v).label)} for v in REJECT_REASONS],
        "draft": qa_draft_payload(image_id=lease.image_id, reviewer_id=lease.reviewer_id),
    }
