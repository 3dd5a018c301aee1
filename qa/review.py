"""QA review: submit, the final versions, and the reviewers against the model (the queue,
leases and drafts are ``qa.review_queue``).

The rules are the triplet review's (``review.queue``, ``review.services``), for an image's
QA pairs:

* **Leases.** ``qa_lease_next`` gives a reviewer the image they hold on the dataset, else
  the next image with pending pairs (lowest pair priority first: pairs the critic did not
  reproduce come first) that has a free slot. A lease lasts ``dataset.lease_minutes`` and a
  draft save renews it; a lapsed lease counts for nothing and is marked expired when its
  image is claimed again.
* **K overlap.** An image needs ``dataset.reviews_per_item`` independent reviews for the
  ``overlap_fraction`` sample of images (a hash of dataset and image, as for triplets), else
  one. Each review holds a slot; a reviewer reviews an image once. Until the last of the K
  reviews is in, the pairs stay ``pending`` and unchanged, so no reviewer sees another's
  decisions.
* **Submit** (``qa_review_submit``): one decision per pending pair (accept, edit with the
  new question/options/answer, reject with a reason), each naming the pair version read.
  :class:`VersionConflict` (HTTP 409) when the lease was submitted already, lapsed and its
  slot was taken, or a pair changed since it was read; nothing is written then and the
  draft stays.
* **Final decision.** When the image's last review is in, each pair whose reviewers agree
  (same decision; edits with the same content and answer) gets its new version from
  ``qa.services.qa_pair_new_version`` (accepted, edited or rejected); the others go to
  adjudication (``qa.adjudication``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from annotations.errors import NotAllowed, VersionConflict
from annotations.models import Image
from qa.errors import InvalidPair
from qa.models import (
    QAAdjudication,
    QADecision,
    QADecisionKind,
    QADraft,
    QALease,
    QALeaseState,
    QAPair,
    QAReview,
    QAReviewPlan,
    QAStatus,
    RejectReason,
)
from qa.selectors import qa_axes
from qa.services import qa_pair_new_version
from qa.review_queue import (
    REJECT_REASONS,
    REVIEWABLE,
    free_slot,
    lease_locked,
    live_leases,
    qa_pairs_for_review,
)
from qa.text import pair_content_hash
from qa.validation import PairInput, validate_pair


@dataclass(frozen=True)
class CheckedDecision:
    pair: QAPair
    decision: str
    reject_reason: str
    values: PairInput | None


def _pair_payload(pair: QAPair) -> dict:
    answer = pair.answer_index if pair.question_type == "multiple_choice" else pair.answer
    return {
        "category": pair.category.key,
        "dimension": pair.dimension.key,
        "type": pair.question_type,
        "question": pair.question,
        "options": pair.options,
        "answer": answer,
        "rationale": pair.rationale,
    }


def _check_decisions(raw: Any, pairs: Sequence[QAPair], axes) -> list[CheckedDecision]:
    """One checked decision per pending pair; :class:`InvalidPair` names the bad field, and
    :class:`VersionConflict` says which pairs changed since the reviewer read them."""
    if not isinstance(raw, list):
        raise InvalidPair("decisions", "a list of one decision per pair")
    by_id = {pair.pk: pair for pair in pairs}
    seen: dict[int, CheckedDecision] = {}
    stale = []
    for i, item in enumerate(raw):
        field = f"decisions[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("pair"), int) or isinstance(item["pair"], bool):
            raise InvalidPair(f"{field}.pair", "each decision names its pair (the id of the version read)")
        pair = by_id.get(item["pair"])
        if pair is None:
            stale.append(item["pair"])
            continue
        if item["pair"] in seen:
            raise InvalidPair(f"{field}.pair", "one decision per pair")
        decision = item.get("decision")
        if decision not in QADecisionKind.values:
            raise InvalidPair(f"{field}.decision", f"must be one of {', '.join(QADecisionKind.values)}")
        reason = item.get("reason") or ""
        if decision == QADecisionKind.REJECT and reason not in REJECT_REASONS:
            raise InvalidPair(f"{field}.reason", f"a rejection needs a reason: {', '.join(REJECT_REASONS)}")
        if decision != QADecisionKind.REJECT and reason:
            raise InvalidPair(f"{field}.reason", "only a rejection has a reason")
        values = None
        if decision == QADecisionKind.EDIT:
            edit = item.get("edit")
            if not isinstance(edit, Mapping):
                raise InvalidPair(f"{field}.edit", "an edit carries the new question, options and answer")
            merged = {**_pair_payload(pair), **{k: edit[k] for k in ("question", "options", "answer") if k in edit}}
            try:
                values = validate_pair(merged, categories=axes.categories, dimensions=axes.dimensions)
            except InvalidPair as exc:
                raise InvalidPair(f"{field}.edit.{exc.field}", exc.message) from None
        seen[pair.pk] = CheckedDecision(pair=pair, decision=decision, reject_reason=reason, values=values)
    if stale:
        raise VersionConflict("Some pairs changed since you read them; reload the image.", changes={"pairs": stale})
    missing = [pk for pk in by_id if pk not in seen]
    if missing:
        raise InvalidPair("decisions", f"every pair needs a decision; {len(missing)} have none")
    return list(seen.values())


def _edit_signature(values: PairInput) -> str:
    """SHA-256 of an edit's content and answer: two reviewers' edits agree when it is equal."""
    answer = str(values.answer_index) if values.answer_index is not None else values.answer.strip().casefold()
    content = pair_content_hash(values.question_type, values.question, values.options)
    return hashlib.sha256(f"{content}\x1f{answer}".encode()).hexdigest()


def _decision_row(review: QAReview, checked: CheckedDecision) -> QADecision:
    pair, values = checked.pair, checked.values
    answer_changed = values is not None and (
        values.answer_index != pair.answer_index
        or values.answer.strip().casefold() != pair.answer.strip().casefold()
        or (values.options is not None and list(values.options) != list(pair.options or []))
    )
    if checked.decision == QADecisionKind.ACCEPT:
        correct = True
    elif checked.decision == QADecisionKind.EDIT:
        correct = not answer_changed
    else:
        correct = False if checked.reject_reason == RejectReason.WRONG_ANSWER else None
    return QADecision(
        review=review,
        pair=pair,
        pair_key=pair.key,
        dataset_id=pair.dataset_id,
        category_id=pair.category_id,
        dimension_id=pair.dimension_id,
        model_name=pair.model_name,
        decision=checked.decision,
        reject_reason=checked.reject_reason,
        edited=None
        if values is None
        else {"question": values.question, "options": values.options, "answer": _answer_of(values)},
        edited_hash=_edit_signature(values) if values is not None else "",
        answer_changed=answer_changed,
        model_answer_correct=correct,
        critic_agrees=pair.critic_agrees,
    )


def _answer_of(values: PairInput) -> Any:
    return values.answer_index if values.question_type == "multiple_choice" else values.answer


def _lease_for_submit(lease_id: int, reviewer: AbstractBaseUser, image: Image, now) -> QALease:
    """The caller's lease, locked and live; a lapsed lease is taken up again while its slot is free."""
    lease = lease_locked(lease_id, reviewer)
    if lease.state == QALeaseState.SUBMITTED:
        raise VersionConflict("You have submitted this image already.", changes={"submitted": True})
    if lease.state == QALeaseState.ACTIVE and lease.expires_at > now:
        return lease
    newer = live_leases(now).filter(image=image, reviewer=reviewer).exclude(pk=lease.pk).exists()
    slot = None if newer else free_slot(image=image, reviewer=reviewer, dataset=lease.dataset, now=now)
    if slot is None:
        raise VersionConflict(
            "Your lease ended and the image was taken by another reviewer; your draft is kept.",
            changes={"lease_lost": True},
        )
    QALease.objects.filter(image=image, reviewer=reviewer, state=QALeaseState.ACTIVE).exclude(pk=lease.pk).update(
        state=QALeaseState.EXPIRED, ended_at=now
    )
    lease.state, lease.slot = QALeaseState.ACTIVE, slot
    return lease


@dataclass(frozen=True)
class QASubmitResult:
    review: QAReview
    final: bool
    applied: int
    adjudications: int


def qa_review_submit(*, lease: QALease, reviewer: AbstractBaseUser, decisions: Any) -> QASubmitResult:
    """Submit the reviewer's decisions on the leased image's pending pairs (module docstring)."""
    if lease.reviewer_id != reviewer.pk:
        raise NotAllowed("This lease belongs to another reviewer.")
    axes = qa_axes(dataset_id=lease.dataset_id)
    with transaction.atomic():
        image = Image.objects.select_for_update().get(pk=lease.image_id)
        now = timezone.now()
        lease = _lease_for_submit(lease.pk, reviewer, image, now)
        checked = _check_decisions(decisions, qa_pairs_for_review(image_id=image.pk), axes)
        lease.state, lease.ended_at = QALeaseState.SUBMITTED, now
        lease.save(update_fields=["state", "slot", "ended_at"])
        review = QAReview.objects.create(lease=lease, image=image, dataset_id=image.dataset_id, reviewer=reviewer)
        QADecision.objects.bulk_create([_decision_row(review, c) for c in checked])
        plan = QAReviewPlan.objects.select_for_update().get(image=image)
        plan.submitted_reviews += 1
        plan.save(update_fields=["submitted_reviews"])
        QADraft.objects.filter(image=image, reviewer=reviewer).delete()
        applied = opened = 0
        if plan.submitted_reviews >= plan.required_reviews:
            applied, opened = _finalise(image=image, user=reviewer)
    return QASubmitResult(
        review=review, final=plan.submitted_reviews >= plan.required_reviews, applied=applied, adjudications=opened
    )


def _signature(d: QADecision) -> tuple:
    if d.decision == QADecisionKind.EDIT:
        return (d.decision, d.edited_hash)
    return (d.decision,)


def qa_apply_decision(
    *,
    pair: QAPair,
    user: AbstractBaseUser,
    decision: QADecision | None,
    reject_reason: str = "",
    accept: bool = False,
    note: str = "",
) -> QAPair:
    """The pair's new version from one decision (a reviewer's, or the adjudicator's choice)."""
    if decision is None:
        status = QAStatus.ACCEPTED if accept else QAStatus.REJECTED
        return qa_pair_new_version(
            pair=pair,
            expected_version=pair.version,
            user=user,
            status=status,
            reject_reason="" if accept else reject_reason,
            review_note=note,
        )
    if decision.decision == QADecisionKind.ACCEPT:
        return qa_pair_new_version(
            pair=pair, expected_version=pair.version, user=user, status=QAStatus.ACCEPTED, review_note=note
        )
    if decision.decision == QADecisionKind.REJECT:
        return qa_pair_new_version(
            pair=pair,
            expected_version=pair.version,
            user=user,
            status=QAStatus.REJECTED,
            reject_reason=reject_reason or decision.reject_reason,
            review_note=note,
        )
    axes = qa_axes(dataset_id=pair.dataset_id)
    values = validate_pair(
        {**_pair_payload(pair), **decision.edited}, categories=axes.categories, dimensions=axes.dimensions
    )
    return qa_pair_new_version(
        pair=pair, expected_version=pair.version, user=user, status=QAStatus.EDITED, values=values, review_note=note
    )


def _finalise(*, image: Image, user: AbstractBaseUser) -> tuple[int, int]:
    """After the image's last review: apply the agreed decisions, open an adjudication for
    each pair the reviewers disagree on. Precondition: in a transaction, the image locked."""
    decisions: dict[Any, list[QADecision]] = {}
    for d in QADecision.objects.filter(review__image=image).select_related("pair").order_by("id"):
        decisions.setdefault(d.pair_key, []).append(d)
    applied = opened = 0
    for key, rows in decisions.items():
        pair = QAPair.objects.filter(key=key, is_current=True).select_related("category", "dimension").first()
        if pair is None or pair.status not in REVIEWABLE or pair.pk != rows[-1].pair_id:
            continue  # decided already (an earlier round) or changed by someone else
        if len({_signature(d) for d in rows}) == 1:
            reason = Counter(d.reject_reason for d in rows).most_common(1)[0][0]
            qa_apply_decision(pair=pair, user=user, decision=rows[-1], reject_reason=reason)
            applied += 1
        elif not QAAdjudication.objects.filter(pair_key=key, state="open").exists():
            QAAdjudication.objects.create(pair_key=key, pair=pair, image=image, dataset_id=image.dataset_id)
            opened += 1
    return applied, opened


def qa_decision_summary(*, dataset_id: int) -> list[dict]:
    """Reviewers against the generating model, per category and dimension (keys): decisions,
    accepted, edited, rejected, the acceptance rate (accepted or edited over all) and the
    model's answer accuracy (``model_answer_correct`` true over those with a verdict)."""
    rows = (
        QADecision.objects.filter(dataset_id=dataset_id)
        .values("category__key", "dimension__key")
        .annotate(
            decisions=Count("id"),
            accepted=Count("id", filter=Q(decision=QADecisionKind.ACCEPT)),
            edited=Count("id", filter=Q(decision=QADecisionKind.EDIT)),
            rejected=Count("id", filter=Q(decision=QADecisionKind.REJECT)),
            correct=Count("id", filter=Q(model_answer_correct=True)),
            judged=Count("id", filter=Q(model_answer_correct__isnull=False)),
        )
        .order_by("category__key", "dimension__key")
    )
    return [
        {
            "category": r["category__key"],
            "dimension": r["dimension__key"],
            "decisions": r["decisions"],
            "accepted": r["accepted"],
            "edited": r["edited"],
            "rejected": r["rejected"],
            "acceptance_rate": (r["accepted"] + r["edited"]) / r["decisions"],
            "model_accuracy": r["correct"] / r["judged"] if r["judged"] else None,
        }
        for r in rows
    ]
