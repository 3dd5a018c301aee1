"""The report's ratings and QA sections from the database: ICC against Shrout & Fleiss,
alpha, correlations, QA acceptance and accuracy, filters and the cache stamp."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from scipy import stats

from django.core.management import call_command

from agreement.csv_report import report_csv
from agreement.report import agreement_report
from agreement.results import ReportOptions
from agreement.selectors import ReportFilters, data_stamp, reviewer_names
from agreement.statistics import krippendorff_alpha
from annotations.models import Image, ImageSource
from qa.services import rating_create
from tests.agreement.qa_scenes import MODEL_SCORES, SHROUT_FLEISS, build_qa_scene
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
OPTIONS = ReportOptions(n_resamples=200)


def _scale(report, key="intensity"):
    [scale] = [s for s in report["ratings"]["scales"] if s["scale"] == key]
    return scale


def test_ratings_section_reproduces_shrout_fleiss_and_reports_alpha_and_correlations():
    scene = build_qa_scene()
    scale = _scale(agreement_report(dataset=scene.dataset, options=OPTIONS))
    assert scale["counts"]["raters"] == ["r1", "r2", "r3", "r4", "r5"] and scale["counts"]["models"] == ["gpt-4o"]
    assert scale["range"] == [0.0, 10.0] and scale["counts"]["human_ratings"] == 26

    icc = scale["icc"]  # r5 rated two images: the complete block is the other four raters on all six
    assert icc["raters"] == ["r1", "r2", "r3", "r4"] and icc["n"] == 6 and icc["images_left_out"] == 0
    forms = icc["forms"]
    assert round(forms["ICC2"]["value"], 3) == 0.290 and round(forms["ICC2k"]["value"], 3) == 0.620
    assert round(forms["ICC3"]["value"], 3) == 0.715 and round(forms["ICC3k"]["value"], 3) == 0.909
    assert (round(forms["ICC2"]["low"], 3), round(forms["ICC2"]["high"], 2)) == (0.019, 0.76)  # psych::ICC
    assert forms["ICC2"]["name"] == "ICC(A,1)" and forms["ICC2k"]["type"] == "absolute agreement"

    data = np.full((5, 6), np.nan)
    data[:4] = SHROUT_FLEISS.T
    data[4, :2] = (7, 3)
    for level in ("interval", "ordinal"):
        alpha = scale[f"krippendorff_alpha_{level}"]
        assert alpha["value"] == pytest.approx(krippendorff_alpha(data, level))
        assert alpha["low"] <= alpha["value"] <= alpha["high"] and alpha["n"] == 6

    rows = {r["rater"]: r for r in scale["rater_vs_mean"]}
    others = np.nanmean(data[1:], axis=0)
    assert rows["r1"]["pearson"]["value"] == pytest.approx(stats.pearsonr(data[0], others).statistic)
    assert rows["r1"]["n"] == 6 and rows["r1"]["pearson"]["low"] < rows["r1"]["pearson"]["high"]
    assert rows["r5"]["n"] == 2 and rows["r5"]["pearson"]["value"] is None
    assert "at least three pairs" in rows["r5"]["pearson"]["undefined"]

    [model] = scale["model_vs_human"]
    human_mean = np.nanmean(data, axis=0)
    assert model["model"] == "gpt-4o" and model["pearson"]["n"] == 6
    assert model["pearson"]["value"] == pytest.approx(stats.pearsonr(MODEL_SCORES, human_mean).statistic)
    assert model["spearman"]["value"] == pytest.approx(stats.spearmanr(MODEL_SCORES, human_mean).statistic)


def test_scales_without_ratings_are_left_out_and_thin_data_says_why():
    scene = build_qa_scene(ratings=False, pairs=False)
    assert agreement_report(dataset=scene.dataset, options=OPTIONS)["ratings"] == {"scales": []}
    user = UserFactory(username="solo", roles=["rater"])
    rating_create(image=scene.images[0], scale=scene.scale, value=4, user=user)
    scale = _scale(agreement_report(dataset=scene.dataset, options=OPTIONS))
    assert scale["icc"]["value"] is None and "no two images" in scale["icc"]["undefined"]
    assert scale["krippendorff_alpha_interval"]["value"] is None
    assert scale["rater_vs_mean"][0]["spearman"]["value"] is None and scale["model_vs_human"] == []


def test_qa_section_acceptance_and_answer_accuracy_per_category_and_dimension():
    scene = build_qa_scene(ratings=False)
    qa = agreement_report(dataset=scene.dataset, options=OPTIONS)["qa"]
    assert qa["counts"] == {
        "pairs": 7,
        "by_status": {"accepted": 1, "edited": 3, "pending": 1, "rejected": 2},
        "reviewed": 6,
    }
    overall = qa["overall"]
    assert (overall["accepted"], overall["edited"], overall["rejected"]) == (1, 3, 2)
    assert overall["reasons"] == {"ambiguous": 1, "wrong_answer": 1}
    assert overall["acceptance"]["value"] == pytest.approx(4 / 6) and overall["acceptance"]["n"] == 6
    acc = overall["acceptance"]
    wilson = stats.binomtest(4, 6).proportion_ci(method="wilson")
    assert (acc["low"], acc["high"]) == (pytest.approx(wilson.low), pytest.approx(wilson.high))
    # model: right on the accepted and the reordered pair; wrong on the flipped, the rejected
    # for a wrong answer and the reworded open answer; the ambiguous rejection is not scored
    assert (overall["model_accuracy"]["successes"], overall["model_accuracy"]["n"]) == (2, 5)
    # critic: right (storm), wrong (cliff: said awe, the answer is fear), right (dog: "no")
    assert (overall["critic_accuracy"]["successes"], overall["critic_accuracy"]["n"]) == (2, 3)

    cats = {r["category"]: r for r in qa["by_category"]}
    assert set(cats) == {"attribution", "perception", "reasoning"}
    assert cats["perception"]["acceptance"]["value"] == 1.0
    assert (cats["perception"]["model_accuracy"]["successes"], cats["perception"]["model_accuracy"]["n"]) == (2, 3)
    assert cats["attribution"]["acceptance"]["value"] == 0.0 and cats["attribution"]["model_accuracy"]["n"] == 1
    assert cats["reasoning"]["critic_accuracy"]["value"] is None
    dims = {r["dimension"]: r for r in qa["by_dimension"]}
    assert dims["scene"]["reviewed"] == 3 and dims["scene"]["model_accuracy"]["value"] == pytest.approx(2 / 3)
    cells = {(r["category"], r["dimension"]): r["reviewed"] for r in qa["by_cell"]}
    assert cells == {
        ("attribution", "scene"): 1,
        ("attribution", "subject"): 1,
        ("perception", "scene"): 2,
        ("perception", "subject"): 1,
        ("reasoning", "holistic"): 1,
    }
    assert [r["model"] for r in qa["by_model"]] == ["gpt-4o"]
    assert qa["categories"]["perception"] == "Emotion perception" and "holistic" in qa["dimensions"]


def test_filters_apply_to_raters_and_qa_reviewers():
    scene = build_qa_scene()
    assert {"alice", "r1", "r5"} <= set(reviewer_names(dataset=scene.dataset))
    report = agreement_report(dataset=scene.dataset, filters=ReportFilters(reviewers=("r1", "r2")), options=OPTIONS)
    scale = _scale(report)
    assert scale["counts"]["raters"] == ["r1", "r2"] and scale["counts"]["models"] == ["gpt-4o"]
    assert scale["icc"]["raters"] == ["r1", "r2"]
    assert report["qa"]["counts"]["reviewed"] == 0 and report["qa"]["overall"]["acceptance"]["value"] is None
    alice = agreement_report(dataset=scene.dataset, filters=ReportFilters(reviewers=("alice",)), options=OPTIONS)
    assert alice["qa"]["counts"]["reviewed"] == 6 and alice["ratings"]["scales"][0]["counts"]["raters"] == []


def test_new_ratings_and_reviews_change_the_data_stamp():
    scene = build_qa_scene(pairs=False)
    before = data_stamp(dataset=scene.dataset)
    rating_create(image=scene.images[2], scale=scene.scale, value=5, user=UserFactory(username="r9"))
    after_rating = data_stamp(dataset=scene.dataset)
    assert after_rating != before
    scene.scale.name = "Strength"
    scene.scale.save()
    assert data_stamp(dataset=scene.dataset) != after_rating


def test_image_filters_apply_to_ratings_and_qa_pairs():
    scene = build_qa_scene()
    Image.objects.filter(pk__in=[i.pk for i in scene.images[:3]]).update(source=ImageSource.WEB)
    report = agreement_report(dataset=scene.dataset, filters=ReportFilters(source=ImageSource.WEB), options=OPTIONS)
    scale = _scale(report)
    assert scale["counts"]["images"] == 3 and scale["icc"]["n"] == 3
    assert report["qa"]["counts"]["reviewed"] == 3 and report["qa"]["counts"]["pairs"] == 4  # + the pending one


def test_a_correlation_without_an_interval_prints_in_the_command_and_csv():
    """Three shared images give r but no Fisher-z interval: the CSV leaves low/high empty and
    ``manage.py agreement`` prints the value alone (it crashed formatting None)."""
    scene = build_qa_scene(ratings=False, pairs=False)
    people = [UserFactory(username=f"p{i}", roles=["rater"]) for i in range(2)]
    for image, values in zip(scene.images[:3], ((1, 2), (4, 3), (6, 7))):
        for user, value in zip(people, values):
            rating_create(image=image, scale=scene.scale, value=value, user=user)
    out = io.StringIO()
    call_command("agreement", "--dataset", scene.dataset.slug, "--resamples", "20", stdout=out)
    assert "rater_vs_mean_pearson intensity vs p0: 0.9" in out.getvalue()
    rows = list(csv.reader(io.StringIO(report_csv(agreement_report(dataset=scene.dataset, options=OPTIONS)))))
    [row] = [r for r in rows if r[1] == "rater_vs_mean_pearson" and r[3] == "p0"]
    assert row[5:8] == ["", "", "3"]
