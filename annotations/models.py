"""Datasets, images and versioned annotations.

Nothing is overwritten: every edit creates a new :class:`Annotation` version
whose triplets and elements are new rows. The element identity that survives
versions is ``(Triplet.key, Element.role)``.

Boxes are absolute pixels ``x0, y0, x1, y1`` in the stored (EXIF-corrected)
image; masks are COCO RLE (``mask_counts`` is pycocotools' compressed string,
``mask_height``/``mask_width`` its size).
"""

from __future__ import annotations

import random
import uuid

from django.conf import settings
from django.core import checks
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from core.vocabulary import DEFAULT_TAXONOMY, EMOTIONS, MAX_LABEL_CHARS, ROLES, Taxonomy, TaxonomyError, taxonomy_from_spec

EMOTION_CHOICES = [(e, e.capitalize()) for e in EMOTIONS]  # Mikels' eight: the default taxonomy
ROLE_CHOICES = [(r, r.capitalize()) for r in ROLES]


# Bounds of a dataset's review settings: the database constraints below, the field validators
# (and through them the API serializer and the admin form) all take them from here.
REVIEWS_PER_ITEM_MIN = 1
FRACTION_MIN, FRACTION_MAX = 0.0, 1.0  # overlap_fraction, auto_accept_threshold
LEASE_MINUTES_MIN = 1
LEASE_MINUTES_MAX = 7 * 24 * 60  # a week; saving a draft renews a lease, so only an idle item waits this long
_FRACTION_VALIDATORS = [MinValueValidator(FRACTION_MIN), MaxValueValidator(FRACTION_MAX)]


def default_taxonomy() -> dict:
    """Every dataset's taxonomy unless chosen otherwise: Mikels' eight."""
    return DEFAULT_TAXONOMY.to_spec()


def validate_taxonomy(value) -> None:
    """A stored taxonomy must read back (:func:`core.vocabulary.taxonomy_from_spec`)."""
    try:
        taxonomy_from_spec(value)
    except TaxonomyError as exc:
        raise ValidationError(exc.detail if exc.field == "taxonomy" else str(exc)) from None


class Dataset(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Overlapping reviews for agreement studies: K reviewers on a sampled fraction.
    reviews_per_item = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(REVIEWS_PER_ITEM_MIN)])
    overlap_fraction = models.FloatField(default=0.0, validators=_FRACTION_VALIDATORS,
                                         help_text="Fraction of items that get reviews_per_item reviews; the rest get one.")
    lease_minutes = models.PositiveIntegerField(
        default=settings.EMOVERSE_DEFAULT_LEASE_MINUTES,
        validators=[MinValueValidator(LEASE_MINUTES_MIN), MaxValueValidator(LEASE_MINUTES_MAX)],
        help_text=f"How long a review lease lasts without a draft save ({LEASE_MINUTES_MIN} to {LEASE_MINUTES_MAX}).",
    )
    # Auto-accept items whose calibrated confidence and agreement are both above this; off when null.
    auto_accept_threshold = models.FloatField(null=True, blank=True, validators=_FRACTION_VALIDATORS)
    # Approve only once the reviewer has decided every element (A on each, or Shift+A for all).
    require_all_checked = models.BooleanField(
        default=False, help_text="Refuse Approve until the reviewer has decided every element (accepted, edited or rejected).")
    # Calibration audit: the images whose ``audit_draw`` is below this are reviewed in random
    # order, apart from the priority queue, and the temperature is fitted on them only.
    audit_fraction = models.FloatField(
        default=0.05, validators=_FRACTION_VALIDATORS,
        help_text="Share of images drawn at random into the calibration audit (0-1), reviewed in random order.",
    )
    # The emotion vocabulary (core.vocabulary.Taxonomy.to_spec()): labels, keys, polarity,
    # synonyms. Chosen when the dataset is created; fixed once any image carries a label.
    taxonomy = models.JSONField(
        default=default_taxonomy, validators=[validate_taxonomy],
        help_text='The emotion taxonomy: "mikels" (default), "ekman", or a custom one (docs/taxonomies.md).',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(condition=Q(reviews_per_item__gte=REVIEWS_PER_ITEM_MIN), name="dataset_reviews_per_item_gte_1"),
            models.CheckConstraint(condition=Q(overlap_fraction__gte=FRACTION_MIN) & Q(overlap_fraction__lte=FRACTION_MAX),
                                   name="dataset_overlap_fraction_0_1"),
            models.CheckConstraint(
                condition=Q(auto_accept_threshold__isnull=True)
                | (Q(auto_accept_threshold__gte=FRACTION_MIN) & Q(auto_accept_threshold__lte=FRACTION_MAX)),
                name="dataset_auto_accept_0_1",
            ),
            models.CheckConstraint(condition=Q(lease_minutes__gte=LEASE_MINUTES_MIN) & Q(lease_minutes__lte=LEASE_MINUTES_MAX),
                                   name="dataset_lease_minutes_range"),
            models.CheckConstraint(condition=Q(audit_fraction__gte=0) & Q(audit_fraction__lte=1), name="dataset_audit_fraction_0_1"),
        ]

    def __str__(self) -> str:
        return self.slug

    def get_taxonomy(self) -> Taxonomy:
        """The dataset's :class:`core.vocabulary.Taxonomy` (read once per instance)."""
        spec = self.taxonomy
        cached = self.__dict__.get("_taxonomy")
        if cached is None or cached[0] != spec:
            cached = (spec, taxonomy_from_spec(spec))
            self.__dict__["_taxonomy"] = cached
        return cached[1]


@checks.register(checks.Tags.models)
def check_default_lease_minutes(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """``EMOVERSE_LEASE_MINUTES`` (every new dataset's ``lease_minutes``) within the bounds."""
    minutes = settings.EMOVERSE_DEFAULT_LEASE_MINUTES
    if LEASE_MINUTES_MIN <= minutes <= LEASE_MINUTES_MAX:
        return []
    return [checks.Error(
        f"EMOVERSE_LEASE_MINUTES is {minutes}; a lease lasts {LEASE_MINUTES_MIN} to {LEASE_MINUTES_MAX} minutes.",
        id="annotations.E001",
    )]


class ImageSource(models.TextChoices):
    EMOSET = "emoset", "EmoSet"
    EMOART = "emoart", "EmoArt"
    FLICKR30K = "flickr30k", "Flickr30K"
    WEB = "web", "Web"
    AIGC = "aigc", "AIGC (generated)"


class ImageStatus(models.TextChoices):
    NEW = "new", "New"
    PREANNOTATING = "preannotating", "Pre-annotating"
    FAILED = "failed", "Pre-annotation failed"
    IN_REVIEW = "in_review", "In review"
    ADJUDICATION = "adjudication", "Needs adjudication"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    FLAGGED = "flagged", "Flagged"


class ImportRun(models.Model):
    """One run of ``import_emoverse``: the provenance of imported annotations."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="import_runs")
    file_name = models.CharField(max_length=500)
    approved = models.BooleanField(default=False)
    run_by = models.CharField(max_length=150, help_text="User or OS account that ran the import.")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="The first failed lines: [{line, reason}].")

    class Meta:
        ordering = ["-started_at"]


def image_upload_to(instance: Image, filename: str) -> str:
    """``images/<dataset id>/<first two hex digits of the sha256>/<filename>``: one name per
    dataset and content (as the rows are), in folders of a few thousand files at 219K images."""
    return f"images/{instance.dataset_id}/{instance.sha256[:2]}/{filename}"


def thumbnail_upload_to(instance: Image, filename: str) -> str:
    return f"thumbs/{instance.dataset_id}/{instance.sha256[:2]}/{filename}"


def new_audit_draw() -> float:
    """A fresh uniform draw in [0, 1) for :attr:`Image.audit_draw`."""
    return random.random()


class Image(models.Model):
    # No index of its own: image_unique_content_per_dataset and the queue indexes lead with it.
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="images", db_index=False)
    file = models.FileField(upload_to=image_upload_to, max_length=300)
    thumbnail = models.FileField(upload_to=thumbnail_upload_to, max_length=300, blank=True)
    sha256 = models.CharField(max_length=64)
    original_name = models.CharField(max_length=500, help_text="Path as given on import, relative to the images folder.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    source = models.CharField(max_length=16, choices=ImageSource.choices, default=ImageSource.WEB)
    status = models.CharField(max_length=16, choices=ImageStatus.choices, default=ImageStatus.NEW)
    # Review queue order: lowest first (model agreement / calibrated confidence), then oldest.
    priority = models.FloatField(default=1.0)
    # A uniform draw in [0, 1) fixed at creation: the image is in its dataset's calibration audit
    # while ``audit_draw < dataset.audit_fraction`` (known inclusion probability), and the audit
    # is served in ``audit_draw`` order (a uniform random order).
    audit_draw = models.FloatField(default=new_audit_draw)
    # Denormalised from the current best annotation for filtering at 219K+ images.
    label = models.CharField(max_length=MAX_LABEL_CHARS, null=True, blank=True)  # one of the dataset's taxonomy
    confidence = models.FloatField(null=True, blank=True)
    agreement = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "sha256"], name="image_unique_content_per_dataset"),
            models.CheckConstraint(condition=Q(width__gt=0) & Q(height__gt=0), name="image_positive_size"),
            models.CheckConstraint(condition=Q(source__in=ImageSource.values), name="image_source_valid"),
            models.CheckConstraint(condition=Q(status__in=ImageStatus.values), name="image_status_valid"),
            models.CheckConstraint(condition=Q(audit_draw__gte=0) & Q(audit_draw__lt=1), name="image_audit_draw_0_1"),
        ]
        indexes = [
            # audit_draw last: the review queue skips the images drawn for audit (they wait in
            # image_audit_queue_idx's order, so they pile up at the head of this one as the queue
            # drains) on the index entries, without fetching their rows (review.0005's claim).
            models.Index(fields=["dataset", "status", "priority", "created_at", "id", "audit_draw"], name="image_queue_idx"),
            models.Index(fields=["dataset", "status", "audit_draw", "id"], name="image_audit_queue_idx"),
            models.Index(fields=["dataset", "source"], name="image_source_idx"),
            models.Index(fields=["dataset", "label"], name="image_label_idx"),
            models.Index(fields=["dataset", "created_at"], name="image_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.original_name}"


class AnnotationKind(models.TextChoices):
    MODEL = "model", "Model"
    HUMAN = "human", "Human review"
    ADJUDICATION = "adjudication", "Adjudication"
    IMPORT = "import", "Imported final"


class Decision(models.TextChoices):
    NONE = "", "None"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    FLAGGED = "flagged", "Flagged"


class Annotation(models.Model):
    """One immutable version of one author's annotation of one image."""

    # No index of its own: annotation_unique_version and annotation_current_idx lead with it.
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations", db_index=False)
    version = models.PositiveIntegerField(help_text="Per image, increasing with every new version.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    kind = models.CharField(max_length=16, choices=AnnotationKind.choices)
    author_name = models.CharField(max_length=150, help_text="Model name, or the username of the person.")
    author_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations")
    is_current = models.BooleanField(default=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True, default="")
    decision_reason = models.TextField(blank=True)

    ces_label = models.CharField(max_length=MAX_LABEL_CHARS, null=True, blank=True)  # one of the dataset's taxonomy
    ces_confidence = models.FloatField(null=True, blank=True)
    ces_distribution = models.JSONField(null=True, blank=True)
    ces_raw_distribution = models.JSONField(null=True, blank=True, help_text="Before calibration.")
    des = models.BinaryField(null=True, blank=True, help_text="1024 float32, little-endian.")
    rationale = models.TextField(blank=True)

    prompt_version = models.CharField(max_length=64, blank=True)
    pipeline_version = models.CharField(max_length=64, blank=True)
    raw_output = models.TextField(blank=True)
    critic = models.JSONField(null=True, blank=True, help_text="Critic verdicts per element and label, with reasoning.")
    extra = models.JSONField(default=dict, blank=True)
    import_run = models.ForeignKey(ImportRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotations")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "version"]
        constraints = [
            models.UniqueConstraint(fields=["image", "version"], name="annotation_unique_version"),
            models.UniqueConstraint(
                fields=["image", "kind", "author_name"], condition=Q(is_current=True), name="annotation_one_current_per_author"
            ),
            models.CheckConstraint(condition=Q(kind__in=AnnotationKind.values), name="annotation_kind_valid"),
            models.CheckConstraint(condition=Q(decision__in=Decision.values), name="annotation_decision_valid"),
            models.CheckConstraint(
                condition=Q(ces_confidence__isnull=True) | (Q(ces_confidence__gte=0) & Q(ces_confidence__lte=1)),
                name="annotation_confidence_0_1",
            ),
        ]
        indexes = [
            models.Index(fields=["image", "kind", "is_current"], name="annotation_current_idx"),
            models.Index(fields=["kind", "author_name", "created_at"], name="annotation_author_idx"),
            models.Index(fields=["created_at"], name="annotation_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.image_id} v{self.version} ({self.kind}:{self.author_name})"


class Triplet(models.Model):
    # No index of its own: triplet_unique_index leads with it.
    annotation = models.ForeignKey(Annotation, on_delete=models.CASCADE, related_name="triplets", db_index=False)
    index = models.PositiveSmallIntegerField()
    key = models.UUIDField(default=uuid.uuid4, help_text="Stable across versions of the same triplet.")

    class Meta:
        ordering = ["annotation_id", "index"]
        constraints = [models.UniqueConstraint(fields=["annotation", "index"], name="triplet_unique_index")]
        indexes = [models.Index(fields=["key"], name="triplet_key_idx")]


class ElementStatus(models.TextChoices):
    """How an element was decided. ``accepted``: a person acted on it (accepted it, or kept it
    in an adjudication); ``accepted_unchecked``: approved with the item without being looked at
    (counts as kept, never as a person's agreement)."""

    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    ACCEPTED_UNCHECKED = "accepted_unchecked", "Approved with the item, not checked"
    EDITED = "edited", "Edited"
    REJECTED = "rejected", "Rejected"
    ADDED = "added", "Added by a person"


class Element(models.Model):
    """One Background, Attribute or Subject of a triplet, optionally grounded."""

    # No index of its own: element_unique_role leads with it.
    triplet = models.ForeignKey(Triplet, on_delete=models.CASCADE, related_name="elements", db_index=False)
    role = models.CharField(max_length=16, choices=ROLE_CHOICES)
    phrase = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=ElementStatus.choices, default=ElementStatus.PENDING)
    x0 = models.FloatField(null=True, blank=True)
    y0 = models.FloatField(null=True, blank=True)
    x1 = models.FloatField(null=True, blank=True)
    y1 = models.FloatField(null=True, blank=True)
    box_score = models.FloatField(null=True, blank=True)
    mask_counts = models.TextField(null=True, blank=True)
    mask_height = models.PositiveIntegerField(null=True, blank=True)
    mask_width = models.PositiveIntegerField(null=True, blank=True)
    mask_score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["triplet_id", "role"]
        constraints = [
            models.UniqueConstraint(fields=["triplet", "role"], name="element_unique_role"),
            models.CheckConstraint(condition=Q(role__in=ROLES), name="element_role_valid"),
            models.CheckConstraint(condition=Q(status__in=ElementStatus.values), name="element_status_valid"),
            models.CheckConstraint(
                condition=(Q(x0__isnull=True) & Q(y0__isnull=True) & Q(x1__isnull=True) & Q(y1__isnull=True))
                | (
                    Q(x0__isnull=False) & Q(y0__isnull=False) & Q(x1__isnull=False) & Q(y1__isnull=False)
                    & Q(x0__gte=0) & Q(y0__gte=0) & Q(x0__lt=models.F("x1")) & Q(y0__lt=models.F("y1"))
                ),
                name="element_box_valid",
            ),
            models.CheckConstraint(
                condition=(Q(mask_counts__isnull=True) & Q(mask_height__isnull=True) & Q(mask_width__isnull=True))
                | (Q(mask_counts__isnull=False) & Q(mask_height__gt=0) & Q(mask_width__gt=0)),
                name="element_mask_complete",
            ),
        ]

    @property
    def box(self) -> list[float] | None:
        if self.x0 is None:
            return None
        return [self.x0, self.y0, self.x1, self.y1]

    @property
    def mask(self) -> dict | None:
        if self.mask_counts is None:
            return None
        return {"size": [self.mask_height, self.mask_width], "counts": self.mask_counts}


class PhraseEmbedding(models.Model):
    """One phrase embedded by one sentence-embedding model, stored once for the whole database.

    Found by ``text_hash``, the SHA-256 of the phrase after ``core.alignment.phrase_key``
    (NFKC, case-folded, whitespace collapsed), so every element with that phrase, in any
    dataset, shares the vector. Computed on workers (``ml.embeddings``); the web process only
    reads the vectors (``annotations.phrase_embeddings``) and never loads the model.
    """

    model_name = models.CharField(max_length=200, help_text="The sentence-embedding model (name or path).")
    text_hash = models.CharField(max_length=64, help_text="SHA-256 (hex) of the normalised phrase.")
    text = models.TextField(help_text="The normalised phrase.")
    dim = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="dim float32, little-endian, unit length.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_name", "text_hash"], name="phraseembedding_unique_hash"),
        ]

    def __str__(self) -> str:
        return f"{self.model_name}: {self.text}"
