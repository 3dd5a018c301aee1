"""Temperatures fitted on the calibration audit: unbiased by the hardest-first queue, checked on
a held-out part, refused with a notice, and followed by re-prioritisation and a recheck."""

from __future__ import annotations

import random

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind, Decision, ImageStatus
from core.priority import queue_priority
from core.vocabulary import EMOTIONS
from ml.models import AutoAcceptRecheck, CalibrationVersion, PipelineRun
from ml.recalibration import calibrated_confidence, recalibrate
from ml.calibration_fits import calibration_samples
from ml.stages.calibration import fit_temperature, probs_to_logits, temperature_scale
from review.models import ReviewPlan
from tests.agreement.scenes import H, W, payload
from tests.factories import DatasetFactory, ImageFactory, UserFactory, audit_draw_for, make_annotation

KEY = "00000000-0000-0000-0000-0000000000c1"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def overconfident(label: str, confidence: float = 0.95) -> dict[str, float]:
    return {e: confidence if e == label else (1 - confidence) / 7 for e in EMOTIONS}


def _reviewed(dataset, reviewer, *, right: bool, audit_draw: float, model: str = "gpt-4o"):
    """An image the model answered (raw, .95 sure) and a reviewer labelled; ``right``: same label."""
    i = dataset.images.count()
    image = ImageFactory(dataset=dataset, width=W, height=H, audit_draw=audit_draw)
    truth = EMOTIONS[i % 8]
    said = truth if right else EMOTIONS[(i + 3) % 8]
    make_annotation(image, kind=AnnotationKind.MODEL, author_name=model, payload=payload(said, KEY, confidence=0.95),
                    raw_distribution=overconfident(said))
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name=reviewer.username, author_user=reviewer,
                    payload=payload(truth, KEY), decision=Decision.APPROVED)
    return image


def _audit(dataset, reviewer, rights: list[bool]):
    """Audited images (draw below 0.3, the i-th held out when i % 3 == 2)."""
    return [_reviewed(dataset, reviewer, right=r, audit_draw=audit_draw_for(i)) for i, r in enumerate(rights)]


def _calibration_page(researcher, dataset) -> str:
    client = Client()
    client.force_login(researcher)
    response = client.get(reverse("agreement-calibration"), {"dataset": dataset.slug})
    assert response.status_code == 200
    return response.content.decode()


def test_the_fit_uses_the_audit_not_the_hardest_first_reviews():
    """30 audited images, the model right on 60 %; 60 hard images reviewed first (outside the audit),
    right on 10 %. Fitted on every review, T says ~33 % accuracy; the stored T is the audit's."""
    dataset = DatasetFactory(slug="bias", audit_fraction=0.3)
    reviewer = UserFactory(username="biasrev")
    _audit(dataset, reviewer, [i % 5 < 3 for i in range(30)])
    for i in range(60):
        _reviewed(dataset, reviewer, right=i % 10 == 0, audit_draw=0.5 + i / 1000)

    every = calibration_samples(dataset=dataset)["gpt-4o"]
    biased = fit_temperature(probs_to_logits(every.probs), every.labels)
    audit = calibration_samples(dataset=dataset, audit_only=True)["gpt-4o"]
    assert len(audit.labels) == 30 and int(audit.held_out.sum()) == 10
    train = ~audit.held_out
    unbiased = fit_temperature(probs_to_logits(audit.probs[train]), audit.labels[train])

    version = recalibrate(dataset=dataset, min_samples=10).stored[0]
    assert version.temperature == pytest.approx(unbiased, rel=1e-6)
    assert version.n_samples == 20 and version.reliability["n_held_out"] == 10
    assert version.reliability["sample"] == "audit"
    # The stored T turns .95 into about the audit's accuracy; the biased one would say about a third.
    assert max(temperature_scale(overconfident("awe"), version.temperature).values()) == pytest.approx(0.6, abs=0.08)
    assert max(temperature_scale(overconfident("awe"), biased).values()) == pytest.approx(1 / 3, abs=0.08)
    assert biased > version.temperature + 1.0


def test_below_the_minimum_no_fit_is_stored_and_the_page_says_so(researcher, settings):
    settings.EMOVERSE_CALIBRATION_MIN_SAMPLES = 10
    dataset = DatasetFactory(slug="few-audited", audit_fraction=0.3)
    reviewer = UserFactory(username="fewrev")
    _audit(dataset, reviewer, [True, False, True, False, True, True])
    for i in range(20):  # many reviews outside the audit do not count towards the minimum
        _reviewed(dataset, reviewer, right=i % 2 == 0, audit_draw=0.6 + i / 1000)

    result = recalibrate(dataset=dataset)
    notice = "6 audited answers; at least 10 needed for a fit — the temperature stays 1 (none stored)"
    assert result.stored == [] and result.skipped["gpt-4o"] == notice
    assert not CalibrationVersion.objects.exists()
    html = _calibration_page(researcher, dataset)
    assert f'<td class="notice">{notice}</td>' in html
    assert "at least 10 audited answers" in html


def test_a_fit_whose_held_out_ece_rises_is_refused_with_a_notice(researcher, settings):
    """Training part: right half the time at .95 (T > 1); held-out part (i % 3 == 2): always right,
    so the raw .95 is already close (ECE .05) and the fitted T makes it worse."""
    settings.EMOVERSE_CALIBRATION_MIN_SAMPLES = 10
    dataset = DatasetFactory(slug="worse", audit_fraction=0.3)
    reviewer = UserFactory(username="worserev")
    rights = [True if i % 3 == 2 else (i % 3 == 0) for i in range(30)]
    _audit(dataset, reviewer, rights)

    result = recalibrate(dataset=dataset)
    assert result.stored == [] and not CalibrationVersion.objects.exists()
    reason = result.skipped["gpt-4o"]
    assert reason.startswith("held-out ECE would rise from 0.050 to ")
    assert reason.endswith(": not stored — the temperature stays 1 (none stored)")
    assert result.reprioritised == 0 and result.sent_back == []
    html = _calibration_page(researcher, dataset)
    assert '<td class="notice">held-out ECE would rise from 0.050 to ' in html


def test_a_stored_refit_reprioritises_in_review_and_sends_auto_accepted_back(admin_user, settings):
    settings.EMOVERSE_AUTO_ACCEPT_RECHECK_FRACTION = 0.5
    dataset = DatasetFactory(slug="refit", audit_fraction=0.3)
    reviewer = UserFactory(username="refitrev")
    _audit(dataset, reviewer, [i % 5 < 3 for i in range(30)])
    pending = []
    for i in range(3):  # in review, not reviewed yet: two annotators' raw answers
        image = ImageFactory(dataset=dataset, width=W, height=H, audit_draw=0.5 + i / 100, priority=1.0, agreement=0.4)
        make_annotation(image, kind=AnnotationKind.MODEL, author_name="gpt-4o", payload=payload("awe", KEY),
                        raw_distribution=overconfident("awe"))
        make_annotation(image, kind=AnnotationKind.MODEL, author_name="gemini", payload=payload("fear", KEY),
                        raw_distribution=overconfident("fear", 0.8))
        pending.append(image)
    auto = []
    for i in range(4):  # approved by the pipeline alone
        image = ImageFactory(dataset=dataset, width=W, height=H, audit_draw=0.7 + i / 100,
                             status=ImageStatus.APPROVED, priority=0.9)
        merged = make_annotation(image, kind=AnnotationKind.MODEL, author_name=PIPELINE_AUTHOR, payload=payload("awe", KEY))
        PipelineRun.objects.create(image=image, pipeline_version="v1", annotation=merged, auto_accepted=True)
        ReviewPlan.objects.create(image=image, dataset=dataset, required_reviews=1, submitted_reviews=0)
        auto.append(image)

    result = recalibrate(dataset=dataset, min_samples=10, created_by=admin_user, rng=random.Random(4))
    [version] = result.stored
    assert version.model_name == "gpt-4o" and version.temperature > 1.5

    temperatures = {"gpt-4o": version.temperature}
    for image in pending:
        image.refresh_from_db()
        expected = calibrated_confidence({"gpt-4o": overconfident("awe"), "gemini": overconfident("fear", 0.8)},
                                         temperatures)
        assert image.confidence == pytest.approx(expected)
        assert image.priority == pytest.approx(queue_priority(expected, 0.4)) and image.priority < 1.0
    assert result.reprioritised == 3 + 30  # the pending images and the audited ones still in review

    assert len(result.sent_back) == 2 and set(result.sent_back) <= {i.pk for i in auto}
    rechecks = AutoAcceptRecheck.objects.filter(image_id__in=result.sent_back)
    assert rechecks.count() == 2 and {r.created_by for r in rechecks} == {admin_user}
    assert all(r.reason.startswith("auto-accept recheck after recalibration (gpt-4o T = ") for r in rechecks)
    for image in auto:
        image.refresh_from_db()
        if image.pk in result.sent_back:
            assert image.status == ImageStatus.IN_REVIEW and image.priority == 0.0
            assert not ReviewPlan.objects.filter(image=image).exists()
        else:
            assert image.status == ImageStatus.APPROVED and image.priority == 0.9
            assert ReviewPlan.objects.filter(image=image).exists()
