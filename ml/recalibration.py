"""Recalibration: fit each model's temperature on the human reference labels, and store it.

For every image with a human reference label (``review.reference``: the adjudication,
else the approved reviews' unanimous label, else the reviews' strict majority; the same
rule as the report's human-vs-model statistics), each model's current answer gives an
8-way distribution (:func:`agreement.calibration.calibration_samples`). From these pairs,
per model: the Expected Calibration Error (15 equal-width bins, Guo et al. 2017) and its
reliability diagram, the temperature minimising the negative log-likelihood, and the ECE
after scaling. :func:`recalibrate` stores the fitted temperatures as new calibration
versions; new pre-annotations use the latest one (``ml.selectors.latest_temperatures``).

A temperature is always fitted on an annotator's *raw* distribution (before any
temperature), so the stored value is absolute. An answer saved without its raw
distribution holds ``softmax(log p / T_old)`` for a ``T_old`` that is recorded nowhere; a
temperature fitted on it would be relative to that unknown ``T_old``
(``softmax(log softmax(z / T_old) / T) = softmax(z / (T_old * T))``) yet be stored as
absolute, so such answers are left out (and counted: ``n_without_raw``).

The merged ``pipeline`` answer is reported on its stored distribution but never fitted:
its confidence comes from its annotators' calibrated distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db.models import Max

from agreement.calibration import (
    N_BINS,
    CalibrationSample,
    ModelCalibration,
    calibration_samples,
    without_raw_note,
)
from annotations.models import Annotation, Dataset
from core.errors import UndefinedStatisticError
from ml.models import CalibrationVersion
from ml.selectors import latest_temperatures
from ml.services import calibration_version_create
from ml.stages.calibration import apply_temperature, fit_temperature, probs_to_logits, reliability_diagram


def default_min_samples() -> int:
    return int(getattr(settings, "EMOVERSE_CALIBRATION_MIN_SAMPLES", 50))


def calibrate_model(model: str, sample: CalibrationSample, *, current: float | None) -> ModelCalibration:
    """ECE and reliability before, fitted temperature and ECE after (the merged answer is not fitted).

    An annotator's sample must hold raw distributions only (``n_raw == n``): a temperature
    fitted on already-scaled ones would not be absolute (module docstring).
    """
    result = ModelCalibration(model=model, n=len(sample.labels), n_raw=sample.n_raw, current_temperature=current,
                              n_without_raw=sample.n_without_raw)
    if sample.n_without_raw:
        result.notes.append(without_raw_note(sample.n_without_raw))
    if result.n == 0:
        result.notes.append("no usable answer on an image with a human reference label")
        return result
    before = reliability_diagram(sample.probs, sample.labels, N_BINS)
    result.ece_before, result.reliability_before = before.ece, before.to_dict()
    if result.merged:
        result.notes.insert(0, "merged answer: calibrated through its annotators' temperatures, not fitted itself")
        return result
    if sample.n_raw < result.n:
        result.notes.append(f"no temperature: {result.n - sample.n_raw} answers are not raw distributions; "
                            "a temperature fitted on them would be relative to the one they were scaled with")
        return result
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
    """Calibration of every model with at least one answer on an image with a human reference label."""
    current = latest_temperatures()
    samples = calibration_samples(dataset=dataset)
    return [calibrate_model(model, samples[model], current=current.get(model)) for model in sorted(samples)]


def cached_model_calibrations(*, dataset: Dataset | None = None) -> list[ModelCalibration]:
    """:func:`model_calibrations`, cached until an annotation or a calibration version is added
    (annotations are immutable: every change is a new row with a higher id)."""
    stamp = (Annotation.objects.aggregate(m=Max("id"))["m"], CalibrationVersion.objects.aggregate(m=Max("id"))["m"])
    key = f"agreement-calibration:v2:{dataset.pk if dataset else 'all'}:{stamp[0]}:{stamp[1]}"
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
    """Fit every model with at least ``min_samples`` labelled raw answers and store a new
    calibration version for it (n, ECE before and after, reliability bins)."""
    min_samples = default_min_samples() if min_samples is None else min_samples
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")
    stored, skipped = [], {}
    for fit in model_calibrations(dataset=dataset):
        if fit.merged:
            skipped[fit.model] = fit.notes[0]
        elif fit.n < min_samples:
            skipped[fit.model] = "; ".join([f"{fit.n} labelled answers; at least {min_samples} needed", *fit.notes])
        elif fit.temperature is None:
            skipped[fit.model] = "; ".join(fit.notes)
        else:
            stored.append(calibration_version_create(
                model_name=fit.model, temperature=fit.temperature, n_samples=fit.n, ece_before=fit.ece_before,
                ece_after=fit.ece_after, reliability={**fit.reliability(), "dataset": dataset.slug if dataset else None},
                created_by=created_by,
            ))
    return RecalibrationResult(stored, skipped)
