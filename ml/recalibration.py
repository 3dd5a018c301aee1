"""Recalibration: fit each model's temperature on the calibration audit, and store it.

The samples, the fit and its held-out ECE before and after are computed by
:func:`ml.calibration_fits.model_calibrations` (see ``ml.calibration_fits`` for the rule: the audit's
raw annotator distributions only, fitted on its training part, checked on its held-out
part; the merged ``pipeline`` answer never fitted). :func:`recalibrate` stores a fitted
temperature as a new calibration version unless :meth:`ModelCalibration.refusal` says
why not (too few audited answers, held-out ECE worse); new pre-annotations use the
latest one (``ml.selectors.latest_temperatures``).

After a temperature is stored, the images still in review are re-prioritised with the
new calibrated confidence (:func:`reprioritise_in_review`), and a sample of the
auto-accepted images (``EMOVERSE_AUTO_ACCEPT_RECHECK_FRACTION``) goes back to review
(:func:`send_back_auto_accepted`).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, AnnotationKind, Dataset, Image, ImageStatus
from core.priority import queue_priority, stored_critic_verdict
from ml.models import AutoAcceptRecheck, CalibrationVersion, PipelineRun
from ml.calibration_fits import default_min_samples, model_calibrations
from ml.selectors import latest_temperatures
from ml.services import calibration_version_create
from ml.stages.calibration import temperature_scale
from review.queue import review_plans_reset

BATCH = 1000


@dataclass(frozen=True)
class RecalibrationResult:
    stored: list[CalibrationVersion]
    skipped: dict[str, str]  # model → why no version was stored
    reprioritised: int = 0  # images in review whose priority was recomputed
    sent_back: list[int] = field(default_factory=list)  # auto-accepted images sent back to review


def auto_accept_recheck_fraction() -> float:
    return float(getattr(settings, "EMOVERSE_AUTO_ACCEPT_RECHECK_FRACTION", 0.05))


def recalibrate(*, dataset: Dataset | None = None, min_samples: int | None = None,
                created_by: AbstractBaseUser | None = None, rng: random.Random | None = None) -> RecalibrationResult:
    """Fit every model on the calibration audit and store a new calibration version for each
    fit that passes (at least ``min_samples`` audited answers, held-out ECE not worse); then,
    when one was stored, re-prioritise the images in review and send a sample of the
    auto-accepted ones back to review."""
    min_samples = default_min_samples() if min_samples is None else min_samples
    if min_samples < 1:
        raise ValueError(f"min_samples must be at least 1, got {min_samples}")
    stored, skipped = [], {}
    for fit in model_calibrations(dataset=dataset):
        refusal = fit.refusal(min_samples)
        if refusal is not None:
            skipped[fit.model] = refusal
            continue
        stored.append(calibration_version_create(
            model_name=fit.model, temperature=fit.temperature, n_samples=fit.n_train, ece_before=fit.ece_before,
            ece_after=fit.ece_after, reliability={**fit.reliability(), "dataset": dataset.slug if dataset else None},
            created_by=created_by,
        ))
    if not stored:
        return RecalibrationResult(stored, skipped)
    models = ", ".join(f"{v.model_name} T = {v.temperature:.3f}" for v in stored)
    reprioritised = reprioritise_in_review(dataset=dataset)
    sent_back = send_back_auto_accepted(
        dataset=dataset, fraction=auto_accept_recheck_fraction(), created_by=created_by, rng=rng,
        reason=f"auto-accept recheck after recalibration ({models})",
    )
    return RecalibrationResult(stored, skipped, reprioritised, sent_back)


def calibrated_confidence(raw: Mapping[str, Mapping[str, float]], temperatures: Mapping[str, float]) -> float | None:
    """The merged answer's confidence under ``temperatures``: the largest probability of the
    mean of the annotators' temperature-scaled raw distributions (``calibrate_and_merge``)."""
    if not raw:
        return None
    scaled = [temperature_scale(d, temperatures.get(model, 1.0)) for model, d in raw.items()]
    labels = sorted(set().union(*scaled))  # the dataset's taxonomy: the same labels in every answer
    merged = np.mean([[s.get(e, 0.0) for e in labels] for s in scaled], axis=0)
    return float((merged / merged.sum()).max())


def reprioritise_in_review(*, dataset: Dataset | None = None) -> int:
    """Recompute ``confidence`` and ``priority`` (:func:`core.priority.queue_priority`, with the
    stored annotator ``agreement`` and the pipeline answer's critic verdict) of every image in review from its annotators' raw
    distributions and the latest temperatures; batched bulk UPDATEs. Images without a raw
    answer keep theirs. Returns how many images were updated."""
    temperatures = latest_temperatures()
    images = Image.objects.filter(status=ImageStatus.IN_REVIEW)
    if dataset is not None:
        images = images.filter(dataset=dataset)
    ids = list(images.order_by("id").values_list("id", flat=True))
    updated = 0
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        raw: dict[int, dict[str, dict[str, float]]] = defaultdict(dict)
        answers = Annotation.objects.filter(image_id__in=chunk, kind=AnnotationKind.MODEL, is_current=True,
                                            ces_raw_distribution__isnull=False).exclude(author_name=PIPELINE_AUTHOR)
        for image_id, model, distribution in answers.values_list("image_id", "author_name", "ces_raw_distribution"):
            if isinstance(distribution, dict):
                raw[image_id][model] = distribution
        critics = dict(Annotation.objects.filter(image_id__in=list(raw), kind=AnnotationKind.MODEL, is_current=True,
                                                 author_name=PIPELINE_AUTHOR).values_list("image_id", "critic"))
        rows = []
        for image in Image.objects.filter(pk__in=list(raw)).only("id", "agreement", "confidence", "priority"):
            image.confidence = calibrated_confidence(raw[image.pk], temperatures)
            image.priority = queue_priority(image.confidence, image.agreement, stored_critic_verdict(critics.get(image.pk)))
            rows.append(image)
        with transaction.atomic():
            Image.objects.bulk_update(rows, ["confidence", "priority"])
        updated += len(rows)
    return updated


def auto_accepted_images(*, dataset: Dataset | None = None):
    """Approved images that only the pipeline accepted (an auto-accepting run, no person's answer)."""
    auto = PipelineRun.objects.filter(image=OuterRef("pk"), auto_accepted=True)
    people = Annotation.objects.filter(image=OuterRef("pk"), is_current=True).exclude(kind=AnnotationKind.MODEL)
    images = Image.objects.filter(status=ImageStatus.APPROVED).filter(Exists(auto)).exclude(Exists(people))
    return images.filter(dataset=dataset) if dataset is not None else images


@transaction.atomic
def send_back_auto_accepted(*, dataset: Dataset | None, fraction: float, reason: str,
                            created_by: AbstractBaseUser | None = None, rng: random.Random | None = None) -> list[int]:
    """Send a random ``fraction`` (at least one when any, with a fraction above 0) of the
    auto-accepted images back to review: status in review, priority 0 (first in the queue),
    review plan reset, and an :class:`~ml.models.AutoAcceptRecheck` row with ``reason``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the recheck fraction must be in [0, 1], got {fraction}")
    ids = list(auto_accepted_images(dataset=dataset).order_by("id").values_list("id", flat=True))
    if not ids or fraction == 0:
        return []
    chosen = sorted((rng or random.Random()).sample(ids, min(len(ids), math.ceil(fraction * len(ids)))))
    Image.objects.filter(pk__in=chosen, status=ImageStatus.APPROVED).update(
        status=ImageStatus.IN_REVIEW, priority=0.0, updated_at=timezone.now()
    )
    review_plans_reset(image_ids=chosen)
    AutoAcceptRecheck.objects.bulk_create(
        [AutoAcceptRecheck(image_id=pk, reason=reason, created_by=created_by) for pk in chosen]
    )
    return chosen
