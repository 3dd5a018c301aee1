"""Emotion QA pairs and fine-grained assessments (the EEmo-Logic seed, docs/qa.md).

Per dataset: the task categories and analysis dimensions a QA pair is filed under
(:class:`QACategory`, :class:`QADimension`, each naming the question types it allows) and
the assessment scales images are rated on (:class:`AssessmentScale`).

A :class:`QAPair` row is one immutable version of one pair, as an annotation is of an
image: the identity that survives versions is ``key``; every change (an edit, an accept, a
reject) is a new row with ``version + 1`` whose ``parent`` is the row it replaces, and only
the newest row of a key is ``is_current``. Answers by question type:

* ``multiple_choice``: ``options`` is a list of at least two option texts, ``answer_index``
  the correct one (0-based), ``answer`` empty;
* ``yes_no``: ``answer`` is ``"yes"`` or ``"no"``; no options;
* ``open``: ``answer`` is the free answer text; no options.

``content_hash`` (SHA-256 of the question type, the normalised question and options,
:func:`qa.text.pair_content_hash`) makes a pair unique among an image's current pairs: a
second copy is a duplicate.

A :class:`Rating` is one rater's (a person's or a model's) value for one image on one
scale; aggregates per image (mean, sd, count, 95 % interval) are
:func:`qa.selectors.rating_aggregates`.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotations.models import Dataset, Element, Image
from qa.defaults import MULTIPLE_CHOICE, OPEN, QUESTION_TYPES, YES_NO

YES_NO_ANSWERS = ("yes", "no")


class QuestionType(models.TextChoices):
    MULTIPLE_CHOICE = MULTIPLE_CHOICE, "Multiple choice"
    YES_NO = YES_NO, "Yes / no"
    OPEN = OPEN, "Open answer"


assert tuple(QuestionType.values) == QUESTION_TYPES


class _QAAxis(models.Model):
    """A task category or analysis dimension of one dataset."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    key = models.SlugField(max_length=50, help_text="Stable identifier, used in imports, exports and prompts.")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, help_text="Shown to reviewers and given to the generating model.")
    question_types = models.JSONField(
        default=list, help_text=f"The question types allowed here, a list from {list(QUESTION_TYPES)}."
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="Display order.")
    active = models.BooleanField(default=True, help_text="Inactive entries keep their pairs but get no new ones.")

    class Meta:
        abstract = True
        ordering = ["dataset_id", "position", "key"]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.key}"


class QACategory(_QAAxis):
    class Meta(_QAAxis.Meta):
        verbose_name = "QA task category"
        verbose_name_plural = "QA task categories"
        constraints = [models.UniqueConstraint(fields=["dataset", "key"], name="qacategory_unique_key")]


class QADimension(_QAAxis):
    class Meta(_QAAxis.Meta):
        verbose_name = "QA analysis dimension"
        constraints = [models.UniqueConstraint(fields=["dataset", "key"], name="qadimension_unique_key")]


class QAStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    IN_REVIEW = "in_review", "In review"
    ACCEPTED = "accepted", "Accepted"
    EDITED = "edited", "Edited"
    REJECTED = "rejected", "Rejected"


APPROVED_STATUSES = (QAStatus.ACCEPTED, QAStatus.EDITED)


class RejectReason(models.TextChoices):
    NONE = "", "None"
    WRONG_ANSWER = "wrong_answer", "Wrong answer"
    AMBIGUOUS = "ambiguous", "Ambiguous"
    NOT_ABOUT_IMAGE = "not_about_image", "Not about the image"
    LEAKS_ANSWER = "leaks_answer", "Leaks the answer"
    DUPLICATE = "duplicate", "Duplicate"


class AuthorKind(models.TextChoices):
    MODEL = "model", "Model"
    HUMAN = "human", "Human"
    IMPORT = "import", "Imported"


class QAImportRun(models.Model):
    """One run of ``import_qa``: the provenance of imported pairs."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="qa_import_runs")
    file_name = models.CharField(max_length=500)
    approved = models.BooleanField(default=False)
    run_by = models.CharField(max_length=150)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="The first failed lines: [{line, reason}].")

    class Meta:
        ordering = ["-started_at"]


class GenerationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class QAGeneration(models.Model):
    """One generation of QA pairs for one image by one generator version; unique per
    ``(image, generator_version)`` so a re-delivered task does nothing twice."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="qa_generations")
    generator_version = models.CharField(max_length=64, help_text="Model, prompt and settings: one identity.")
    model_name = models.CharField(max_length=150, blank=True)
    critic_name = models.CharField(max_length=150, blank=True)
    prompt_version = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=16, choices=GenerationStatus.choices, default=GenerationStatus.QUEUED)
    attempt = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    raw_output = models.TextField(blank=True)
    critic_output = models.TextField(blank=True)
    pairs_created = models.PositiveIntegerField(default=0)
    critic_mismatches = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "generator_version"], name="qageneration_one_per_image_version"),
            models.CheckConstraint(condition=Q(status__in=GenerationStatus.values), name="qageneration_status_valid"),
        ]
        indexes = [models.Index(fields=["generator_version", "status"], name="qageneration_status_idx")]

    def __str__(self) -> str:
        return f"qa generation {self.pk} image {self.image_id} {self.generator_version} {self.status}"


class QAPair(models.Model):
    """One immutable version of one question-answer pair about one image."""

    dataset = models.ForeignKey(
        Dataset,
        on_delete=models.CASCADE,
        related_name="qa_pairs",
        help_text="The image's dataset (denormalised for filtering and export).",
    )
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="qa_pairs")
    key = models.UUIDField(default=uuid.uuid4, help_text="Stable across versions of the same pair.")
    version = models.PositiveIntegerField(default=1, help_text="Per key, increasing with every new version.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    is_current = models.BooleanField(default=True)
    elements = models.ManyToManyField(
        Element, blank=True, related_name="qa_pairs", help_text="The B-A-S elements the pair is about."
    )

    category = models.ForeignKey(QACategory, on_delete=models.PROTECT, related_name="pairs")
    dimension = models.ForeignKey(QADimension, on_delete=models.PROTECT, related_name="pairs")
    question_type = models.CharField(max_length=16, choices=QuestionType.choices)
    question = models.TextField()
    options = models.JSONField(null=True, blank=True, help_text="Multiple choice: the option texts, in display order.")
    answer_index = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Multiple choice: the correct option."
    )
    answer = models.TextField(blank=True, help_text='yes_no: "yes" or "no"; open: the answer text.')
    rationale = models.TextField(blank=True)
    content_hash = models.CharField(max_length=64, help_text="qa.text.pair_content_hash: duplicates share it.")

    status = models.CharField(max_length=16, choices=QAStatus.choices, default=QAStatus.PENDING)
    reject_reason = models.CharField(max_length=20, choices=RejectReason.choices, blank=True, default="")
    review_note = models.TextField(blank=True)
    # Review order: lowest first. A pair whose answer the critic did not reproduce gets 0.
    priority = models.FloatField(default=1.0)
    critic_answer = models.TextField(
        blank=True, help_text="The critic's blind answer (an option index, yes/no or text)."
    )
    critic_agrees = models.BooleanField(null=True, blank=True)

    author_kind = models.CharField(max_length=16, choices=AuthorKind.choices)
    author_name = models.CharField(max_length=150, help_text="Model name, or the username of the person.")
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="qa_pairs"
    )
    model_name = models.CharField(
        max_length=150, blank=True, help_text="The generating model (kept on later versions)."
    )
    prompt_version = models.CharField(max_length=64, blank=True)
    generation = models.ForeignKey(QAGeneration, null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs")
    import_run = models.ForeignKey(QAImportRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="pairs")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "key", "version"]
        verbose_name = "QA pair"
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="qapair_unique_version"),
            models.UniqueConstraint(fields=["key"], condition=Q(is_current=True), name="qapair_one_current"),
            models.UniqueConstraint(
                fields=["image", "content_hash"], condition=Q(is_current=True), name="qapair_unique_current_content"
            ),
            models.CheckConstraint(condition=Q(question_type__in=QUESTION_TYPES), name="qapair_question_type_valid"),
            models.CheckConstraint(condition=Q(status__in=QAStatus.values), name="qapair_status_valid"),
            models.CheckConstraint(condition=Q(author_kind__in=AuthorKind.values), name="qapair_author_kind_valid"),
            models.CheckConstraint(
                condition=(Q(status=QAStatus.REJECTED) & ~Q(reject_reason=""))
                | (~Q(status=QAStatus.REJECTED) & Q(reject_reason="")),
                name="qapair_reject_reason_iff_rejected",
            ),
            models.CheckConstraint(
                condition=Q(reject_reason__in=RejectReason.values), name="qapair_reject_reason_valid"
            ),
            models.CheckConstraint(
                condition=(
                    Q(question_type=MULTIPLE_CHOICE)
                    & Q(options__isnull=False)
                    & Q(answer_index__isnull=False)
                    & Q(answer="")
                )
                | (
                    Q(question_type=YES_NO)
                    & Q(options__isnull=True)
                    & Q(answer_index__isnull=True)
                    & Q(answer__in=YES_NO_ANSWERS)
                )
                | (Q(question_type=OPEN) & Q(options__isnull=True) & Q(answer_index__isnull=True) & ~Q(answer="")),
                name="qapair_answer_matches_type",
            ),
        ]
        indexes = [
            models.Index(fields=["dataset", "is_current", "status", "priority", "id"], name="qapair_queue_idx"),
            models.Index(fields=["image", "is_current"], name="qapair_image_idx"),
            models.Index(fields=["dataset", "category", "dimension"], name="qapair_axes_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.image_id}:{self.key} v{self.version} ({self.status})"

    @property
    def is_approved(self) -> bool:
        return self.status in APPROVED_STATUSES


class ScaleKind(models.TextChoices):
    INTENSITY = "intensity", "Intensity of an emotion"
    VALENCE = "valence", "Valence"
    AROUSAL = "arousal", "Arousal"
    DOMINANCE = "dominance", "Dominance"
    OTHER = "other", "Other attribute"


class AssessmentScale(models.Model):
    """A scale images of one dataset are rated on: a range, a step and anchor labels."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="assessment_scales")
    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=ScaleKind.choices, default=ScaleKind.OTHER)
    emotion = models.CharField(
        max_length=50,
        blank=True,
        help_text="For an intensity scale: the emotion it measures; blank for the image's own.",
    )
    min_value = models.FloatField()
    max_value = models.FloatField()
    step = models.FloatField(default=1.0)
    anchors = models.JSONField(default=list, blank=True, help_text='[[value, "label"], ...] within the range.')
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["dataset_id", "position", "key"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "key"], name="assessmentscale_unique_key"),
            models.CheckConstraint(condition=Q(min_value__lt=F("max_value")), name="assessmentscale_range"),
            models.CheckConstraint(condition=Q(step__gt=0), name="assessmentscale_step_positive"),
            models.CheckConstraint(condition=Q(kind__in=ScaleKind.values), name="assessmentscale_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.key}"


class RaterKind(models.TextChoices):
    HUMAN = "human", "Human"
    MODEL = "model", "Model"


class Rating(models.Model):
    """One rater's value for one image on one scale. A person rates an image on a scale once;
    a model once per model name."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="ratings")
    scale = models.ForeignKey(AssessmentScale, on_delete=models.CASCADE, related_name="ratings")
    rater_kind = models.CharField(max_length=8, choices=RaterKind.choices, default=RaterKind.HUMAN)
    rater_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="ratings"
    )
    rater_name = models.CharField(max_length=150, help_text="The username, or the model's name.")
    value = models.FloatField()
    blind = models.BooleanField(default=False, help_text="Rated with the model's scores hidden.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "scale_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "scale", "rater_kind", "rater_name"], name="rating_one_per_rater"),
            models.CheckConstraint(condition=Q(rater_kind__in=RaterKind.values), name="rating_rater_kind_valid"),
            models.CheckConstraint(
                condition=(Q(rater_kind=RaterKind.HUMAN) & Q(rater_user__isnull=False))
                | (Q(rater_kind=RaterKind.MODEL) & Q(rater_user__isnull=True)),
                name="rating_human_has_user",
            ),
        ]
        indexes = [models.Index(fields=["scale", "image"], name="rating_scale_image_idx")]

    def __str__(self) -> str:
        return f"{self.image_id}:{self.scale_id} {self.rater_name}={self.value}"


# --- QA review: leases, drafts, per-reviewer decisions, adjudication (docs/qa.md) -------------


class QALeaseState(models.TextChoices):
    ACTIVE = "active", "Active"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"
    SUBMITTED = "submitted", "Submitted"


class QAReviewPlan(models.Model):
    """How many independent QA reviews an image's pairs need (``dataset.reviews_per_item``
    for the dataset's ``overlap_fraction`` sample, else 1), fixed at the image's first lease."""

    image = models.OneToOneField(Image, on_delete=models.CASCADE, primary_key=True, related_name="qa_review_plan")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    required_reviews = models.PositiveSmallIntegerField()
    submitted_reviews = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(required_reviews__gte=1), name="qareviewplan_required_gte_1")]


class QALease(models.Model):
    """One reviewer's hold on one image's QA pairs, as ``review.Lease`` is on its triplets:
    one active lease per slot and per reviewer, one submission per reviewer and image."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="qa_leases")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="qa_leases")
    slot = models.PositiveSmallIntegerField(default=0)
    state = models.CharField(max_length=16, choices=QALeaseState.choices, default=QALeaseState.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "slot"], condition=Q(state="active"), name="qalease_one_active_per_slot"
            ),
            models.UniqueConstraint(
                fields=["image", "reviewer"], condition=Q(state="active"), name="qalease_one_active_per_reviewer"
            ),
            models.UniqueConstraint(
                fields=["image", "reviewer"], condition=Q(state="submitted"), name="qalease_one_submission_per_reviewer"
            ),
            models.CheckConstraint(condition=Q(state__in=QALeaseState.values), name="qalease_state_valid"),
        ]
        indexes = [
            models.Index(fields=["dataset", "state", "expires_at"], name="qalease_expiry_idx"),
            models.Index(fields=["image", "state"], name="qalease_image_idx"),
        ]

    def __str__(self) -> str:
        return f"qa lease {self.pk} image {self.image_id} → {self.reviewer_id} ({self.state})"


class QADraft(models.Model):
    """A reviewer's QA decisions in progress on an image; survives reloads and lost leases."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    lease = models.ForeignKey(QALease, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    payload = models.JSONField()
    saved_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "reviewer"], name="qadraft_one_per_reviewer")]


class QAReview(models.Model):
    """One reviewer's submitted review of one image's pairs."""

    lease = models.OneToOneField(QALease, on_delete=models.CASCADE, related_name="review")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="qa_reviews")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="qa_reviews")
    submitted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["image", "reviewer"], name="qareview_one_per_reviewer")]


class QADecisionKind(models.TextChoices):
    ACCEPT = "accept", "Accept"
    EDIT = "edit", "Edit"
    REJECT = "reject", "Reject"


class QADecision(models.Model):
    """One reviewer's decision on one pair (the version they saw), and how it stands against
    the generating model: the rows behind acceptance rates and human-vs-model answer accuracy
    per category and dimension.

    ``model_answer_correct``: the reviewer kept the model's answer (accepted, or edited
    without changing the answer), or not (an edit that changed the answer, a rejection as a
    wrong answer); ``None`` for other rejections, which say nothing about the answer."""

    review = models.ForeignKey(QAReview, on_delete=models.CASCADE, related_name="decisions")
    pair = models.ForeignKey(QAPair, on_delete=models.CASCADE, related_name="decisions")
    pair_key = models.UUIDField()
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    category = models.ForeignKey(QACategory, on_delete=models.PROTECT, related_name="+")
    dimension = models.ForeignKey(QADimension, on_delete=models.PROTECT, related_name="+")
    model_name = models.CharField(max_length=150, blank=True)
    decision = models.CharField(max_length=8, choices=QADecisionKind.choices)
    reject_reason = models.CharField(max_length=20, choices=RejectReason.choices, blank=True, default="")
    edited = models.JSONField(null=True, blank=True, help_text="An edit: the new question, options and answer.")
    edited_hash = models.CharField(max_length=64, blank=True, help_text="An edit's content hash with its answer.")
    answer_changed = models.BooleanField(default=False)
    model_answer_correct = models.BooleanField(null=True, blank=True)
    critic_agrees = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["review", "pair_key"], name="qadecision_one_per_review_pair"),
            models.CheckConstraint(condition=Q(decision__in=QADecisionKind.values), name="qadecision_kind_valid"),
            models.CheckConstraint(
                condition=(Q(decision="reject") & ~Q(reject_reason="")) | (~Q(decision="reject") & Q(reject_reason="")),
                name="qadecision_reason_iff_reject",
            ),
        ]
        indexes = [models.Index(fields=["dataset", "category", "dimension"], name="qadecision_axes_idx")]


class QAAdjudicationState(models.TextChoices):
    OPEN = "open", "Open"
    DECIDED = "decided", "Decided"


class QAAdjudication(models.Model):
    """A pair whose K independent reviewers disagreed: an adjudicator decides it."""

    pair_key = models.UUIDField()
    pair = models.ForeignKey(QAPair, on_delete=models.CASCADE, related_name="adjudications")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="qa_adjudications")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=8, choices=QAAdjudicationState.choices, default=QAAdjudicationState.OPEN)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    result = models.ForeignKey(QAPair, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["pair_key"], condition=Q(state="open"), name="qaadjudication_one_open"),
            models.CheckConstraint(condition=Q(state__in=QAAdjudicationState.values), name="qaadjudication_state"),
        ]
