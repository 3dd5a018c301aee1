"""Per-model calibration of CES confidence against final human labels (the Django edge).

For every image with a final human label (adjudicated, else approved human or import),
each model's current answer gives an 8-way distribution — the raw one, before any
temperature, where the pipeline stored it. From these pairs, per model: the Expected
Calibration Error (15 equal-width bins, Guo et al. 2017) and its reliability diagram,
the temperature minimising the negative log-likelihood, and the ECE after scaling.
:func:`recalibrate` stores the fitted temperatures as new ``ml`` calibration versions;
new pre-annotations use the latest one (``ml.selectors.latest_temperatures``).

The merged ``pipeline`` answer is reported but never fitted: its confidence comes from
its annotators' calibrated distributions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Max

from agreement import selectors
from agreement.calibration_stats import (
    apply_temperature,
    fit_temperature,
    probs_to_logits,
    reliability_diagram,
)
from agreement.statistics import UndefinedStatisticError
from annotations.domain import EMOTIONS, PIPELINE_AUTHOR
from annotations.models import Annotation, Dataset
from ml.models import CalibrationVersion
from ml.selectors import latest_temperatures
from ml.services import calibration_version_create

N_BINS = 15


def default_min_samples() -> int:
    return int(getattr(settings, "EMOVERSE_CALIBRATION_MIN_SAMPLES", 50))


@dataclass(frozen=True)
class CalibrationSample:
    """``probs``: ``(n, 8)`` rows in :data:`EMOTIONS` order; ``labels``: ``(n,)`` final label codes."""

    probs: np.ndarray
    labels: np.ndarray
    n_raw: int  # rows whose distribution is the stored raw (pre-temperature) one


@dataclass
class ModelCalibration:
    model: str
    n: int
    n_raw: int
    current_temperature: float | None
    ece_before: float | None = None
    reliability_before: dict[str, Any] | None = None
    temperature: float | None = None
    ece_after: float | None = None
    reliability_after: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def merged(self) -> bool:
        return self.model == PIPELINE_AUTHOR

    def reliability(self) -> dict[str, Any]:
        return {"n_bins": N_BINS, "before": self.reliability_before, "after": self.reliability_after}

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "merged": self.merged, "n": self.n, "n_raw": self.n_raw,
            "current_temperature": self.current_temperature, "ece_before": self.ece_before,
            "temperature": self.temperature, "ece_after": self.ece_after, "reliability": self.reliability(),
            "notes": self.notes,
        }


def _vector(distribution: dict[str, float]) -> np.ndarray | None:
    try:
        v = np.array([float(distribution.get(e, 0.0)) for e in EMOTIONS])
    except (TypeError, ValueError):
        return None
    total = v.sum()
    if not np.all(np.isfinite(v)) or np.any(v < 0) or total <= 0:
        return None
    return v / total


def calibration_samples(*, dataset: Dataset | None = None) -> dict[str, CalibrationSample]:
    """Model name → its distributions on images with a final human label (two streamed queries)."""
    final = selectors.final_labels(selectors.final_label_rows(dataset=dataset))
    code = {e: i for i, e in enumerate(EMOTIONS)}
    rows: dict[str, tuple[list[np.ndarray], list[int], int]] = {}
    for row in selectors.model_distribution_rows(dataset=dataset):
        label = final.get(row.image_id)
        vector = _vector(row.distribution) if label is not None and isinstance(row.distribution, dict) else None
        if vector is None:
            continue
        probs, labels, n_raw = rows.setdefault(row.model, ([], [], 0))
        probs.append(vector)
        labels.append(code[label])
        rows[row.model] = (probs, labels, n_raw + int(row.raw))
    return {
        model: CalibrationSample(np.array(probs), np.array(labels, dtype=np.int64), n_raw)
        for model, (probs, labels, n_raw) in rows.items()
    }


def calibrate_model(model: str, sample: CalibrationSample, *, current: float | None) -> ModelCalibration:
    """ECE and reliability before, fitted temperature and ECE after (the merged answer is not fitted)."""
    result = ModelCalibration(model=model, n=len(sample.labels), n_raw=sample.n_raw, current_temperature=current)
    before = reliability_diagram(sample.probs, sample.labels, N_BINS)
    result.ece_before, result.reliability_before = before.ece, before.to_dict()
    if result.merged:
        result.notes.append("merged answer: calibrated through its annotators' temperatures, not fitted itself")
        return result
    if sample.n_raw < result.n:
        result.notes.append(f"{result.n - sample.n_raw} answers have no raw distribution; their stored one is used")
    logits = probs_to_logits(sample.probs)
    try:
        result.temperature = fit_temperature(logits, sample.labels)
    except UndefinedStatisticError as exc:
        result.notes.append(f"no temperature: {exc}")
        return result
    after = reliability_diagram(apply_temperature(logits, result.temperature), sample.labels, N_BINS)
    result.ece_after, result.reliability_after = after.ece, after.to_dict()
    return result


def model_calibrations(*, dataset: Dataset | None = None) -> list[ModelCalibration]:
    """Calibration of every model with at least one answer on a finally labelled image."""
    current = latest_temperatures()
    samples = calibration_samples(dataset=dataset)
    return [calibrate_model(model, samples[model], current=current.get(model)) for model in sorted(samples)]


def cached_model_calibrations(*, dataset: Dataset | None = None) -> list[ModelCalibration]:
    """:func:`model_calibrations`, cached until an annotation or a calibration version is added
    (annotations are immutable: every change is a new row with a higher id)."""
    stamp = (Annotation.objects.aggregate(m=Max("id"))["m"], CalibrationVersion.objects.aggregate(m=Max("id"))["m"])
    key = f"agreement-calibration:{dataset.pk if dataset else 'all'}:{stamp[0]}:{stamp[1]}"
    fits = cache.get(key)
    if fits is None:
        fits = model_calibrations(dataset=dataset)
        cache.set(key, fits, 24 * 3600)
    return fits


@dataclass(frozen=True)
class RecalibrationResult:
    stored: list[CalibrationVersion]
    skipped: dict[str, str]  # model → why no version was stored


def recalibrate(*, dataset: Dataset | None = None, min_samples: int | None = None,
                created_by: AbstractBaseUser | None = None) -> RecalibrationResult:
    """Fit every model with at least ``min_samples`` labelled answers and store a new
    calibration version for it (n, ECE before and after, reliability bins)."""
    min_samples = default_min_samples() if min_samples is None else min_samples
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")
    stored, skipped = [], {}
    for fit in model_calibrations(dataset=dataset):
        if fit.merged:
            skipped[fit.model] = fit.notes[0]
        elif fit.n < min_samples:
            skipped[fit.model] = f"{fit.n} labelled answers; at least {min_samples} needed"
        elif fit.temperature is None:
            skipped[fit.model] = "; ".join(fit.notes)
        else:
            stored.append(calibration_version_create(
                model_name=fit.model, temperature=fit.temperature, n_samples=fit.n, ece_before=fit.ece_before,
                ece_after=fit.ece_after, reliability={**fit.reliability(), "dataset": dataset.slug if dataset else None},
                created_by=created_by,
            ))
    return RecalibrationResult(stored, skipped)


def calibration_history(*, limit: int = 200) -> list[CalibrationVersion]:
    return list(CalibrationVersion.objects.select_related("created_by").order_by("model_name", "-version")[:limit])
