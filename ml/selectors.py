"""Reads of pipeline runs, stage progress and the stored calibration temperatures
(:func:`latest_temperatures`, which new pre-annotations use). The fits that the human
reference labels give now are computed in ``ml.calibration_fits``."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, QuerySet, Sum

from annotations.models import Dataset
from ml.models import (
    CalibrationVersion,
    PipelineRun,
    RunStatus,
    StageResult,
    StageStatus,
)

_TEMPERATURES: dict[str, Any] = {"at": None, "value": {}}


def latest_temperatures(*, max_age_s: float = 0.0) -> dict[str, float]:
    """The newest fitted temperature per model name; a model without one is absent (identity 1.0).

    ``max_age_s``: a worker may reuse what it read this long ago (the calibrate stage passes
    ``TEMPERATURES_MAX_AGE_S``: one query per worker per half minute, not one per image); a
    fit stored in this process is seen at once (:func:`forget_temperatures`).
    """
    now = time.monotonic()
    if max_age_s > 0 and _TEMPERATURES["at"] is not None and now - _TEMPERATURES["at"] < max_age_s:
        return dict(_TEMPERATURES["value"])
    latest: dict[str, float] = {}
    rows = CalibrationVersion.objects.order_by("model_name", "-version").values_list("model_name", "temperature")
    for name, temperature in rows:
        latest.setdefault(name, temperature)
    _TEMPERATURES.update(at=now, value=dict(latest))
    return latest


def forget_temperatures() -> None:
    _TEMPERATURES.update(at=None, value={})


TEMPERATURES_MAX_AGE_S = 30.0


def calibration_history(*, limit: int = 200) -> list[CalibrationVersion]:
    return list(CalibrationVersion.objects.select_related("created_by").order_by("model_name", "-version")[:limit])


def dataset_runs(*, dataset: Dataset, pipeline_version: str) -> QuerySet[PipelineRun]:
    return PipelineRun.objects.filter(image__dataset=dataset, pipeline_version=pipeline_version)


@dataclass
class StageProgress:
    stage: str
    waiting: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.waiting + self.running + self.done + self.failed

    @property
    def percent_done(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


@dataclass
class Progress:
    pipeline_version: str
    images: int
    runs: dict[str, int]
    stages: list[StageProgress] = field(default_factory=list)
    failures: list[PipelineRun] = field(default_factory=list)
    cost_usd: float = 0.0  # the model calls of these runs (their usage, priced per model in the configuration)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_runs(self) -> int:
        return sum(self.runs.values())

    @property
    def active(self) -> bool:
        return bool(self.runs.get(RunStatus.QUEUED) or self.runs.get(RunStatus.RUNNING))

    @property
    def percent_done(self) -> int:
        finished = self.runs.get(RunStatus.DONE, 0) + self.runs.get(RunStatus.FAILED, 0)
        return round(100 * finished / self.total_runs) if self.total_runs else 0


def dataset_progress(
    *, dataset: Dataset, pipeline_version: str, stage_names: list[str], failures_limit: int = 50
) -> Progress:
    """Runs by status, and per stage: waiting, running, done, failed; tokens and cost (four queries).

    A stage is *waiting* for an unfinished run that has not reached it (or waits for a
    retry); runs that failed earlier do not count toward later stages.
    """
    runs = dataset_runs(dataset=dataset, pipeline_version=pipeline_version)
    by_status = {r["status"]: r["n"] for r in runs.values("status").annotate(n=Count("id"))}
    active = by_status.get(RunStatus.QUEUED, 0) + by_status.get(RunStatus.RUNNING, 0)
    rows = (
        StageResult.objects.filter(run__in=runs)
        .values("stage", "status", "run__status")
        .annotate(n=Count("id"))
    )
    per_stage: dict[str, StageProgress] = {}
    started_active: dict[str, int] = defaultdict(int)
    for row in rows:
        progress = per_stage.setdefault(row["stage"], StageProgress(row["stage"]))
        if row["status"] == StageStatus.QUEUED:
            continue  # counted as waiting below
        setattr(progress, row["status"], getattr(progress, row["status"]) + row["n"])
        if row["run__status"] in (RunStatus.QUEUED, RunStatus.RUNNING):
            started_active[row["stage"]] += row["n"]
    names = list(stage_names) + sorted(s for s in per_stage if s not in stage_names)
    ordered = []
    for stage in names:
        progress = per_stage.get(stage, StageProgress(stage))
        progress.waiting = active - started_active.get(stage, 0)
        ordered.append(progress)
    failures = list(
        runs.filter(status=RunStatus.FAILED).select_related("image").order_by("-updated_at")[:failures_limit]
    )
    usage = runs.aggregate(cost=Sum("cost_usd"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    return Progress(
        pipeline_version=pipeline_version,
        images=dataset.images.count(),
        runs=by_status,
        stages=ordered,
        failures=failures,
        cost_usd=float(usage["cost"] or 0.0),
        prompt_tokens=int(usage["prompt"] or 0),
        completion_tokens=int(usage["completion"] or 0),
    )


def run_stage_outputs(*, run: PipelineRun) -> dict[str, StageResult]:
    return {s.stage: s for s in run.stages.all()}
