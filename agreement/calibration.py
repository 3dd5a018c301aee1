"""Per-model calibration of CES confidence against the human reference labels (the Django edge).

For every image with a human reference label (``agreement.reference``: the adjudication,
else the approved reviews' unanimous label, else the reviews' strict majority; the same
rule as the report's human-vs-model statistics), each model's current answer gives an
8-way distribution. From these pairs, per model: the Expected Calibration Error (15
equal-width bins, Guo et al. 2017) and its reliability diagram, the temperature
minimising the negative log-likelihood, and the ECE after scaling.
:func:`recalibrate` stores the fitted temperatures as new ``ml`` calibration versions;
new pre-annotations use the latest one (``ml.selectors.latest_temperatures``).

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

from collections.abc import Iterable
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
from agreement.errors import UndefinedStatisticError
from agreement.reference import reference_labels
from agreement.selectors import DistributionRow
from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, Dataset
from core.vocabulary import EMOTIONS
from ml.models import CalibrationVersion
from ml.selectors import latest_temperatures
from ml.services import calibration_version_create

N_BINS = 15


def default_min_samples() -> int:
    return int(getattr(settings, "EMOVERSE_CALIBRATION_MIN_SAMPLES", 50))


@dataclass(frozen=True)
class CalibrationSample:
    """``probs``: ``(n, 8)`` rows in :data:`EMOTIONS` order; ``labels``: ``(n,)`` reference label codes.

    ``n_raw``: rows whose distribution is the stored raw (pre-temperature) one; for an
    annotator every row is (see the module docstring). ``n_without_raw``: answers left out
    because they have no raw distribution.
    """

    probs: np.ndarray
    labels: np.ndarray
    n_raw: int
    n_without_raw: int = 0


@dataclass
class ModelCalibration:
    model: str
    n: int
    n_raw: int
    current_temperature: float | None
    n_without_raw: int = 0
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
            "n_without_raw": self.n_without_raw, "current_temperature": self.current_temperature,
            "ece_before": self.ece_before, "temperature": self.temperature, "ece_after": self.ece_after,
            "reliability": self.reliability(), "notes": self.notes,
        }


def _values(distribution: Any) -> list[float] | None:
    """A stored distribution as 8 floats in :data:`EMOTIONS` order (missing ones 0), or None."""
    if not isinstance(distribution, dict):
        return None
    try:
        return [float(distribution.get(e, 0.0)) for e in EMOTIONS]
    except (TypeError, ValueError):
        return None


def _normalised(values: list[list[float]], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(probs (n, 8), labels (n,))`` keeping the rows that are a distribution (finite,
    non-negative, positive sum), each scaled to sum 1."""
    v = np.array(values, dtype=np.float64).reshape(-1, len(EMOTIONS))
    total = v.sum(axis=1)
    ok = np.all(np.isfinite(v), axis=1) & np.all(v >= 0, axis=1) & (total > 0)
    return v[ok] / total[ok, None], np.array(labels, dtype=np.int64)[ok]


def samples_from(reference: dict[int, int], rows: Iterable[DistributionRow]) -> dict[str, CalibrationSample]:
    """Model name → its usable distributions on the images of ``reference`` (image id → label
    code): an annotator's raw ones only, the merged answer's stored ones."""
    collected: dict[str, tuple[list[list[float]], list[int]]] = {}
    without_raw: dict[str, int] = {}
    for row in rows:
        label = reference.get(row.image_id)
        if label is None:
            continue
        if not row.raw and row.model != PIPELINE_AUTHOR:
            without_raw[row.model] = without_raw.get(row.model, 0) + 1
            continue
        values = _values(row.distribution)
        if values is not None:
            probs, labels = collected.setdefault(row.model, ([], []))
            probs.append(values)
            labels.append(label)
    out = {}
    for model in sorted(set(collected) | set(without_raw)):
        probs, labels = _normalised(*collected.get(model, ([], [])))
        out[model] = CalibrationSample(probs, labels, n_raw=0 if model == PIPELINE_AUTHOR else len(labels),
                                       n_without_raw=without_raw.get(model, 0))
    return out


def calibration_samples(*, dataset: Dataset | None = None) -> dict[str, CalibrationSample]:
    """Model name → its distributions on images with a human reference label (two streamed queries)."""
    code = {e: i for i, e in enumerate(EMOTIONS)}
    reference = {image_id: code[label] for image_id, label in
                 reference_labels(selectors.reference_label_rows(dataset=dataset)).items()}
    return samples_from(reference, selectors.model_distribution_rows(dataset=dataset))


def _without_raw_note(n: int) -> str:
    return (f"{n} answers have no raw (pre-temperature) distribution and are left out: their stored one was "
            "scaled with a temperature that is not recorded")


def calibrate_model(model: str, sample: CalibrationSample, *, current: float | None) -> ModelCalibration:
    """ECE and reliability before, fitted temperature and ECE after (the merged answer is not fitted).

    An annotator's sample must hold raw distributions only (``n_raw == n``): a temperature
    fitted on already-scaled ones would not be absolute (module docstring).
    """
    result = ModelCalibration(model=model, n=len(sample.labels), n_raw=sample.n_raw, current_temperature=current,
                              n_without_raw=sample.n_without_raw)
    if sample.n_without_raw:
        result.notes.append(_without_raw_note(sample.n_without_raw))
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


def report_calibration_section(*, reference: dict[int, int], rows: Iterable[DistributionRow]) -> dict[str, Any]:
    """The agreement report's calibration: per model, on the report's images with a human
    reference label, the ECE of its raw distributions (before), the latest stored temperature
    and the ECE after applying it, with the reliability bins of both (nothing is fitted here:
    :func:`recalibrate` fits and stores temperatures)."""
    current = latest_temperatures()
    models = []
    for model, sample in samples_from(reference, rows).items():
        temperature = None if model == PIPELINE_AUTHOR else current.get(model)
        fit = ModelCalibration(model=model, n=len(sample.labels), n_raw=sample.n_raw, current_temperature=temperature,
                               n_without_raw=sample.n_without_raw, temperature=temperature)
        if sample.n_without_raw:
            fit.notes.append(_without_raw_note(sample.n_without_raw))
        if fit.n:
            before = reliability_diagram(sample.probs, sample.labels, N_BINS)
            fit.ece_before, fit.reliability_before = before.ece, before.to_dict()
            if fit.merged:
                fit.notes.insert(0, "merged answer: its stored distribution is already calibrated through its "
                                    "annotators' temperatures")
            elif temperature is None:
                fit.notes.append("no calibration version stored yet: this model's answers are used as they are (T = 1)")
            else:
                after = reliability_diagram(apply_temperature(probs_to_logits(sample.probs), temperature),
                                            sample.labels, N_BINS)
                fit.ece_after, fit.reliability_after = after.ece, after.to_dict()
        else:
            fit.notes.append("no usable answer on an image with a human reference label")
        row = fit.as_dict()
        del row["current_temperature"]
        models.append(row)
    return {"n_bins": N_BINS, "models": models}


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


def calibration_history(*, limit: int = 200) -> list[CalibrationVersion]:
    return list(CalibrationVersion.objects.select_related("created_by").order_by("model_name", "-version")[:limit])
