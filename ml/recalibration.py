"""Recalibration: fit each model's temperature on the human reference labels, and store it.

The samples, the fit and its ECE before and after are computed by
:func:`ml.selectors.model_calibrations` (see ``ml.selectors`` for the rule: raw annotator
distributions only, the merged ``pipeline`` answer never fitted). :func:`recalibrate`
stores the fitted temperatures as new calibration versions; new pre-annotations use the
latest one (``ml.selectors.latest_temperatures``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from annotations.models import Dataset
from ml.models import CalibrationVersion
from ml.selectors import default_min_samples, model_calibrations
from ml.services import calibration_version_create


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
