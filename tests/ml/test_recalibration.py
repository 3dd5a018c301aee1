"""Recalibration against human reference labels: ECE, fitted temperature, stored versions, the command."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind, Decision
from core.vocabulary import EMOTIONS
from ml import services
from ml.models import CalibrationVersion
from ml.recalibration import recalibrate
from ml.calibration_fits import CalibrationSample, cached_model_calibrations, calibrate_model, calibration_samples, model_calibrations
from ml.selectors import latest_temperatures
from ml.stages.calibration import fit_temperature, probs_to_logits, temperature_scale
from tests.agreement.scenes import H, W, build_scene, payload
from tests.factories import DatasetFactory, ImageFactory, UserFactory, audit_draw_for, make_annotation

KEY = "00000000-0000-0000-0000-000000000001"


@pytest.fixture(autouse=True)
def _empty_cache():
    """Fits are cached by data stamp: every test starts with an empty cache."""
    cache.clear()
    yield
    cache.clear()


def overconfident(label: str, confidence: float = 0.95) -> dict[str, float]:
    rest = (1 - confidence) / 7
    return {e: confidence if e == label else rest for e in EMOTIONS}


def test_overconfident_model_gets_a_temperature_above_one_and_lower_ece():
    rng = np.random.default_rng(0)
    n = 400
    truth = rng.integers(0, 8, n)
    predicted = np.where(rng.random(n) < 0.6, truth, (truth + rng.integers(1, 8, n)) % 8)  # 60 % correct
    probs = np.full((n, 8), 0.05 / 7)
    probs[np.arange(n), predicted] = 0.95
    fit = calibrate_model("m", CalibrationSample(probs, truth, n_raw=n), current=None)
    assert fit.ece_before == pytest.approx(0.95 - np.mean(predicted == truth))
    assert fit.temperature > 1.0
    assert fit.ece_after < 0.05 < fit.ece_before
    assert sum(fit.reliability_before["counts"]) == n and len(fit.reliability_before["counts"]) == 15
    # The fitted temperature means the same in the pipeline (ml.stages.calibration.temperature_scale).
    scaled = temperature_scale(dict(zip(EMOTIONS, probs[0])), fit.temperature)
    assert max(scaled.values()) == pytest.approx(np.mean(predicted == truth), abs=0.05)


def test_perfectly_separated_answers_get_no_temperature_and_say_why():
    probs = np.eye(8)[[0, 1, 2, 3]] * 0.9 + 0.1 / 8
    fit = calibrate_model("m", CalibrationSample(probs, np.array([0, 1, 2, 3]), n_raw=4), current=1.0)
    assert fit.temperature is None and fit.ece_after is None
    assert "perfectly separated" in fit.notes[0]


def _labelled_images(dataset, reviewer, n_correct: int, n_wrong: int, *, model="gpt-4o"):
    for i in range(n_correct + n_wrong):
        image = ImageFactory(dataset=dataset, width=W, height=H, audit_draw=audit_draw_for(dataset.images.count()))
        truth = EMOTIONS[i % 8]
        said = truth if i < n_correct else EMOTIONS[(i + 3) % 8]
        make_annotation(image, kind=AnnotationKind.MODEL, author_name=model, payload=payload(said, KEY, confidence=0.9),
                        raw_distribution=overconfident(said))
        make_annotation(image, kind=AnnotationKind.MODEL, author_name=PIPELINE_AUTHOR, payload=payload(said, KEY))
        make_annotation(image, kind=AnnotationKind.HUMAN, author_name=reviewer.username, author_user=reviewer,
                        payload=payload(truth, KEY), decision=Decision.APPROVED)


@pytest.mark.django_db
def test_recalibrate_stores_a_version_per_model_and_keeps_history(admin_user):
    dataset = DatasetFactory(slug="calib", audit_fraction=1.0)
    reviewer = UserFactory(username="rev")
    _labelled_images(dataset, reviewer, n_correct=12, n_wrong=8)
    other = ImageFactory(dataset=dataset, width=W, height=H)  # a model answer with no reference label: not used
    make_annotation(other, kind=AnnotationKind.MODEL, author_name="gpt-4o", payload=payload("awe", KEY),
                    raw_distribution=overconfident("awe"))

    samples = calibration_samples(dataset=dataset)
    assert len(samples["gpt-4o"].labels) == 20 and samples["gpt-4o"].n_raw == 20
    assert samples["gpt-4o"].probs[0].max() == pytest.approx(0.95)  # the raw distribution, not the saved one

    result = recalibrate(dataset=dataset, min_samples=10, created_by=admin_user)
    assert [v.model_name for v in result.stored] == ["gpt-4o"]
    assert PIPELINE_AUTHOR in result.skipped
    version = result.stored[0]
    held_out = 6  # i % 3 == 2 of 20 (audit_draw_for): 4 right, 2 wrong
    assert samples["gpt-4o"].held_out is None  # not an audit sample
    assert int(calibration_samples(dataset=dataset, audit_only=True)["gpt-4o"].held_out.sum()) == held_out
    assert version.version == 1 and version.n_samples == 20 - held_out and version.created_by == admin_user
    assert version.reliability["sample"] == "audit" and version.reliability["n_held_out"] == held_out
    assert version.temperature > 1.0 and version.ece_after <= version.ece_before
    assert version.reliability["dataset"] == "calib" and len(version.reliability["before"]["counts"]) == 15
    assert latest_temperatures()["gpt-4o"] == pytest.approx(version.temperature)

    again = recalibrate(dataset=dataset, min_samples=10)
    assert again.stored[0].version == 2
    assert CalibrationVersion.objects.filter(model_name="gpt-4o").count() == 2
    fits = {f.model: f for f in model_calibrations(dataset=dataset)}
    assert fits["gpt-4o"].current_temperature == pytest.approx(again.stored[0].temperature)


@pytest.mark.django_db
def test_recalibrate_skips_models_with_too_few_labelled_answers():
    dataset = DatasetFactory(slug="few", audit_fraction=1.0)
    _labelled_images(dataset, UserFactory(username="rev2"), n_correct=3, n_wrong=2, model="qwen")
    result = recalibrate(dataset=dataset, min_samples=10)
    assert result.stored == []
    assert result.skipped["qwen"] == "5 audited answers; at least 10 needed for a fit — the temperature stays 1 (none stored)"
    assert not CalibrationVersion.objects.exists()
    with pytest.raises(ValueError, match="min_samples"):
        recalibrate(dataset=dataset, min_samples=0)


@pytest.mark.django_db
def test_cached_calibration_follows_new_answers_and_versions():

    dataset = DatasetFactory(slug="cached", audit_fraction=1.0)
    reviewer = UserFactory(username="rev3")
    _labelled_images(dataset, reviewer, n_correct=3, n_wrong=1)
    first = {f.model: f for f in cached_model_calibrations(dataset=dataset)}
    assert first["gpt-4o"].n == 4 and first["gpt-4o"].current_temperature is None
    _labelled_images(dataset, reviewer, n_correct=1, n_wrong=1)
    assert {f.model: f.n for f in cached_model_calibrations(dataset=dataset)}["gpt-4o"] == 6
    recalibrate(dataset=dataset, min_samples=1)
    assert {f.model: f for f in cached_model_calibrations(dataset=dataset)}["gpt-4o"].current_temperature is not None


def _answers(dataset, reviewer, n: int, *, seed: int, stored_temperature: float | None, model="gpt-4o"):
    """``n`` images with a reviewed label and an over-confident answer (about 60 % right at .95).
    With ``stored_temperature`` the answer is saved as a pipeline that applied it would have saved
    it, without its raw distribution. Returns the raw ``(probs, labels)``."""
    rng = np.random.default_rng(seed)
    probs, labels = [], []
    for _ in range(n):
        truth = int(rng.integers(0, 8))
        said = truth if rng.random() < 0.6 else (truth + int(rng.integers(1, 8))) % 8
        raw = overconfident(EMOTIONS[said])
        image = ImageFactory(dataset=dataset, width=W, height=H, audit_draw=audit_draw_for(dataset.images.count()))
        answer = payload(EMOTIONS[said], KEY)
        if stored_temperature is None:
            make_annotation(image, kind=AnnotationKind.MODEL, author_name=model, payload=answer, raw_distribution=raw)
        else:
            scaled = temperature_scale(raw, stored_temperature)
            answer["ces"] = {"label": EMOTIONS[said], "confidence": max(scaled.values()), "distribution": scaled}
            make_annotation(image, kind=AnnotationKind.MODEL, author_name=model, payload=answer)
        make_annotation(image, kind=AnnotationKind.HUMAN, author_name=reviewer.username, author_user=reviewer,
                        payload=payload(EMOTIONS[truth], KEY), decision=Decision.APPROVED)
        probs.append([raw[e] for e in EMOTIONS])
        labels.append(truth)
    return np.array(probs), np.array(labels)


@pytest.mark.django_db
def test_temperature_is_fitted_on_raw_distributions_only():
    """Answers saved after a temperature of 2 was applied, without their raw distribution, would give
    a temperature relative to that 2 (softmax(log softmax(z/2) / T) = softmax(z / 2T)) stored as
    absolute: they are left out, and the stored temperature is the one fitted on the raw answers."""
    dataset = DatasetFactory(slug="raw", audit_fraction=1.0)
    reviewer = UserFactory(username="rawrev")
    raw_probs, raw_labels = _answers(dataset, reviewer, 60, seed=1, stored_temperature=None)
    _answers(dataset, reviewer, 60, seed=2, stored_temperature=2.0)

    sample = calibration_samples(dataset=dataset)["gpt-4o"]
    assert len(sample.labels) == 60 and sample.n_raw == 60 and sample.n_without_raw == 60
    version = recalibrate(dataset=dataset, min_samples=10).stored[0]
    audit = calibration_samples(dataset=dataset, audit_only=True)["gpt-4o"]
    train = ~audit.held_out
    assert int(audit.held_out.sum()) == 20  # i % 3 == 2 of the 60 raw answers (audit_draw_for)
    expected = fit_temperature(probs_to_logits(audit.probs[train]), audit.labels[train])
    assert expected > 1.5 and fit_temperature(probs_to_logits(raw_probs), raw_labels) > 1.5
    assert version.temperature == pytest.approx(expected)
    assert version.n_samples == int(train.sum())
    fit = {f.model: f for f in model_calibrations(dataset=dataset)}["gpt-4o"]
    assert fit.n_without_raw == 60 and "60 answers have no raw" in fit.notes[0]


@pytest.mark.django_db
def test_no_temperature_without_raw_distributions():
    dataset = DatasetFactory(slug="noraw", audit_fraction=1.0)
    _answers(dataset, UserFactory(username="norawrev"), 30, seed=3, stored_temperature=2.0, model="qwen")
    result = recalibrate(dataset=dataset, min_samples=10)
    assert result.stored == []
    assert result.skipped["qwen"].startswith("0 audited answers; at least 10 needed")
    assert "30 answers have no raw" in result.skipped["qwen"]
    fit = calibrate_model("m", CalibrationSample(np.eye(8)[[0, 1]] * 0.9 + 0.1 / 8, np.array([0, 1]), n_raw=1),
                          current=None)
    assert fit.temperature is None and "not raw distributions" in fit.notes[-1]


def _create(model: str, temperature: float = 1.5):
    return services.calibration_version_create(model_name=model, temperature=temperature, n_samples=10,
                                               ece_before=0.2, ece_after=0.1, reliability={}, created_by=None)


@pytest.mark.django_db
def test_a_version_number_taken_meanwhile_is_retried(monkeypatch):
    """Between choosing a number and inserting, another fit took it (as two first fits racing do):
    the insert fails on the unique constraint in a savepoint and the next number is used."""
    assert _create("gemini").version == 1
    real = services._next_calibration_version
    calls = []

    def stale_then_real(model_name):
        calls.append(model_name)
        return 1 if len(calls) == 1 else real(model_name)

    monkeypatch.setattr(services, "_next_calibration_version", stale_then_real)
    assert _create("gemini", 2.0).version == 2 and len(calls) == 2
    assert list(CalibrationVersion.objects.filter(model_name="gemini").order_by("version").values_list("version", "temperature")) == [
        (1, 1.5), (2, 2.0)]


@pytest.mark.postgres
def test_two_concurrent_first_calibrations_both_get_a_version(transactional_db, on_postgres, monkeypatch):
    """Two recalibrations of a model with no version yet, on two connections: both choose 1 before
    either inserts (a barrier holds them there); both succeed, with versions 1 and 2."""
    real = services._next_calibration_version
    barrier = threading.Barrier(2)
    waited = threading.local()
    chosen = []

    def together(model_name):
        version = real(model_name)
        chosen.append(version)
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait(timeout=60)  # a safety net: the other thread is on its way
        return version

    monkeypatch.setattr(services, "_next_calibration_version", together)

    def fit(temperature):
        try:
            return _create("new-model", temperature).version
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        versions = sorted(pool.map(fit, [1.5, 2.5]))
    assert versions == [1, 2]
    assert sorted(chosen) == [1, 1, 2]  # both chose 1; the one that lost the insert retried with 2
    assert CalibrationVersion.objects.filter(model_name="new-model").count() == 2


@pytest.mark.django_db
def test_recalibrate_command():
    build_scene()
    out = io.StringIO()
    call_command("recalibrate", "--dataset", "study", "--min-samples", "5", stdout=out)
    stored = list(CalibrationVersion.objects.values_list("model_name", flat=True))
    # 10 audited answers, 3 held out (audit_draw_for): the fits pass their held-out check.
    assert stored
    for name in stored:
        assert f"{name}: version 1, T = " in out.getvalue()
    out = io.StringIO()
    call_command("recalibrate", "--min-samples", "500", stdout=out)
    assert "skipped (10 audited answers; at least 500 needed for a fit" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("recalibrate", "--dataset", "nope")
