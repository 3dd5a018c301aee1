"""The review queue: leases, expiry, release, skip and drafts.

Claiming (``lease_next``) is one short transaction. On PostgreSQL the candidate
image row is taken with ``SELECT … FOR UPDATE SKIP LOCKED``, so concurrent
claimers walk past each other instead of queueing on the same row; the slot
rechecks then run while holding that row lock. There the whole claim is one
statement: the function ``review_claim`` (migration ``review.0004``) runs the
steps of :func:`_claim_once` in the database, each with a fresh snapshot, and
returns the lease with its image row. On SQLite the settings open every
transaction with ``BEGIN IMMEDIATE``, so claims are serialised by the database
write lock, and :func:`_claim_once` runs them in Python. On both, the partial unique constraints on ``Lease`` are
the last line: a claim that loses a race gets an ``IntegrityError`` and is
retried on the next candidate.

The calibration audit (``Dataset.audit_fraction``) is mixed in: each claim first
looks in the audit (the images with ``audit_draw < audit_fraction``, taken in
``audit_draw`` order, a uniform random order) with probability ``audit_fraction``,
else in the rest of the queue (lowest priority first); when the first has nothing
for the reviewer the other is tried. Audit images are never served by priority, so
the reviewed part of the audit is a uniform random sample of the dataset at every
moment (the temperature is fitted on it: ``ml.selectors``). Both orders are plain
``ORDER BY`` on one table, so the ``SKIP LOCKED`` claim is the same for either.

Expiry needs no cron: an expired lease no longer counts when candidates are
chosen, and its row is marked ``expired`` when its image is claimed again (or
by ``lease_expire_stale``, which a periodic task may call).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotations.errors import InvalidAnnotation, NotAllowed, NothingToDo
from annotations.prepared import prepared_cursor
from annotations.models import Dataset, Image, ImageStatus
from annotations.validation import check_storable
from review.errors import DraftTooLarge
from review.models import Draft, Lease, LeaseState, ReviewPlan

CLAIM_ATTEMPTS = 20
logger = logging.getLogger(__name__)
_rng = random.Random()  # which part of the queue a claim looks in first (tests replace it with a seeded one)


def required_reviews_for(*, dataset: Dataset, image_id: int) -> int:
    """``dataset.reviews_per_item`` for a deterministic ``overlap_fraction`` sample, else 1.

    The sample is decided by a hash of the dataset and image ids, so it is stable
    across processes and reruns and independent of the queue order.
    """
    if dataset.reviews_per_item <= 1 or dataset.overlap_fraction <= 0:
        return 1
    digest = hashlib.sha256(f"{dataset.pk}:{image_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return dataset.reviews_per_item if position < dataset.overlap_fraction else 1


def _active_leases(now) -> QuerySet[Lease]:
    return Lease.objects.filter(state=LeaseState.ACTIVE, expires_at__gt=now)


def lease_is_live(lease: Lease, now=None) -> bool:
    return lease.state == LeaseState.ACTIVE and lease.expires_at > (now or timezone.now())


def in_audit(dataset: Dataset) -> Q:
    """The images of ``dataset``'s calibration audit (``audit_draw < audit_fraction``)."""
    return Q(audit_draw__lt=dataset.audit_fraction)


def queue_candidates(
    *, dataset: Dataset, reviewer: AbstractBaseUser, now, include_skipped: bool, audit: bool | None = None
) -> QuerySet[Image]:
    """Images of ``dataset`` this reviewer may be given, best first.

    In review, not yet reviewed by this reviewer (nor skipped, unless
    ``include_skipped``), with a free slot: live leases plus submitted reviews
    fewer than the required reviews (1 until the plan is written on first claim).
    ``audit=True``: the audit images only, in ``audit_draw`` order; ``False``: the
    others, lowest priority first; ``None``: all, lowest priority first.
    """
    excluded_states = [LeaseState.SUBMITTED, LeaseState.SKIPPED] if not include_skipped else [LeaseState.SUBMITTED]
    mine = Lease.objects.filter(image=OuterRef("pk"), reviewer=reviewer, state__in=excluded_states)
    live = (
        _active_leases(now).filter(image=OuterRef("pk")).order_by().values("image").annotate(n=Count("id")).values("n")
    )
    plan = ReviewPlan.objects.filter(image=OuterRef("pk"))
    images = Image.objects.filter(dataset=dataset, status=ImageStatus.IN_REVIEW)
    if audit is not None:
        images = images.filter(in_audit(dataset)) if audit else images.exclude(in_audit(dataset))
    order = ("audit_draw", "id") if audit else ("priority", "created_at", "id")
    return (
        images.exclude(Exists(mine))
        .alias(
            n_live=Coalesce(Subquery(live, output_field=IntegerField()), Value(0)),
            n_required=Coalesce(Subquery(plan.values("required_reviews")[:1]), Value(1)),
            n_submitted=Coalesce(Subquery(plan.values("submitted_reviews")[:1]), Value(0)),
        )
        .filter(n_required__gt=F("n_live") + F("n_submitted"))
        .order_by(*order)
    )


def _expire_image_leases(image_id: int, now) -> None:
    Lease.objects.filter(image_id=image_id, state=LeaseState.ACTIVE, expires_at__lte=now).update(
        state=LeaseState.EXPIRED, ended_at=now
    )


def free_slot(*, image: Image, reviewer: AbstractBaseUser, dataset: Dataset, now) -> tuple[ReviewPlan, int] | None:
    """The plan and a free slot of ``image`` for ``reviewer``, or None.

    Precondition: called while holding the image row lock (PostgreSQL) or the
    write lock (SQLite). Marks the image's expired leases as expired.
    """
    _expire_image_leases(image.pk, now)
    plan, _ = ReviewPlan.objects.get_or_create(
        image=image, defaults={"dataset": dataset, "required_reviews": required_reviews_for(dataset=dataset, image_id=image.pk)}
    )
    if Lease.objects.filter(image=image, reviewer=reviewer, state=LeaseState.SUBMITTED).exists():
        return None
    used = set(Lease.objects.filter(image=image, state=LeaseState.ACTIVE).exclude(reviewer=reviewer).values_list("slot", flat=True))
    if len(used) + plan.submitted_reviews >= plan.required_reviews:
        return None
    slot = next(s for s in range(plan.required_reviews + len(used) + 1) if s not in used)
    return plan, slot


def _claim_once(dataset: Dataset, reviewer: AbstractBaseUser, now) -> Lease | None:
    get_user_model().objects.select_for_update().filter(pk=reviewer.pk).first()  # one claim at a time per reviewer
    held = _active_leases(now).filter(dataset=dataset, reviewer=reviewer).select_related("image").first()
    if held is not None:
        return held
    audit_first = _rng.random() < dataset.audit_fraction
    for include_skipped, audit in ((False, audit_first), (False, not audit_first), (True, audit_first), (True, not audit_first)):
        candidates = queue_candidates(dataset=dataset, reviewer=reviewer, now=now, include_skipped=include_skipped,
                                      audit=audit)
        image = candidates.select_for_update(skip_locked=True, of=("self",)).first()
        if image is None and candidates.exists():
            # Every candidate is locked by a concurrent claim; one with a slot left (K > 1) may
            # still fit this reviewer, so wait for the first instead of reporting an empty queue.
            image = candidates.select_for_update(of=("self",)).first()
        if image is None:
            continue
        found = free_slot(image=image, reviewer=reviewer, dataset=dataset, now=now)
        if found is None:
            raise IntegrityError("slot taken between selection and lock")  # retried by the caller
        # A lease of this reviewer that lapsed on this image is closed before the new one opens.
        Lease.objects.filter(image=image, reviewer=reviewer, state=LeaseState.ACTIVE).update(state=LeaseState.EXPIRED, ended_at=now)
        version = image.annotations.aggregate(v=Max("version"))["v"] or 0
        return Lease.objects.create(
            image=image, dataset=dataset, reviewer=reviewer, slot=found[1], version=version,
            expires_at=now + timedelta(minutes=dataset.lease_minutes),
        )
    return None


def _claim_postgres(dataset: Dataset, reviewer: AbstractBaseUser, now) -> Lease | None:
    """:func:`_claim_once` as one statement (``review_claim``, see the module docstring): the
    lease, with its image row, or None. Raises ``IntegrityError`` for a slot lost to a race."""
    lease_fields = [f for f in Lease._meta.concrete_fields]
    image_fields = [f for f in Image._meta.concrete_fields]
    quote = connection.ops.quote_name
    columns = [f"l.{quote(f.column)}" for f in lease_fields] + [f"im.{quote(f.column)}" for f in image_fields]
    sql = (f"SELECT {', '.join(columns)} FROM review_claim(%s, %s, %s, %s, %s, %s, %s, %s) AS l "
           f"JOIN {quote(Image._meta.db_table)} im ON im.id = l.image_id")
    audit_first = _rng.random() < dataset.audit_fraction
    with connection.cursor() as cursor:
        cursor.execute(sql, [dataset.pk, reviewer.pk, audit_first, now, dataset.audit_fraction, dataset.reviews_per_item,
                             dataset.overlap_fraction, dataset.lease_minutes])
        row = cursor.fetchone()
    if row is None:
        return None
    n = len(lease_fields)
    lease = Lease.from_db(connection.alias, [f.attname for f in lease_fields], row[:n])
    lease.image = Image.from_db(connection.alias, [f.attname for f in image_fields], row[n:])
    lease.dataset = dataset
    return lease


def lease_next(*, dataset: Dataset, reviewer: AbstractBaseUser) -> Lease:
    """Lease the next image of ``dataset`` to ``reviewer`` (or return the lease they hold).

    Order: with probability ``dataset.audit_fraction`` the next audit image (in
    ``audit_draw`` order), else the lowest ``Image.priority`` of the others, then
    oldest; either falls back to the other. Items this reviewer skipped come back
    only when nothing else is left. Raises :class:`NothingToDo`
    when the queue has nothing for this reviewer.
    """
    for _ in range(CLAIM_ATTEMPTS):
        try:
            if connection.vendor == "postgresql" and not connection.in_atomic_block:
                lease = _claim_postgres(dataset, reviewer, timezone.now())  # one statement: atomic by itself
            else:
                with transaction.atomic():
                    claim = _claim_postgres if connection.vendor == "postgresql" else _claim_once
                    lease = claim(dataset, reviewer, timezone.now())
        except IntegrityError:
            continue  # a concurrent claimer won that slot; pick again
        if lease is None:
            raise NothingToDo(f"No item left to review in {dataset.slug}.")
        return lease
    raise NothingToDo(f"The queue of {dataset.slug} is busy; no free item could be leased, try again.")


@dataclass(frozen=True)
class NextRow:
    """One answer of ``review_next`` (migration ``review.0006``): the dataset, the lease, the image
    and what the review page shows of it, read after the claim. ``answers``: the current model
    and import answers' metadata (JSON: id, kind, author_name, version, pipeline_version,
    ces_label) by author name; ``answer_payloads`` and ``answer_critics``: their review API JSON
    and their critics' JSON (text, None for none), in the same order; ``draft_*``: the
    reviewer's draft of the image (payload as JSON text), or None; ``reviewer_id``: whose claim."""

    dataset_id: int
    dataset_slug: str
    require_all_checked: bool
    lease_id: int
    lease_expires_at: datetime
    lease_version: int
    image_id: int
    image_width: int
    image_height: int
    image_source: str
    image_status: str
    image_original_name: str
    latest_version: int
    answers: str | None
    answer_payloads: list[str] | None
    answer_critics: list[str | None] | None
    draft_id: int | None
    draft_payload: str | None
    draft_saved_at: datetime | None
    reviewer_id: int


def _next_statement(dataset_slug: str, reviewer: AbstractBaseUser) -> tuple | None:
    with prepared_cursor() or connection.cursor() as cursor:
        cursor.execute("SELECT * FROM review_next(%s::text, %s::bigint, %s::float8, %s::timestamptz)",
                       [dataset_slug, reviewer.pk, _rng.random(), timezone.now()])
        return cursor.fetchone()


def lease_next_row(*, dataset_slug: str, reviewer: AbstractBaseUser) -> NextRow:
    """:func:`lease_next` and the reads of the review page in one statement (PostgreSQL only:
    ``review_next``, migration ``review.0006``, which claims with ``review_claim``). The same
    claim, retries and errors as :func:`lease_next`; ``Dataset.DoesNotExist`` for an unknown slug.
    The ``answers`` come as ``annotations.selectors.image_review_sources`` reads them."""
    for _ in range(CLAIM_ATTEMPTS):
        try:
            if connection.in_atomic_block:  # a savepoint, so that a lost race can be retried
                with transaction.atomic():
                    row = _next_statement(dataset_slug, reviewer)
            else:
                row = _next_statement(dataset_slug, reviewer)  # one statement: atomic by itself
        except IntegrityError:
            continue  # a concurrent claimer won that slot; pick again
        if row is None:
            raise Dataset.DoesNotExist(f"No dataset {dataset_slug!r}.")
        found = NextRow(*row, reviewer_id=reviewer.pk)
        if found.lease_id is None:
            raise NothingToDo(f"No item left to review in {found.dataset_slug}.")
        return found
    raise NothingToDo(f"The queue of {dataset_slug} is busy; no free item could be leased, try again.")


def lease_authorize(*, lease: Lease, reviewer: AbstractBaseUser) -> None:
    """Raise :class:`NotAllowed` unless ``lease`` is ``reviewer``'s: the one rule that authorises
    a reviewer's action on a lease (draft, release, skip, submit).

    Called on a plain read before any expensive work (measuring a draft, validating a
    submitted annotation), and again by :func:`lease_get_for_update` under the row lock.
    """
    if lease.reviewer_id != reviewer.pk:
        raise NotAllowed("This lease belongs to another reviewer.")


def lease_get_for_update(*, lease_id: int, reviewer: AbstractBaseUser) -> Lease:
    """The lease, its row locked (``SELECT … FOR UPDATE``), when it is ``reviewer``'s.

    Precondition: called inside a transaction. Raises :class:`NotAllowed` for another
    reviewer's lease (:func:`lease_authorize`). Whether the lease may still be acted on
    (submitted, lapsed) is the caller's check: each action answers it differently.
    """
    lease = Lease.objects.select_for_update(of=("self",)).select_related("dataset").get(pk=lease_id)
    lease_authorize(lease=lease, reviewer=reviewer)
    return lease


@transaction.atomic
def lease_end(*, lease: Lease, reviewer: AbstractBaseUser, state: str) -> Lease:
    """Release or skip: the item goes back to the queue. Skipped items come back to
    this reviewer only after everything else. Drafts are kept."""
    if state not in (LeaseState.RELEASED, LeaseState.SKIPPED):
        raise ValueError(f"lease_end() ends a lease as released or skipped, not {state!r}")
    lease = lease_get_for_update(lease_id=lease.pk, reviewer=reviewer)
    if lease.state == LeaseState.SUBMITTED:
        raise NotAllowed("This lease was already submitted.")
    now = timezone.now()
    lease.state, lease.ended_at = state, now
    lease.save(update_fields=["state", "ended_at"])
    return lease


def lease_expire_stale(*, now=None, batch: int = 1000) -> int:
    """Mark lapsed active leases as expired (optional housekeeping; claims do not need it)."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Lease.objects.filter(state=LeaseState.ACTIVE, expires_at__lte=now)
            .select_for_update(skip_locked=True).values_list("id", flat=True)[:batch]
        )
        return Lease.objects.filter(id__in=ids, state=LeaseState.ACTIVE).update(state=LeaseState.EXPIRED, ended_at=now)


def draft_check_size(payload: Any) -> None:
    """Raise :class:`DraftTooLarge` when ``payload`` as UTF-8 JSON is over ``EMOVERSE_MAX_DRAFT_BYTES``
    (a draft is sent back with every ``next``, so its size is capped)."""
    limit = settings.EMOVERSE_MAX_DRAFT_BYTES
    size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > limit:
        raise DraftTooLarge(f"payload: the draft has {size:,} bytes, more than the limit of {limit:,} (EMOVERSE_MAX_DRAFT_BYTES)")


def draft_save(*, lease: Lease, reviewer: AbstractBaseUser, payload: Any) -> Draft:
    """Save the reviewer's work in progress on the lease's image; a live lease is renewed.

    Whose lease it is, the draft's size and its text (``core.text``: a draft that breaks the
    policy could be stored but never sent back) are checked before the write transaction
    opens (:class:`NotAllowed`, :class:`DraftTooLarge`, :class:`InvalidAnnotation` for
    ``payload.…``); nothing is saved then.
    """
    lease_authorize(lease=lease, reviewer=reviewer)
    draft_check_size(payload)
    check_storable(payload, "payload")
    with transaction.atomic():
        lease = lease_get_for_update(lease_id=lease.pk, reviewer=reviewer)
        if lease.state == LeaseState.SUBMITTED:
            raise NotAllowed("This lease was already submitted; there is nothing left to draft.")
        now = timezone.now()
        if lease_is_live(lease, now):
            lease.expires_at = now + timedelta(minutes=lease.dataset.lease_minutes)
            lease.save(update_fields=["expires_at"])
        draft, _ = Draft.objects.update_or_create(
            image_id=lease.image_id, reviewer=reviewer, defaults={"lease": lease, "payload": payload}
        )
    return draft


@transaction.atomic
def draft_get(*, lease: Lease, reviewer: AbstractBaseUser) -> Draft | None:
    lease = lease_get_for_update(lease_id=lease.pk, reviewer=reviewer)
    return draft_readable(image_id=lease.image_id, reviewer_id=reviewer.pk)


def draft_readable(*, image_id: int, reviewer_id: int) -> Draft | None:
    """The reviewer's draft of the image, unless it cannot be sent back (:func:`draft_with_notice`)."""
    return draft_with_notice(image_id=image_id, reviewer_id=reviewer_id)[0]


def draft_with_notice(*, image_id: int, reviewer_id: int) -> tuple[Draft | None, str]:
    """The reviewer's draft of the image and, when a stored draft is not sent back, a notice for them.

    A draft whose payload breaks the text policy (stored before the policy, on SQLite) would make
    every answer that carries it fail; one over ``EMOVERSE_MAX_DRAFT_BYTES`` (stored before the
    limit) would be sent with every ``next``. Either counts as no draft (it stays stored; the next
    save replaces it, a submit deletes it); the oversize one comes with a notice saying why.
    """
    return draft_sendable(Draft.objects.filter(image_id=image_id, reviewer_id=reviewer_id).first())


def draft_sendable(draft: Draft | None) -> tuple[Draft | None, str]:
    """``draft``, or None and a notice when it may not be sent back (:func:`draft_with_notice`)."""
    if draft is None:
        return None, ""
    reviewer_id, image_id = draft.reviewer_id, draft.image_id
    try:
        draft_check_size(draft.payload)
    except DraftTooLarge as exc:
        logger.warning("draft %s of reviewer %s on image %s is not sent: %s", draft.pk, reviewer_id, image_id, exc)
        limit = settings.EMOVERSE_MAX_DRAFT_BYTES
        return None, (
            f"Your draft of this image saved at {draft.saved_at:%Y-%m-%d %H:%M} UTC is larger than the draft limit of "
            f"{limit:,} bytes (it was saved before the limit existed), so it was not loaded: you see the current version. "
            "Your next change saves a new draft in its place."
        )
    try:
        check_storable(draft.payload, "payload")
    except InvalidAnnotation as exc:
        logger.warning("draft %s of reviewer %s on image %s is ignored: %s", draft.pk, reviewer_id, image_id, exc)
        return None, ""
    return draft, ""


def review_plans_reset(*, image_ids: list[int]) -> int:
    """Forget the review plans of images sent back to review: each wants reviews again (its
    next claim writes a fresh plan), so the queue and the independence rule
    (``review.visibility.images_user_may_review``) treat it as never reviewed."""
    return ReviewPlan.objects.filter(image_id__in=image_ids).delete()[0]
