"""Review state: leases on queue items, drafts, submitted reviews with their element
decisions, and the log of model-versus-human disagreements.

The annotations themselves (human and adjudication versions) live in
``annotations``; rows here point at them.

Leases and slots: an image needing ``required_reviews`` independent reviews has
that many *slots*. An active lease holds one slot, and the database refuses two
active leases on the same ``(image, slot)`` and two active leases of one reviewer
on one image; a reviewer submits at most once per image. A single-review item
only ever uses slot 0, so the database itself guarantees one active lease.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotations.models import Annotation, Dataset, Image
from core.vocabulary import ROLES


class ReviewPlan(models.Model):
    """How many independent reviews an image needs, fixed when it is first leased.

    ``required_reviews`` is ``dataset.reviews_per_item`` for the sampled
    ``dataset.overlap_fraction`` of images (chosen deterministically from a hash
    of the image id), else 1. ``submitted_reviews`` counts submitted reviews.
    """

    image = models.OneToOneField(Image, on_delete=models.CASCADE, primary_key=True, related_name="review_plan")
    # No index of its own: reviewplan_dataset_idx leads with it.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+", db_index=False)
    required_reviews = models.PositiveSmallIntegerField()
    submitted_reviews = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(required_reviews__gte=1), name="reviewplan_required_gte_1"),
        ]
        indexes = [models.Index(fields=["dataset", "required_reviews"], name="reviewplan_dataset_idx")]


class LeaseState(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"
    SUBMITTED = "submitted", "Submitted"


class Lease(models.Model):
    """One reviewer's hold on one image. Active until it expires, is released, skipped or submitted."""

    # image, dataset, reviewer: no index of their own; lease_image_idx, lease_expiry_idx and
    # lease_reviewer_idx lead with them (each claim inserts a lease, each submit updates one).
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="leases", db_index=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="leases", db_index=False)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="leases", db_index=False)
    slot = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(max_length=16, choices=LeaseState.choices, default=LeaseState.ACTIVE)
    version = models.PositiveIntegerField(help_text="The image's latest annotation version when leased.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "slot"], condition=Q(state="active"), name="lease_one_active_per_slot"),
            models.UniqueConstraint(fields=["image", "reviewer"], condition=Q(state="active"), name="lease_one_active_per_reviewer"),
            models.UniqueConstraint(fields=["image", "reviewer"], condition=Q(state="submitted"), name="lease_one_submission_per_reviewer"),
            models.CheckConstraint(condition=Q(state__in=LeaseState.values), name="lease_state_valid"),
        ]
        indexes = [
            models.Index(fields=["dataset", "state", "expires_at"], name="lease_expiry_idx"),
            models.Index(fields=["reviewer", "dataset", "state"], name="lease_reviewer_idx"),
            models.Index(fields=["image", "state"], name="lease_image_idx"),
        ]

    def __str__(self) -> str:
        return f"lease {self.pk} image {self.image_id} → {self.reviewer_id} ({self.state})"


class Draft(models.Model):
    """A reviewer's edits in progress on an image; survives reloads and lost leases."""

    # image: no index of its own; draft_one_per_reviewer_image leads with it.
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+", db_index=False)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    lease = models.ForeignKey(Lease, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    payload = models.JSONField()
    saved_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "reviewer"], name="draft_one_per_reviewer_image")]


class ReviewSubmission(models.Model):
    """One submitted review: the human annotation version it created and the lease it closed."""

    lease = models.OneToOneField(Lease, on_delete=models.PROTECT, related_name="submission")
    # image, dataset: no index of their own; submission_image_idx and submission_reviewer_idx lead with them.
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="review_submissions", db_index=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+", db_index=False)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="review_submissions")
    annotation = models.OneToOneField(Annotation, on_delete=models.PROTECT, related_name="review_submission")
    decision = models.CharField(max_length=16)
    time_spent_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["dataset", "reviewer", "created_at"], name="submission_reviewer_idx"),
            models.Index(fields=["image", "created_at"], name="submission_image_idx"),
        ]


class ElementAction(models.TextChoices):
    ACCEPT = "accept", "Accept"
    ACCEPT_ALL = "accept_all", "Accept all remaining (one explicit act)"
    REJECT = "reject", "Reject"
    EDIT_PHRASE = "edit_phrase", "Edit phrase"
    EDIT_BOX = "edit_box", "Edit box"
    EDIT_MASK = "edit_mask", "Edit mask"
    ADD = "add", "Add"


class DisagreementKind(models.TextChoices):
    REVIEW = "review", "Review"
    ADJUDICATION = "adjudication", "Adjudication"


class ElementDecision(models.Model):
    """One per-element action of a review or an adjudication, with the value before and after.

    ``kind`` says which: a reviewer's row belongs to their ``submission``; an adjudicator's
    row has none (``reviewer`` is then the adjudicator, ``annotation`` the ADJUDICATION
    version). Every per-element decision people made is here, in one table.
    """

    submission = models.ForeignKey(ReviewSubmission, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="decisions")
    kind = models.CharField(max_length=16, choices=DisagreementKind.choices, default=DisagreementKind.REVIEW)
    # image, reviewer: no index of their own; decision_element_idx and decision_reviewer_idx lead with
    # them (a submit writes a row per element). Nothing reads this table by action: no index on it.
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+", db_index=False)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False,
                                 help_text="Who decided: the reviewer, or the adjudicator on an adjudication row.")
    annotation = models.ForeignKey(Annotation, on_delete=models.PROTECT, related_name="+")
    triplet_key = models.UUIDField()
    role = models.CharField(max_length=16)
    action = models.CharField(max_length=16, choices=ElementAction.choices)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    time_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=ElementAction.values), name="decision_action_valid"),
            models.CheckConstraint(condition=Q(role__in=ROLES), name="decision_role_valid"),
            models.CheckConstraint(
                condition=Q(kind="review", submission__isnull=False) | Q(kind="adjudication", submission__isnull=True),
                name="decision_kind_matches_submission",
            ),
        ]
        indexes = [
            models.Index(fields=["reviewer", "created_at"], name="decision_reviewer_idx"),
            models.Index(fields=["image", "triplet_key", "role"], name="decision_element_idx"),
        ]


class DisagreementField(models.TextChoices):
    CES_LABEL = "ces_label", "CES label"
    ELEMENT_PHRASE = "element_phrase", "Element phrase"
    ELEMENT_REJECTED = "element_rejected", "Element rejected"
    BOX = "box", "Box"
    MASK = "mask", "Mask"
    ELEMENT_ADDED = "element_added", "Element added"


class PairedBy(models.TextChoices):
    """How a row's model triplet and human triplet were paired (``core.alignment``)."""

    NONE = "", "Not paired"  # the label, an element with no counterpart, or a row logged before pairing was recorded
    KEY = "key", "Same triplet key"
    MEANING = "meaning", "By meaning"
    WORDS = "words", "By words (no embedding yet)"


class Disagreement(models.Model):
    """One difference between a model's answer and a person's final answer.

    ``model_value``/``human_value`` are JSON (a label, a phrase, a box, an RLE
    mask, or an element object). ``model_confidence`` is the model's CES
    confidence for label rows, its box score for box rows, its mask score for
    mask rows and the box score (if any) for element rows. ``paired_by`` says how the
    element's model and human triplets were paired (by words where a phrase had no stored
    embedding yet: a row from such a pairing may be noise).
    """

    # image, dataset, reviewer: no index of their own; the named indexes below lead with them
    # (every row a submit writes updates each index of this table).
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="disagreements", db_index=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="disagreements", db_index=False)
    model_name = models.CharField(max_length=150)
    model_annotation = models.ForeignKey(Annotation, null=True, on_delete=models.SET_NULL, related_name="+")
    field = models.CharField(max_length=20, choices=DisagreementField.choices)
    triplet_key = models.UUIDField(null=True, blank=True)
    role = models.CharField(max_length=16, blank=True)
    model_value = models.JSONField(null=True, blank=True)
    model_confidence = models.FloatField(null=True, blank=True)
    human_value = models.JSONField(null=True, blank=True)
    box_iou = models.FloatField(null=True, blank=True)
    mask_iou = models.FloatField(null=True, blank=True)
    paired_by = models.CharField(max_length=8, choices=PairedBy.choices, blank=True, default=PairedBy.NONE)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False)
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="disagreements")
    kind = models.CharField(max_length=16, choices=DisagreementKind.choices, default=DisagreementKind.REVIEW)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(field__in=DisagreementField.values), name="disagreement_field_valid"),
            models.CheckConstraint(condition=Q(kind__in=DisagreementKind.values), name="disagreement_kind_valid"),
        ]
        indexes = [
            models.Index(fields=["dataset", "id"], name="disagreement_dataset_idx"),
            models.Index(fields=["dataset", "model_name", "field", "id"], name="disagreement_model_idx"),
            models.Index(fields=["dataset", "field", "id"], name="disagreement_field_idx"),
            models.Index(fields=["reviewer", "id"], name="disagreement_reviewer_idx"),
            models.Index(fields=["created_at"], name="disagreement_created_idx"),
            models.Index(fields=["model_name", "field", "created_at"], name="disagreement_calib_idx"),
            models.Index(fields=["image"], name="disagreement_image_idx"),
        ]
