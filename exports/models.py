"""Export snapshots: one row per versioned export of a dataset (its files lie under ``EXPORT_ROOT``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotations.models import Dataset


class ExportFormat(models.TextChoices):
    EMOVERSE_JSONL = "emoverse-jsonl", "EmoVerse JSONL"
    COCO = "coco", "COCO instance segmentation"
    PARQUET = "parquet", "Parquet"
    QA_JSONL = "qa-jsonl", "QA pairs JSONL"
    QA_PARQUET = "qa-parquet", "QA pairs Parquet"


class ExportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"


class ExportSnapshot(models.Model):
    """A versioned export of a dataset. Listed as complete only once its manifest is written."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="exports")
    version = models.PositiveIntegerField()
    format = models.CharField(max_length=16, choices=ExportFormat.choices)
    filters = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    path = models.CharField(max_length=500, blank=True, help_text="Folder under EXPORT_ROOT.")
    manifest = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    run_by = models.CharField(max_length=150, blank=True,
                              help_text="Username, or the OS account that ran export_dataset without --user.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True,
                                        help_text="Last progress of the running attempt (database clock); "
                                                  "a running export silent for EMOVERSE_EXPORT_STALE_SECONDS is dead.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "annotations_exportsnapshot"  # created by the annotations app before exports was its own
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="export_unique_version"),
            models.CheckConstraint(condition=Q(format__in=ExportFormat.values), name="export_format_valid"),
            models.CheckConstraint(condition=Q(status__in=ExportStatus.values), name="export_status_valid"),
        ]
