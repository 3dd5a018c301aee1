"""Pipeline bookkeeping: one run per image and pipeline version, its stages, and
the per-model calibration temperatures.

A :class:`PipelineRun` is unique per ``(image, pipeline_version)``: re-delivered
or re-sent tasks find it and do nothing twice. Each stage of a run has one
:class:`StageResult` row holding its latest status, parsed output, raw model
output, failure reason, duration and how many attempts it took.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotations.models import Annotation, Image


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class StageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"  # waiting, or waiting for a retry after a transient error
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class PipelineRun(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="pipeline_runs")
    pipeline_version = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    failed_stage = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True, help_text="Why the run failed (the failed stage's reason).")
    cost_usd = models.FloatField(default=0.0, help_text="Sum over the stages' API usage.")
    prompt_tokens = models.BigIntegerField(default=0, help_text="Prompt tokens of the stages' model calls (their usage).")
    completion_tokens = models.BigIntegerField(default=0, help_text="Completion tokens of the stages' model calls.")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per stage.")
    annotation = models.ForeignKey(
        Annotation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The merged result."
    )
    auto_accepted = models.BooleanField(default=False)
    # The GPU batch that currently holds this run, until when (a dead worker's claim expires).
    gpu_claim = models.CharField(max_length=64, blank=True)
    gpu_claimed_until = models.DateTimeField(null=True, blank=True)
    enqueued = models.PositiveIntegerField(default=0, help_text="How often the run was sent to the workers.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "pipeline_version"], name="pipelinerun_one_per_image_version"),
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="pipelinerun_status_valid"),
        ]
        indexes = [models.Index(fields=["pipeline_version", "status"], name="pipelinerun_status_idx")]

    def __str__(self) -> str:
        return f"run {self.pk} image {self.image_id} {self.pipeline_version} {self.status}"


class StageResult(models.Model):
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="stages")
    stage = models.CharField(max_length=100, help_text="annotate:<name>, calibrate, critic, ground, segment, des, save")
    status = models.CharField(max_length=16, choices=StageStatus.choices, default=StageStatus.QUEUED)
    reason = models.TextField(blank=True)
    raw_output = models.TextField(blank=True)
    output = models.JSONField(null=True, blank=True, help_text="The parsed stage result (ml.stages.codec.dump).")
    duration_s = models.FloatField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    # The task that runs the stage (its message id) and until when its claim holds: the task's
    # hard time limit, so a live lease means a live worker (``ml.runs.stage_begin``).
    owner = models.CharField(max_length=255, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "stage"], name="stageresult_one_per_stage"),
            models.CheckConstraint(condition=Q(status__in=StageStatus.values), name="stageresult_status_valid"),
        ]
        indexes = [models.Index(fields=["stage", "status"], name="stageresult_stage_status_idx")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.stage} {self.status}"


class CalibrationVersion(models.Model):
    """A fitted temperature for one model; the newest version per model is used."""

    model_name = models.CharField(max_length=150, help_text="The annotator's configured name.")
    version = models.PositiveIntegerField()
    temperature = models.FloatField()
    n_samples = models.PositiveIntegerField()
    ece_before = models.FloatField(null=True, blank=True)
    ece_after = models.FloatField(null=True, blank=True)
    reliability = models.JSONField(default=dict, blank=True, help_text="Reliability diagram bins before/after.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["model_name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model_name", "version"], name="calibration_unique_version"),
            models.CheckConstraint(condition=Q(temperature__gt=0), name="calibration_temperature_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} v{self.version} T={self.temperature:.3f}"


class AutoAcceptRecheck(models.Model):
    """An auto-accepted image sent back to review after a recalibration (``ml.recalibration``):
    a sample that checks whether the auto-accept threshold still holds under the new temperatures."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="auto_accept_rechecks")
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
