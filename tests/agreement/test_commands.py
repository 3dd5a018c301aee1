"""`manage.py agreement`."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from agreement.report import agreement_report
from agreement.results import ReportOptions
from agreement.selectors import ReportFilters
from annotations.models import PhraseEmbedding
from ml.config import reset_registry
from tests.agreement.scenes import build_scene

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command("agreement", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_json_is_the_same_report_as_the_pages():
    scene = build_scene()
    printed = json.loads(_run("--dataset", "study", "--json", "--resamples", "60", "--seed", "3", "--reviewer", "alice",
                              "--reviewer", "bob"))
    assert printed["options"]["n_resamples"] == 60 and printed["options"]["seed"] == 3
    assert printed["filters"]["reviewers"] == ["alice", "bob"]
    direct = agreement_report(dataset=scene.dataset, filters=ReportFilters(reviewers=("alice", "bob")),
                              options=ReportOptions.from_settings(n_resamples=60, seed=3))
    printed.pop("generated_at"), direct.pop("generated_at")
    assert printed == json.loads(json.dumps(direct))


def test_summary_and_csv_and_errors():
    build_scene()
    summary = _run("--dataset", "study", "--resamples", "30")
    assert "krippendorff_alpha_nominal:" in summary and "cohen_kappa alice vs bob:" in summary
    assert "phrase_semantic_similarity: undefined (no phrase embeddings" in summary
    csv_text = _run("--dataset", "study", "--csv", "--resamples", "30")
    assert csv_text.splitlines()[0] == "section,statistic,a,b,value,low,high,n,note"
    with pytest.raises(CommandError, match="no dataset with slug 'nope'"):
        _run("--dataset", "nope")
    with pytest.raises(CommandError, match="date_from"):
        _run("--dataset", "study", "--from", "last week")
    with pytest.raises(CommandError, match="at least 1"):
        _run("--dataset", "study", "--resamples", "0")


@pytest.mark.ml
def test_semantic_phrase_agreement_with_the_bundled_model(settings):
    """``manage.py embed_phrases`` (worker side) embeds the dataset's phrases with the bundled
    MiniLM; the report then reads them."""
    settings.EMOVERSE_ML = {k: v for k, v in settings.EMOVERSE_ML.items() if k != "embedder"}  # the default embedder
    reset_registry()
    build_scene()
    out = io.StringIO()
    call_command("embed_phrases", "--dataset", "study", stdout=out)
    assert "newly embedded" in out.getvalue()
    summary = _run("--dataset", "study", "--json", "--resamples", "20")
    for model in json.loads(summary)["models"]:  # 86 kept pairs per model, every phrase embedded
        assert model["elements"]["phrase_semantic"]["n"] == 86 and model["elements"]["phrase_semantic"]["missing_pairs"] == 0
    semantic = json.loads(summary)["elements"]["phrase_semantic"]
    # 82 pairs of kept phrases: all identical except "tiny vessel" against "small boat" (twice),
    # which mean the same to MiniLM (cosine above SAME_MEANING_COSINE).
    assert semantic["n"] == 82 and semantic["missing_pairs"] == 0
    assert 0.9 < semantic["value"] < 1.0 and semantic["share_similar"] == 1.0
    assert PhraseEmbedding.objects.filter(text="tiny vessel", dim=384).exists()
    before = PhraseEmbedding.objects.count()
    call_command("embed_phrases", "--dataset", "study", stdout=out)
    assert PhraseEmbedding.objects.count() == before  # nothing embedded twice
    reset_registry()
