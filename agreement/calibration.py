"""Per-model calibration of CES confidence against the human reference labels: what is read and reported.

For every image with a human reference label (``review.reference``: the adjudication,
else the approved reviews' unanimous label, else the reviews' strict majority; the same
rule as the report's human-vs-model statistics), each model's current answer gives an
8-way distribution (:func:`calibration_samples`). The agreement report shows, per model,
the Expected Calibration Error (15 equal-width bins, Guo et al. 2017) of those answers and
its reliability diagram, before and after the latest stored temperature
(:func:`report_calibration_section`). Nothing is fitted or stored here:
``ml.recalibration`` fits the temperatures on the same samples and stores them.

Only an annotator's *raw* distribution (before any temperature) is used: an answer saved
without it holds ``softmax(log p / T_old)`` for a ``T_old`` that is recorded nowhere, so
such answers are left out (and counted: ``n_without_raw``). The merged ``pipeline``
answer is reported on its stored distribution: its confidence comes from its
annotators' calibrated distributions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agreement import selectors
from agreement.selectors import DistributionRow
from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Dataset
from core.vocabulary import EMOTIONS
from ml.selectors import latest_temperatures
from ml.stages.calibration import apply_temperature, probs_to_logits, reliability_diagram
from review.reference import reference_labels

N_BINS = 15


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


def without_raw_note(n: int) -> str:
    return (f"{n} answers have no raw (pre-temperature) distribution and are left out: their stored one was "
            "scaled with a temperature that is not recorded")


def report_calibration_section(*, reference: dict[int, int], rows: Iterable[DistributionRow]) -> dict[str, Any]:
    """The agreement report's calibration: per model, on the report's images with a human
    reference label, the ECE of its raw distributions (before), the latest stored temperature
    and the ECE after applying it, with the reliability bins of both (nothing is fitted here:
    ``ml.recalibration.recalibrate`` fits and stores temperatures)."""
    current = latest_temperatures()
    models = []
    for model, sample in samples_from(reference, rows).items():
        temperature = None if model == PIPELINE_AUTHOR else current.get(model)
        fit = ModelCalibration(model=model, n=len(sample.labels), n_raw=sample.n_raw, current_temperature=temperature,
                               n_without_raw=sample.n_without_raw, temperature=temperature)
        if sample.n_without_raw:
            fit.notes.append(without_raw_note(sample.n_without_raw))
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
