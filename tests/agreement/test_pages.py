"""Agreement and calibration pages: roles, filters, plots, downloads, undefined values, escaping."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client

from annotations.models import AnnotationKind, Decision
from ml.models import CalibrationVersion
from tests.agreement.scenes import H, W, build_scene, payload
from tests.factories import DatasetFactory, ImageFactory, UserFactory, make_annotation

pytestmark = pytest.mark.django_db
KEY = "00000000-0000-0000-0000-000000000001"


@pytest.fixture(autouse=True)
def _few_resamples(settings):
    settings.EMOVERSE_AGREEMENT_RESAMPLES = 100


@pytest.fixture
def scene():
    return build_scene()


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_researcher_gets_the_report_with_intervals_and_plots(scene, researcher):
    client = _client(researcher)
    index = client.get("/agreement/")
    assert index.status_code == 200 and "/agreement/study/" in index.content.decode()
    page = client.get("/agreement/study/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Krippendorff" in html and "Fleiss" in html and "alice · bob" in html
    assert html.count('class="ci"') >= 5  # intervals next to alpha, Fleiss, the pairs, the models
    assert html.count("<svg") >= 5  # confusion matrix, 2 IoU histograms, 2 model heatmaps
    assert "Confusion matrix: alice (rows) vs bob (columns), 10 items" in html
    assert "Box IoU between reviewers" in html and "gpt-4o" in html
    assert "Undefined for every class" not in html and "Specific agreement" in html


def test_pick_any_two_annotators_for_the_confusion_matrix(scene, researcher):
    html = _client(researcher).get("/agreement/study/", {"a": "model:qwen", "b": "reviewer:carol"}).content.decode()
    assert "Confusion matrix: qwen (model) (rows) vs carol (columns), 9 items" in html


def test_filters_from_the_query_string(scene, researcher):
    html = _client(researcher).get("/agreement/study/?reviewer=alice&reviewer=bob").content.decode()
    assert "alice · bob" in html and "alice · carol" not in html
    bad = _client(researcher).get("/agreement/study/", {"date_from": "2025-02-01", "date_to": "2025-01-01"})
    assert bad.status_code == 400 and "The start date is after the end date." in bad.content.decode()
    assert _client(researcher).get("/agreement/study/", {"source": "nowhere"}).status_code == 400
    assert _client(researcher).get("/agreement/study/", {"reviewer": "mallory"}).status_code == 400


def test_csv_and_json_downloads_parse_and_match(scene, researcher):
    client = _client(researcher)
    data = client.get("/agreement/study/report.json?reviewer=alice&reviewer=bob")
    assert data["Content-Disposition"] == 'attachment; filename="agreement-study.json"'
    report = json.loads(data.content)
    assert report["filters"]["reviewers"] == ["alice", "bob"]
    alpha = report["labels"]["krippendorff_alpha"]
    rows = list(csv.DictReader(io.StringIO(client.get("/agreement/study/report.csv?reviewer=alice&reviewer=bob").content.decode())))
    by_stat = {(r["section"], r["statistic"], r["a"], r["b"]): r for r in rows}
    row = by_stat[("labels", "krippendorff_alpha_nominal", "", "")]
    assert float(row["value"]) == pytest.approx(alpha["value"])
    assert float(row["low"]) == pytest.approx(alpha["low"]) and int(row["n"]) == alpha["n"]
    assert ("labels", "cohen_kappa", "alice", "bob") in by_stat
    assert ("models", "cohen_kappa_vs_reference", "gpt-4o", "reference") in by_stat
    confusion = [r for r in rows if r["section"] == "confusion" and r["a"] == "reviewer:alice" and r["b"] == "reviewer:bob"]
    assert sum(int(r["value"]) for r in confusion) == 10
    assert client.get("/agreement/study/report.csv?date_from=yesterday").status_code == 400


def test_undefined_statistics_are_shown_with_their_reason(researcher):
    dataset = DatasetFactory(slug="lonely")
    user = UserFactory(username="solo")
    image = ImageFactory(dataset=dataset, width=W, height=H)
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name="solo", author_user=user, payload=payload("awe", KEY),
                    decision=Decision.APPROVED)
    html = _client(researcher).get("/agreement/lonely/").content.decode()
    assert "undefined (no item has two or more values)" in html
    assert "undefined (no two reviewers share an item)" in html
    assert "undefined (no element has a box from two reviewers who both kept it)" in html
    assert "Undefined for every class: no reviewer used any label on an item reviewed twice or more." in html
    report = json.loads(_client(researcher).get("/agreement/lonely/report.json").content)
    assert report["labels"]["krippendorff_alpha"]["value"] is None


def test_a_model_name_that_looks_like_a_formula_is_inert_in_the_csv(researcher):
    """CSV injection: a model name from an import, opened in a spreadsheet, must not run."""
    dataset = DatasetFactory(slug="formula")
    evil = '=HYPERLINK("http://evil.example","x")'
    users = [UserFactory(username=f"f{i}") for i in range(2)]
    for label in ["awe", "fear"]:
        image = ImageFactory(dataset=dataset, width=W, height=H)
        make_annotation(image, kind=AnnotationKind.MODEL, author_name=evil, payload=payload(label, KEY))
        for user in users:
            make_annotation(image, kind=AnnotationKind.HUMAN, author_name=user.username, author_user=user,
                            payload=payload(label, KEY), decision=Decision.APPROVED)
    text = _client(researcher).get("/agreement/formula/report.csv").content.decode()
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert "'" + evil in cells
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)
    assert any(cell.startswith("-0.") or cell.startswith("0.") or cell == "1.0" for cell in cells)  # numbers untouched


def test_names_from_the_database_are_escaped_in_tables_and_svg(researcher):
    dataset = DatasetFactory(slug="escape")
    users = [UserFactory(username=f"u{i}") for i in range(2)]
    for label in ["awe", "fear"]:
        image = ImageFactory(dataset=dataset, width=W, height=H)
        make_annotation(image, kind=AnnotationKind.MODEL, author_name="<b>evil</b>", payload=payload(label, KEY))
        for user in users:
            make_annotation(image, kind=AnnotationKind.HUMAN, author_name=user.username, author_user=user,
                            payload=payload(label, KEY), decision=Decision.APPROVED)
    html = _client(researcher).get("/agreement/escape/").content.decode()
    assert "<b>evil</b>" not in html
    assert "&lt;b&gt;evil&lt;/b&gt;" in html


@pytest.mark.parametrize("url", ["/agreement/", "/agreement/study/", "/agreement/study/report.csv",
                                 "/agreement/study/report.json", "/agreement/calibration/"])
def test_reviewers_and_adjudicators_get_403(reviewer, adjudicator, url):
    DatasetFactory(slug="study")
    assert _client(reviewer).get(url).status_code == 403
    assert _client(adjudicator).get(url).status_code == 403
    assert Client().get(url).status_code == 302  # to the login page


def test_calibration_page_and_admin_only_recalibrate_button(scene, researcher, admin_user):
    page = _client(researcher).get("/agreement/calibration/")
    html = page.content.decode()
    assert page.status_code == 200 and "gpt-4o" in html and "Reliability of gpt-4o" in html
    assert "Recalibrate" not in html
    assert _client(researcher).post("/agreement/calibration/recalibrate/", {"min_samples": 5}).status_code == 403
    assert "Recalibrate from all datasets" in _client(admin_user).get("/agreement/calibration/").content.decode()

    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(admin_user)
    assert csrf.post("/agreement/calibration/recalibrate/", {"min_samples": 5}).status_code == 403  # no token
    assert not CalibrationVersion.objects.exists()

    admin = _client(admin_user)
    assert admin.get("/agreement/calibration/recalibrate/").status_code == 405
    response = admin.post("/agreement/calibration/recalibrate/", {"dataset": "study", "min_samples": 5}, follow=True)
    assert response.status_code == 200
    versions = {v.model_name: v for v in CalibrationVersion.objects.all()}
    assert set(versions) <= {"gpt-4o", "qwen"} and versions
    html = response.content.decode()
    for v in versions.values():
        assert f"{v.model_name}: version 1" in html
    assert "History" in html and "study" in html


def test_report_shows_reliability_diagrams_and_downloads_the_calibration(scene, researcher):
    from ml.services import calibration_version_create

    calibration_version_create(model_name="qwen", temperature=1.5, n_samples=10, ece_before=None, ece_after=None,
                               reliability={}, created_by=None)
    client = _client(researcher)
    html = client.get("/agreement/study/").content.decode()
    assert "<h2>Calibration</h2>" in html and "Phrase semantic" in html
    assert "Reliability of gpt-4o (10 answers)" in html and "Reliability of qwen (10 answers)" in html
    assert "dots: after temperature" in html  # qwen has a stored temperature
    report = json.loads(client.get("/agreement/study/report.json").content)
    qwen = next(m for m in report["calibration"]["models"] if m["model"] == "qwen")
    assert qwen["temperature"] == 1.5 and qwen["ece_after"] is not None and report["calibration"]["n_bins"] == 15
    rows = list(csv.DictReader(io.StringIO(client.get("/agreement/study/report.csv").content.decode())))
    by_stat = {(r["section"], r["statistic"], r["a"]): r for r in rows}
    assert float(by_stat[("calibration", "ece_before", "qwen")]["value"]) == pytest.approx(qwen["ece_before"])
    assert float(by_stat[("calibration", "ece_after", "qwen")]["value"]) == pytest.approx(qwen["ece_after"])
    assert float(by_stat[("calibration", "temperature", "qwen")]["value"]) == 1.5
    assert by_stat[("calibration", "ece_after", "gpt-4o")]["value"] == ""  # no temperature stored: says why
    assert "no calibration version" in by_stat[("calibration", "ece_after", "gpt-4o")]["note"]
    bins = [r for r in rows if r["section"] == "calibration" and r["statistic"] == "reliability_before" and r["a"] == "qwen"]
    assert sum(int(r["n"]) for r in bins) == 10
    assert ("models", "phrase_semantic_vs_reviewers", "gpt-4o") in by_stat


def test_calibration_page_with_only_imported_model_answers(researcher):
    """Model answers without a raw distribution (imported ones, as in the demo) on a reviewed
    image: the page says why nothing is measured instead of failing."""
    dataset = DatasetFactory(slug="imported", audit_fraction=1.0)
    image = ImageFactory(dataset=dataset, width=W, height=H)
    make_annotation(image, kind=AnnotationKind.MODEL, author_name="gpt-4o", payload_kwargs={"label": "fear"})
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name="alice", payload_kwargs={"label": "fear"},
                    decision=Decision.APPROVED)

    for url in ("/agreement/calibration/", "/agreement/calibration/?dataset=imported"):
        page = _client(researcher).get(url)
        html = page.content.decode()
        assert page.status_code == 200
        assert "gpt-4o" in html and "have no raw (pre-temperature) distribution and are left out" in html
        assert "Reliability of gpt-4o" not in html
