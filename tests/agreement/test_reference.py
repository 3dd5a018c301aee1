"""The human reference label (review.reference): one rule for human-vs-model statistics
and for calibration."""

from __future__ import annotations

import numpy as np
import pytest

from agreement.report import agreement_report
from agreement.results import ReportOptions
from agreement.selectors import LabelRow
from annotations.models import AnnotationKind, Decision
from core.vocabulary import EMOTIONS
from ml.recalibration import recalibrate
from ml.calibration_fits import calibrate_model, calibration_samples
from review.reference import reference_labels
from tests.agreement.scenes import H, W, payload
from tests.factories import DatasetFactory, ImageFactory, UserFactory, audit_draw_for, make_annotation

KEY = "00000000-0000-0000-0000-0000000000a1"
CODE = {e: i for i, e in enumerate(EMOTIONS)}
HUMAN, ADJ, IMPORT, MODEL = AnnotationKind.HUMAN, AnnotationKind.ADJUDICATION, AnnotationKind.IMPORT, AnnotationKind.MODEL
OK, FLAG = Decision.APPROVED, Decision.FLAGGED


def row(image_id, kind, label, decision=OK, version=1, author="x"):
    return LabelRow(image_id, kind, author, label, None, decision, version)


def test_newest_review_is_not_the_reference_the_majority_is():
    """fear, fear, awe with awe last and no adjudication: the reference is fear, not awe."""
    rows = [row(1, HUMAN, "fear", version=2), row(1, HUMAN, "fear", version=3), row(1, HUMAN, "awe", version=4)]
    assert reference_labels(rows) == {1: "fear"}


@pytest.mark.parametrize("rows, expected", [
    # the adjudication wins over unanimous reviews, the newest adjudication over an older one
    ([row(1, HUMAN, "fear"), row(1, HUMAN, "fear"), row(1, ADJ, "awe", version=5), row(1, ADJ, "anger", version=4)], "awe"),
    # unanimous approved reviews win over a majority that counts a flagged review
    ([row(1, HUMAN, "fear"), row(1, HUMAN, "awe", FLAG), row(1, HUMAN, "awe", FLAG)], "fear"),
    # approved reviews disagree: the strict majority of all current reviews
    ([row(1, HUMAN, "fear"), row(1, HUMAN, "awe"), row(1, HUMAN, "awe", FLAG)], "awe"),
    # no strict majority, no adjudication: no reference yet
    ([row(1, HUMAN, "fear"), row(1, HUMAN, "awe")], None),
    ([row(1, HUMAN, "fear"), row(1, HUMAN, "awe"), row(1, HUMAN, "sadness"), row(1, HUMAN, "fear", FLAG)], None),
    # reviews without a label and model answers do not count
    ([row(1, HUMAN, "fear"), row(1, HUMAN, None), row(1, MODEL, "awe"), row(1, MODEL, "awe", author="y")], "fear"),
    # never reviewed: an approved imported final label
    ([row(1, IMPORT, "contentment"), row(1, MODEL, "awe")], "contentment"),
    # reviewed: the reviews, not the import
    ([row(1, IMPORT, "contentment"), row(1, HUMAN, "awe"), row(1, HUMAN, "fear")], None),
    ([row(1, IMPORT, "contentment", Decision.NONE)], None),
])
def test_reference_rule(rows, expected):
    assert reference_labels(rows).get(1) == expected


def _three_reviews(dataset, users, labels, *, adjudication=None, model_label="awe", model_distribution=None):
    image = ImageFactory(dataset=dataset, width=W, height=H, audit_draw=audit_draw_for(dataset.images.count()))
    distribution = model_distribution or {e: (0.93 if e == model_label else 0.01) for e in EMOTIONS}
    make_annotation(image, kind=AnnotationKind.MODEL, author_name="gpt-4o", payload=payload(model_label, KEY),
                    raw_distribution=distribution)
    for user, label in zip(users, labels):
        make_annotation(image, kind=AnnotationKind.HUMAN, author_name=user.username, author_user=user,
                        payload=payload(label, KEY), decision=Decision.APPROVED)
    if adjudication:
        make_annotation(image, kind=AnnotationKind.ADJUDICATION, author_name="adj", payload=payload(adjudication, KEY),
                        decision=Decision.APPROVED)
    return image


@pytest.mark.django_db
def test_report_and_calibration_use_the_same_reference():
    dataset = DatasetFactory(slug="ref", reviews_per_item=3)
    users = [UserFactory(username=n) for n in ("r1", "r2", "r3")]
    majority = _three_reviews(dataset, users, ["fear", "fear", "awe"])  # awe is the newest review
    _three_reviews(dataset, users, ["fear", "awe", "sadness"])  # no majority: no reference yet
    _three_reviews(dataset, users, ["fear", "awe", "sadness"], adjudication="awe")
    report = agreement_report(dataset=dataset, options=ReportOptions(n_resamples=10, min_shared=2))
    assert report["counts"]["reference_labels"] == 2 and report["counts"]["no_reference_yet"] == 1
    gpt = next(m for m in report["models"] if m["model"] == "gpt-4o")
    assert gpt["n"] == 2  # the image without a reference is left out
    assert gpt["accuracy"] == pytest.approx(1 / 2)  # says awe: wrong on the fear majority, right on the adjudication
    matrix = np.array(gpt["confusion"]["matrix"])
    assert matrix[CODE["fear"], CODE["awe"]] == 1 and matrix[CODE["awe"], CODE["awe"]] == 1

    sample = calibration_samples(dataset=dataset)["gpt-4o"]
    assert sorted(sample.labels.tolist()) == sorted([CODE["fear"], CODE["awe"]])
    section = {m["model"]: m for m in report["calibration"]["models"]}
    assert section["gpt-4o"]["n"] == 2
    assert section["gpt-4o"]["ece_before"] == pytest.approx(abs(0.93 - 0.5))  # one bin: confidence .93, accuracy 1/2

    # A fourth review tips the first image's majority; without it the fit sees fear.
    assert calibration_samples(dataset=dataset)["gpt-4o"].labels.tolist().count(CODE["fear"]) == 1
    make_annotation(majority, kind=AnnotationKind.HUMAN, author_name="r4", author_user=UserFactory(username="r4"),
                    payload=payload("awe", KEY), decision=Decision.APPROVED)
    assert CODE["fear"] not in calibration_samples(dataset=dataset)["gpt-4o"].labels.tolist()  # 2 fear, 2 awe: none
    assert len(calibration_samples(dataset=dataset)["gpt-4o"].labels) == 1


@pytest.mark.django_db
def test_recalibration_fits_on_the_majority_not_the_newest_review():
    """20 images: on 10 the reviews say fear, fear, then (newest) the model's label; on 10 all say
    fear with the model. Against the reference the model is right half the time at confidence
    .93 (ECE .43); against the newest review it would always be right (ECE .07, T < 1)."""
    dataset = DatasetFactory(slug="refcal", reviews_per_item=3, audit_fraction=1.0)
    users = [UserFactory(username=n) for n in ("q1", "q2", "q3")]
    for i in range(20):
        said = [e for e in EMOTIONS if e != "fear"][i % 7] if i < 10 else "fear"
        _three_reviews(dataset, users, ["fear", "fear", said], model_label=said)
    sample = calibration_samples(dataset=dataset)["gpt-4o"]
    assert set(sample.labels.tolist()) == {CODE["fear"]}
    assert calibrate_model("gpt-4o", sample, current=None).ece_before == pytest.approx(0.93 - 0.5)
    version = recalibrate(dataset=dataset, min_samples=5).stored[0]
    assert version.temperature > 1.0  # over-confident against the reference
