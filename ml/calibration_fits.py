"""Calibration fits the human reference labels give now (computed, never stored;
``ml.recalibration`` stores them).

Calibration samples. For every image with a human reference label (``review.reference``:
the adjudication, else the approved reviews' unanimous label, else the reviews' strict
majority; the same rule as the agreement report's human-vs-model statistics), each model's
current answer gives an 8-way distribution (:func:`calibration_samples`). From these pairs,
per model (:func:`calibrate_model`): the Expected Calibration Error (15 equal-width bins,
Guo et al. 2017) and its reliability diagram, the temperature minimising the negative
log-likelihood, and the ECE after scaling. New pre-annotations use the latest stored
temperature (:func:`latest_temperatures`).

A temperature is always fitted on an annotator's *raw* distribution (before any
temperature), so the stored value is absolute. An answer saved without its raw
distribution holds ``softmax(log p / T_old)`` for a ``T_old`` that is recorded nowhere; a
temperature fitted on it would be relative to that unknown ``T_old``
(``softmax(log softmax(z / T_old) / T) = softmax(z / (T_old * T))``) yet be stored as
absolute, so such answers are left out (and counted: ``n_without_raw``).

The merged ``pipeline`` answer is reported on its stored distribution but never fitted:
its confidence comes from its annotators' calibrated distributions.

Audit sample. The queue serves hardest-first, so the reviewed images are not a sample of
the dataset: a temperature fitted on them is biased (hard images are the ones the models
get wrong). The fits are therefore made on the calibration audit only
(``Dataset.audit_fraction``: images drawn at random with a known probability and reviewed
in random order, ``review.queue``). The audit answers are split by the image's stored
uniform draw (:func:`is_held_out`: the fractional part of ``audit_draw * 1000``, 30 % held
out; fixed with the image, independent of database ids and of its inclusion in the
audit): the temperature is fitted on the rest, and the ECE
before and after is measured on the held-out part. A fit is stored
(:meth:`ModelCalibration.refusal`) only with at least the minimum of audited answers and a
held-out ECE that does not get worse.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import F, Max, Q, QuerySet

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, AnnotationKind, Dataset, Image
from core.errors import UndefinedStatisticError
from core.vocabulary import EMOTIONS
from ml.models import CalibrationVersion
from ml.selectors import latest_temperatures
from ml.stages.calibration import apply_temperature, fit_temperature, probs_to_logits, reliability_diagram
from review.reference import REFERENCE_KINDS, reference_labels

CHUNK = 2000
N_BINS = 15
HELD_OUT_SHARE = 0.3


def default_min_samples() -> int:
    """Labelled raw answers a model needs before a recalibration stores its temperature."""
    return int(getattr(settings, "EMOVERSE_CALIBRATION_MIN_SAMPLES", 50))


class DistributionRow(NamedTuple):
    image_id: int
    model: str
    distribution: dict[str, float]
    raw: bool  # True: the annotator's distribution before calibration


class ReferenceLabelRow(NamedTuple):
    """A current annotation's label as the reference rule (``review.reference``) reads it."""

    image_id: int
    kind: str
    label: str | None
    decision: str
    version: int


def model_distribution_rows(*, images: QuerySet[Image] | None = None) -> Iterator[DistributionRow]:
    """Current model answers with a CES distribution (raw when stored, else the saved one),
    of ``images`` (default: every image)."""
    rows = Annotation.objects.filter(kind=AnnotationKind.MODEL, is_current=True)
    if images is not None:
        rows = rows.filter(image__in=images)
    rows = rows.filter(Q(ces_raw_distribution__isnull=False) | Q(ces_distribution__isnull=False))
    values = rows.order_by().values_list("image_id", "author_name", "ces_raw_distribution", "ces_distribution")
    for image_id, model, raw, calibrated in values.iterator(chunk_size=CHUNK):
        yield DistributionRow(image_id, model, raw if raw is not None else calibrated, raw is not None)


def reference_label_rows(*, dataset: Dataset | None = None) -> Iterator[ReferenceLabelRow]:
    """Label rows of the current annotations that decide an image's reference label
    (adjudications, human reviews, imports; see ``review.reference``)."""
    rows = Annotation.objects.filter(is_current=True, kind__in=REFERENCE_KINDS, ces_label__isnull=False)
    if dataset is not None:
        rows = rows.filter(image__dataset=dataset)
    values = rows.order_by().values_list("image_id", "kind", "ces_label", "decision", "version")
    for row in values.iterator(chunk_size=CHUNK):
        yield ReferenceLabelRow(*row)


@dataclass(frozen=True)
class CalibrationSample:
    """``probs``: ``(n, k)`` rows in the order of the dataset's taxonomy (``k`` its labels;
    zero-padded to the widest taxonomy when datasets are pooled); ``labels``: ``(n,)``
    reference label codes.

    ``n_raw``: rows whose distribution is the stored raw (pre-temperature) one; for an
    annotator every row is (see the module docstring). ``n_without_raw``: answers left out
    because they have no raw distribution.
    """

    probs: np.ndarray
    labels: np.ndarray
    n_raw: int
    n_without_raw: int = 0
    image_ids: np.ndarray | None = None  # ``(n,)``, the image of each row (None: unknown)
    held_out: np.ndarray | None = None  # ``(n,)`` bool, rows held out of an audit fit (None: no split known)


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
    # "audit": fitted on the calibration audit's answers, ECE on its held-out part (n_train + n_held_out = n);
    # "all": fitted and measured on every answer given (no split).
    sample: str = "all"
    n_train: int | None = None
    n_held_out: int | None = None

    @property
    def merged(self) -> bool:
        return self.model == PIPELINE_AUTHOR

    def reliability(self) -> dict[str, Any]:
        return {"n_bins": N_BINS, "before": self.reliability_before, "after": self.reliability_after,
                "sample": self.sample, "n": self.n, "n_train": self.n_train, "n_held_out": self.n_held_out}

    def refusal(self, min_samples: int) -> str | None:
        """Why this fit must not be stored (None: store it): a merged answer, fewer than
        ``min_samples`` answers in the sample, no temperature, no held-out answer, or a
        held-out ECE that the temperature makes worse. Each reason says which temperature stays."""
        stays = f"the temperature stays {_temperature_text(self.current_temperature)}"
        if self.merged:
            return self.notes[0]
        if self.n < min_samples:
            what = "audited answers" if self.sample == "audit" else "labelled answers"
            return "; ".join([f"{self.n} {what}; at least {min_samples} needed for a fit — {stays}", *self.notes])
        if self.temperature is None:
            return "; ".join([*self.notes, stays])
        if self.ece_before is None or self.ece_after is None:
            return f"no held-out answer to check the fit on — {stays}"
        if self.ece_after > self.ece_before:
            return (f"held-out ECE would rise from {self.ece_before:.3f} to {self.ece_after:.3f} with T = "
                    f"{self.temperature:.3f}: not stored — {stays}")
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "merged": self.merged, "n": self.n, "n_raw": self.n_raw,
            "n_without_raw": self.n_without_raw, "current_temperature": self.current_temperature,
            "ece_before": self.ece_before, "temperature": self.temperature, "ece_after": self.ece_after,
            "reliability": self.reliability(), "notes": self.notes, "sample": self.sample,
            "n_train": self.n_train, "n_held_out": self.n_held_out,
        }


def _temperature_text(temperature: float | None) -> str:
    return "1 (none stored)" if temperature is None else f"{temperature:.3f}"


HELD_OUT_SCALE = 1000


def is_held_out(audit_draw: float) -> bool:
    """Whether an image's answers are held out of the fit: the fractional part of
    ``audit_draw * 1000`` is below :data:`HELD_OUT_SHARE`. ``audit_draw`` is uniform on [0, 1)
    and stored with the image, so the split is fixed and independent of database ids; its
    digits past the third are independent of ``audit_draw < audit_fraction`` (the inclusion)."""
    return math.modf(audit_draw * HELD_OUT_SCALE)[0] < HELD_OUT_SHARE


def _values(distribution: Any, labels: Sequence[str] = EMOTIONS) -> list[float] | None:
    """A stored distribution as floats in ``labels`` order (missing ones 0), or None."""
    if not isinstance(distribution, dict):
        return None
    try:
        return [float(distribution.get(e, 0.0)) for e in labels]
    except (TypeError, ValueError):
        return None


def _normalised(
    values: list[list[float]], labels: list[int], image_ids: list[int], width: int = len(EMOTIONS)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(probs (n, width), labels (n,), image ids (n,))`` keeping the rows that are a distribution
    (finite, non-negative, positive sum), each scaled to sum 1."""
    v = np.array(values, dtype=np.float64).reshape(-1, width)
    total = v.sum(axis=1)
    ok = np.all(np.isfinite(v), axis=1) & np.all(v >= 0, axis=1) & (total > 0)
    return v[ok] / total[ok, None], np.array(labels, dtype=np.int64)[ok], np.array(image_ids, dtype=np.int64)[ok]


def samples_from(reference: dict[int, int], rows: Iterable[DistributionRow],
                 labels: Sequence[str] = EMOTIONS) -> dict[str, CalibrationSample]:
    """Model name → its usable distributions on the images of ``reference`` (image id → label
    code): an annotator's raw ones only, the merged answer's stored ones; over ``labels``,
    the dataset's taxonomy, whose order the codes follow."""
    collected: dict[str, tuple[list[list[float]], list[int], list[int]]] = {}
    without_raw: dict[str, int] = {}
    for row in rows:
        label = reference.get(row.image_id)
        if label is None:
            continue
        if not row.raw and row.model != PIPELINE_AUTHOR:
            without_raw[row.model] = without_raw.get(row.model, 0) + 1
            continue
        values = _values(row.distribution, labels)
        if values is not None:
            probs, codes, ids = collected.setdefault(row.model, ([], [], []))
            probs.append(values)
            codes.append(label)
            ids.append(row.image_id)
    out = {}
    for model in sorted(set(collected) | set(without_raw)):
        probs, codes, ids = _normalised(*collected.get(model, ([], [], [])), width=len(labels))
        out[model] = CalibrationSample(probs, codes, n_raw=0 if model == PIPELINE_AUTHOR else len(codes),
                                       n_without_raw=without_raw.get(model, 0), image_ids=ids)
    return out


def _pooled(parts: list[dict[str, CalibrationSample]]) -> dict[str, CalibrationSample]:
    """Each model's samples of several datasets as one, the probability rows zero-padded to the
    widest taxonomy. A zero column changes no row's argmax or confidence, and after temperature
    scaling holds only what the fit's epsilon gives any zero probability (a Mikels row's zeros
    too), so the pooled fit is, to that epsilon, the fit of the rows themselves."""
    width = max((s.probs.shape[1] for part in parts for s in part.values()), default=len(EMOTIONS))
    out: dict[str, CalibrationSample] = {}
    for model in sorted({m for part in parts for m in part}):
        found = [part[model] for part in parts if model in part]
        probs = [np.pad(s.probs, ((0, 0), (0, width - s.probs.shape[1]))) for s in found]
        held = [s.held_out for s in found]
        out[model] = CalibrationSample(
            np.vstack(probs) if probs else np.zeros((0, width)), np.concatenate([s.labels for s in found]),
            n_raw=sum(s.n_raw for s in found), n_without_raw=sum(s.n_without_raw for s in found),
            image_ids=np.concatenate([s.image_ids for s in found]),
            held_out=None if any(h is None for h in held) else np.concatenate(held),
        )
    return out


def audit_images(*, dataset: Dataset | None = None) -> QuerySet[Image]:
    """The images of the calibration audit (``audit_draw < dataset.audit_fraction``), of
    ``dataset`` or of every dataset (each by its own fraction)."""
    images = Image.objects.filter(audit_draw__lt=F("dataset__audit_fraction"))
    return images.filter(dataset=dataset) if dataset is not None else images


def calibration_samples(*, dataset: Dataset | None = None, audit_only: bool = False) -> dict[str, CalibrationSample]:
    """Model name → its distributions on images with a human reference label (two streamed
    queries per dataset); with ``audit_only``, on the calibration audit's images only. The
    rows are over the dataset's taxonomy; without ``dataset``, every dataset's are pooled
    (:func:`_pooled`)."""
    if dataset is None:
        return _pooled([calibration_samples(dataset=d, audit_only=audit_only) for d in Dataset.objects.order_by("pk")])
    labels = dataset.get_taxonomy().labels
    code = {e: i for i, e in enumerate(labels)}
    reference = {image_id: code[label] for image_id, label in
                 reference_labels(reference_label_rows(dataset=dataset)).items() if label in code}
    if not audit_only:
        return samples_from(reference, model_distribution_rows(images=dataset.images.all()), labels)
    images = audit_images(dataset=dataset)
    draws = dict(images.values_list("id", "audit_draw")) if reference else {}
    samples = samples_from(reference, model_distribution_rows(images=images), labels)
    return {model: replace(sample, held_out=np.array([is_held_out(draws[int(i)]) for i in sample.image_ids], dtype=bool))
            for model, sample in samples.items()}


def without_raw_note(n: int) -> str:
    return (f"{n} answers have no raw (pre-temperature) distribution and are left out: their stored one was "
            "scaled with a temperature that is not recorded")


def calibrate_model(
    model: str, sample: CalibrationSample, *, current: float | None, audit: bool = False
) -> ModelCalibration:
    """ECE and reliability before, fitted temperature and ECE after (the merged answer is not fitted).

    With ``audit`` (the sample is the calibration audit's, with its ``held_out`` split) the
    temperature is fitted on the answers not held out (:func:`is_held_out`) and both ECEs
    and reliability diagrams are the held-out part's; else fit and ECE use every answer.

    An annotator's sample must hold raw distributions only (``n_raw == n``): a temperature
    fitted on already-scaled ones would not be absolute (module docstring).
    """
    result = ModelCalibration(model=model, n=len(sample.labels), n_raw=sample.n_raw, current_temperature=current,
                              n_without_raw=sample.n_without_raw)
    train = test = np.ones(result.n, dtype=bool)
    if audit:
        if sample.held_out is None or len(sample.held_out) != result.n:
            raise ValueError("an audit calibration needs the sample's held-out split")
        test = np.asarray(sample.held_out, dtype=bool)
        train = ~test
        result.sample, result.n_train, result.n_held_out = "audit", int(train.sum()), int(test.sum())
    if sample.n_without_raw:
        result.notes.append(without_raw_note(sample.n_without_raw))
    if result.n == 0:
        result.notes.append("no usable answer on an image with a human reference label")
        return result
    if test.any():
        before = reliability_diagram(sample.probs[test], sample.labels[test], N_BINS)
        result.ece_before, result.reliability_before = before.ece, before.to_dict()
    if result.merged:
        result.notes.insert(0, "merged answer: calibrated through its annotators' temperatures, not fitted itself")
        return result
    if sample.n_raw < result.n:
        result.notes.append(f"no temperature: {result.n - sample.n_raw} answers are not raw distributions; "
                            "a temperature fitted on them would be relative to the one they were scaled with")
        return result
    if not train.any():
        result.notes.append("no temperature: every audited answer is held out")
        return result
    logits = probs_to_logits(sample.probs)
    try:
        result.temperature = fit_temperature(logits[train], sample.labels[train])
    except UndefinedStatisticError as exc:
        result.notes.append(f"no temperature: {exc}")
        return result
    if test.any():
        after = reliability_diagram(apply_temperature(logits[test], result.temperature), sample.labels[test], N_BINS)
        result.ece_after, result.reliability_after = after.ece, after.to_dict()
    return result


def model_calibrations(*, dataset: Dataset | None = None) -> list[ModelCalibration]:
    """Calibration of every model with at least one answer on an audit image with a human
    reference label: fitted on the audit's training part, ECE on its held-out part."""
    current = latest_temperatures()
    samples = calibration_samples(dataset=dataset, audit_only=True)
    return [calibrate_model(model, samples[model], current=current.get(model), audit=True) for model in sorted(samples)]


def cached_model_calibrations(*, dataset: Dataset | None = None) -> list[ModelCalibration]:
    """:func:`model_calibrations`, cached until an annotation or a calibration version is added
    (annotations are immutable: every change is a new row with a higher id) or an audit fraction changes."""
    stamp = (Annotation.objects.aggregate(m=Max("id"))["m"], CalibrationVersion.objects.aggregate(m=Max("id"))["m"])
    fractions = Dataset.objects.filter(pk=dataset.pk) if dataset is not None else Dataset.objects.all()
    audit = hashlib.sha256(repr(list(fractions.order_by("pk").values_list("pk", "audit_fraction"))).encode()).hexdigest()[:16]
    # v4: the cached ModelCalibration objects are pickled; v4 added the audit sample fields.
    key = f"agreement-calibration:v4:{dataset.pk if dataset else 'all'}:{stamp[0]}:{stamp[1]}:{audit}"
    fits = cache.get(key)
    if fits is None:
        fits = model_calibrations(dataset=dataset)
        cache.set(key, fits, 24 * 3600)
    return fits
