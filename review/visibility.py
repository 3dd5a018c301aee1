"""Independent reviews (docs/review-api.md, "Independent reviews"): on which images a
user's review must stay independent, and what each user may therefore see of people's
answers. ``review.selectors`` (the image page, the disagreement log), the annotations
API and adjudication apply these rules."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from annotations.errors import NotAllowed
from annotations.models import Annotation, AnnotationKind, Image, ImageStatus
from annotations.roles import has_role
from core.vocabulary import ADJUDICATOR, ADMIN, RESEARCHER, REVIEWER
from review.errors import NotInAdjudication
from review.models import Lease, LeaseState, ReviewSubmission

DONE_STATUSES = (ImageStatus.APPROVED, ImageStatus.REJECTED, ImageStatus.FLAGGED)

# Independent reviews (docs/review-api.md, "Independent reviews"). One rule says
# on which images a user's review must stay independent; every endpoint and page
# that shows people's answers applies it: the annotations API (registered with
# ``annotations.selectors.hidden_answers_register`` in ``review.apps``), the image
# page, the disagreement log. Adjudication answers only for images waiting for it,
# and never to a person who reviewed the image.

PERSON_KINDS = (AnnotationKind.HUMAN, AnnotationKind.ADJUDICATION)
REVIEWABLE_STATUSES = (ImageStatus.IN_REVIEW,)


def images_user_may_review(*, user: AbstractBaseUser, now: datetime | None = None) -> QuerySet[Image]:
    """The images on which ``user`` holds, or may still be given, a review slot.

    An image is one of them when the user holds a live lease on it (active, not
    expired), or when all of these hold:

    - the user has the reviewer role;
    - the image is in a reviewable status (:data:`REVIEWABLE_STATUSES`: in review,
      the only status the queue serves);
    - the dataset wants more reviews of it than it has: its plan's
      ``required_reviews`` exceed its ``submitted_reviews`` (an image never leased
      has no plan yet and wants its first review). Slots held by other people's
      live leases still count as open: a lease may lapse and its slot be given out;
    - the user has not submitted a review of it (skipped items count: the queue
      serves them again).
    """
    now = now or timezone.now()
    live = Lease.objects.filter(reviewer=user, state=LeaseState.ACTIVE, expires_at__gt=now).values("image_id")
    held = Q(pk__in=live)
    if not has_role(user, REVIEWER):
        return Image.objects.filter(held)
    submitted = ReviewSubmission.objects.filter(reviewer=user).values("image_id")
    wants_more = Q(review_plan__isnull=True) | Q(review_plan__required_reviews__gt=F("review_plan__submitted_reviews"))
    open_slot = Q(status__in=REVIEWABLE_STATUSES) & wants_more & ~Q(pk__in=submitted)
    return Image.objects.filter(held | open_slot)


def user_may_review(*, user: AbstractBaseUser, image: Image, now: datetime | None = None) -> bool:
    """True when ``user`` holds, or may still be given, a review slot on ``image`` (:func:`images_user_may_review`)."""
    return images_user_may_review(user=user, now=now).filter(pk=image.pk).exists()


def others_answers(user: AbstractBaseUser) -> Q:
    """Annotations hidden from ``user`` everywhere: other people's answers (review and
    adjudication versions) on the images of :func:`images_user_may_review`."""
    return Q(kind__in=PERSON_KINDS, image__in=images_user_may_review(user=user)) & ~Q(author_user=user)


def reviewer_has_submitted(*, image: Image, user: AbstractBaseUser) -> bool:
    return ReviewSubmission.objects.filter(image=image, reviewer=user).exists()


def adjudication_check(*, image: Image, user: AbstractBaseUser) -> None:
    """Raise unless ``user`` may see and decide the adjudication of ``image`` now.

    :class:`review.errors.NotInAdjudication` (404) when the image is not waiting
    for adjudication, :class:`NotAllowed` (403) when the user reviewed it: nobody
    adjudicates a conflict their own review is part of.
    """
    if image.status != ImageStatus.ADJUDICATION:
        raise NotInAdjudication(f"Image {image.pk} is not waiting for adjudication.")
    if reviewer_has_submitted(image=image, user=user):
        raise NotAllowed(f"You reviewed image {image.pk}; another adjudicator decides it.")


def user_is_editing(*, image: Image, user: AbstractBaseUser, now: datetime | None = None) -> bool:
    """True when ``user`` works on ``image`` now: holds a live lease on it, or may adjudicate it."""
    now = now or timezone.now()
    if Lease.objects.filter(image=image, reviewer=user, state=LeaseState.ACTIVE, expires_at__gt=now).exists():
        return True
    return (image.status == ImageStatus.ADJUDICATION and has_role(user, ADJUDICATOR)
            and not reviewer_has_submitted(image=image, user=user))


# The read-only image page: which annotations and versions a user may see.
# Nobody sees other people's answers on an image they hold or may still be given
# a review slot on (:func:`user_may_review`). Besides, a person who only reviews
# sees other people's answers only once they submitted their own review of the
# image or the image is finished. Otherwise adjudicators, researchers and admins
# see all.


def sees_all_reviews(*, image: Image, user: AbstractBaseUser) -> bool:
    if user_may_review(user=user, image=image):
        return False
    if has_role(user, ADJUDICATOR, RESEARCHER, ADMIN) or image.status in DONE_STATUSES:
        return True
    return reviewer_has_submitted(image=image, user=user)


def _hidden(user: AbstractBaseUser) -> Q:
    """Other people's review versions."""
    return Q(kind__in=PERSON_KINDS) & ~Q(author_user=user)


def visible_versions(*, image: Image, user: AbstractBaseUser) -> QuerySet[Annotation]:
    """Every version of the image the user may see, newest first."""
    qs = image.annotations.select_related("author_user").order_by("-version")
    return qs if sees_all_reviews(image=image, user=user) else qs.exclude(_hidden(user))
