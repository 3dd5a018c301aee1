"""QA adjudication: pairs whose K independent reviewers disagreed (``qa.review``) wait here
for an adjudicator, who takes one of the reviewers' decisions (or accepts the pair as the
model wrote it, or rejects it with a reason). An adjudicator never decides a pair of an image
they reviewed themselves."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotations.errors import NotAllowed, VersionConflict
from annotations.models import Dataset
from qa.errors import InvalidPair
from qa.models import QAAdjudication, QAAdjudicationState, QADecision, QAPair, QAReview
from qa.review import qa_apply_decision
from qa.review_queue import REJECT_REASONS


def qa_adjudication_queue(*, user: AbstractBaseUser, dataset: Dataset | None = None) -> QuerySet[QAAdjudication]:
    """Open adjudications, oldest first, without the images ``user`` reviewed."""
    qs = QAAdjudication.objects.filter(state=QAAdjudicationState.OPEN).select_related(
        "pair", "pair__category", "pair__dimension", "image", "dataset"
    )
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    return qs.exclude(image_id__in=QAReview.objects.filter(reviewer=user).values("image_id")).order_by("id")


def qa_adjudication_check(*, item: QAAdjudication, user: AbstractBaseUser) -> None:
    if QAReview.objects.filter(image_id=item.image_id, reviewer=user).exists():
        raise NotAllowed("You reviewed this image's pairs; another adjudicator decides them.")


def qa_adjudication_decisions(*, item: QAAdjudication) -> list[QADecision]:
    """The reviewers' decisions on the pair, in submission order."""
    return list(
        QADecision.objects.filter(pair_key=item.pair_key, review__image_id=item.image_id)
        .select_related("review__reviewer")
        .order_by("review_id")
    )


@transaction.atomic
def qa_adjudication_decide(
    *, item: QAAdjudication, user: AbstractBaseUser, choice: str, reject_reason: str = "", note: str = ""
) -> QAPair:
    """Decide ``item``: ``choice`` is ``decision:<id>`` (a reviewer's decision), ``accept`` or
    ``reject`` (with ``reject_reason``). Raises :class:`VersionConflict` when it was decided
    already or the pair changed, :class:`InvalidPair` for a bad choice."""
    item = QAAdjudication.objects.select_for_update().get(pk=item.pk)
    qa_adjudication_check(item=item, user=user)
    if item.state != QAAdjudicationState.OPEN:
        raise VersionConflict("This pair was adjudicated already.", changes={"decided": True})
    pair = QAPair.objects.filter(key=item.pair_key, is_current=True).first()
    if pair is None or pair.pk != item.pair_id:
        raise VersionConflict("The pair changed since the reviews; adjudicate it again from the list.")
    if choice == "accept":
        result = qa_apply_decision(pair=pair, user=user, decision=None, accept=True, note=note)
    elif choice == "reject":
        if reject_reason not in REJECT_REASONS:
            raise InvalidPair("reason", f"a rejection needs a reason: {', '.join(REJECT_REASONS)}")
        result = qa_apply_decision(pair=pair, user=user, decision=None, reject_reason=reject_reason, note=note)
    elif choice.startswith("decision:") and choice[9:].isascii() and choice[9:].isdigit():
        decision = next((d for d in qa_adjudication_decisions(item=item) if d.pk == int(choice[9:])), None)
        if decision is None:
            raise InvalidPair("choice", "not one of this pair's decisions")
        result = qa_apply_decision(pair=pair, user=user, decision=decision, note=note)
    else:
        raise InvalidPair("choice", "decision:<id>, accept or reject")
    item.state, item.decided_by, item.result, item.decided_at = (
        QAAdjudicationState.DECIDED,
        user,
        result,
        timezone.now(),
    )
    item.save(update_fields=["state", "decided_by", "result", "decided_at"])
    return result
