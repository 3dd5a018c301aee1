"""The pipeline follows the dataset's taxonomy: prompts list its labels, answers are parsed
and calibrated over them, a classifier of another taxonomy is left out (docs/taxonomies.md)."""

from __future__ import annotations

import json

import pytest

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import AnnotationKind, Decision, ImageStatus
from core.vocabulary import EKMAN, EMOTIONS, MIKELS, taxonomy_from_spec
from ml import services
from ml.models import PipelineRun, RunStatus
from ml.calibration_fits import calibration_samples
from ml.stages import pipeline
from ml.stages.backends.openai_vlm import OpenAIAnnotator
from ml.stages.backends.temperature_calibrator import TemperatureCalibrator
from ml.stages.calibration import calibrate_and_merge
from ml.stages.parsing import parse_annotation, parse_critic
from ml.stages.prompts import load_prompt, render_annotate
from ml.stages.types import AnnotatorResult, ImageInput, StageError
from tests.factories import DatasetFactory, ImageFactory, annotation_payload, make_annotation
from demo.chat_server import GOOD_TRIPLETS, Reply, critic_json, prompt_text, schema_name

EKMAN_WORDS = "anger, disgust, fear, happiness, sadness, surprise"


def answer_over_requested_labels(body: dict) -> Reply:
    """A good model that answers over the labels the request's JSON schema asks for, peaked on happiness."""
    if schema_name(body) == "emoverse_critic":
        return Reply(critic_json(prompt_text(body)))
    labels = body["response_format"]["json_schema"]["schema"]["properties"]["distribution"]["required"]
    peak = "happiness" if "happiness" in labels else labels[0]
    p = 0.7 if body.get("model") == "fake-a" else 0.5
    rest = (1 - p) / (len(labels) - 1)
    distribution = {e: (p if e == peak else rest) for e in labels}
    return Reply(json.dumps({"triplets": GOOD_TRIPLETS, "distribution": distribution, "rationale": "A smiling crowd."}))


def six_way(peak: str, p: float) -> dict[str, float]:
    rest = (1 - p) / 5
    return {e: (p if e == peak else rest) for e in EKMAN.labels}


def ekman_image(ml_image: ImageInput) -> ImageInput:
    return ImageInput(key=ml_image.key, data=ml_image.data, width=ml_image.width, height=ml_image.height,
                      mime_type=ml_image.mime_type, taxonomy=EKMAN)


@pytest.mark.django_db
def test_an_ekman_dataset_runs_the_whole_pipeline_over_six_labels(ml_config, fake_openai, django_capture_on_commit_callbacks):
    fake_openai.responder = answer_over_requested_labels
    dataset = DatasetFactory(slug="eemo", taxonomy=EKMAN.to_spec())
    image = ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=7)
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset)

    run = PipelineRun.objects.get(image=image)
    assert run.status == RunStatus.DONE, run.error
    annotate = [b for b in fake_openai.requests if schema_name(b) == "emoverse_annotation"]
    critic = [b for b in fake_openai.requests if schema_name(b) == "emoverse_critic"]
    assert len(annotate) == 2 and len(critic) == 1
    for body in annotate:
        text = prompt_text(body)
        assert f"exactly these six emotions (Ekman):\n   {EKMAN_WORDS}." in text and "amusement" not in text
        schema = body["response_format"]["json_schema"]["schema"]["properties"]["distribution"]
        assert schema["required"] == list(EKMAN.labels) and set(schema["properties"]) == set(EKMAN.labels)
    critic_text = prompt_text(critic[0])
    assert f"suggest the right one of: {EKMAN_WORDS};" in critic_text and "amusement" not in critic_text
    suggested = critic[0]["response_format"]["json_schema"]["schema"]["properties"]["suggested_label"]
    assert suggested["enum"] == [*EKMAN.labels, None]

    image.refresh_from_db()
    assert image.status == ImageStatus.IN_REVIEW and image.label == "happiness"
    merged = image.annotations.get(author_name=PIPELINE_AUTHOR, is_current=True)
    assert list(merged.ces_distribution) and set(merged.ces_distribution) == set(EKMAN.labels)
    assert merged.ces_label == "happiness" and merged.ces_confidence == pytest.approx(0.6, abs=0.05)
    model_a = image.annotations.get(author_name="model-a")
    assert model_a.prompt_version == "annotate_v2" and set(model_a.ces_raw_distribution) == set(EKMAN.labels)
    assert run.stages.get(stage="critic").output["prompt_version"] == "critic_v2"


@pytest.mark.django_db
def test_a_mikels_answer_for_an_ekman_image_fails_its_stage_and_is_never_guessed(ml_config, fake_openai,
                                                                                 django_capture_on_commit_callbacks):
    fake_openai.responder = lambda body: Reply(json.dumps({
        "triplets": GOOD_TRIPLETS, "rationale": "x",
        "distribution": {e: (0.72 if e == "awe" else 0.04) for e in EMOTIONS}}))
    dataset = DatasetFactory(slug="eemo", taxonomy=EKMAN.to_spec())
    image = ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=8)
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset)
    run = PipelineRun.objects.get(image=image)
    assert run.status == RunStatus.FAILED
    assert "unknown emotion(s) 'amusement', 'awe', 'contentment', 'excitement'" in run.error
    assert image.annotations.count() == 0


def test_the_v2_prompt_lists_the_taxonomy_and_v1_is_refused_for_another_one(fake_openai, openai_key, ml_image):
    v2 = load_prompt("annotate_v2")
    text = render_annotate(v2, EKMAN)
    assert f"exactly these six emotions (Ekman):\n   {EKMAN_WORDS}." in text
    assert json.dumps({e: 0.0 for e in EKMAN.labels}) in text
    assert render_annotate(load_prompt("annotate_v1"), MIKELS) == load_prompt("annotate_v1").text  # Mikels: unchanged
    with pytest.raises(StageError, match="prompt annotate_v1 names Mikels' eight emotions"):
        render_annotate(load_prompt("annotate_v1"), EKMAN)
    pinned = OpenAIAnnotator(name="pinned", prompt="annotate_v1", model="m", base_url=fake_openai.base_url,
                             api_key_env=openai_key, max_retries=0)
    with pytest.raises(StageError, match="pinned: prompt annotate_v1 names Mikels"):
        pinned.annotate(ekman_image(ml_image))
    assert fake_openai.requests == []  # refused before anything was sent
    default = OpenAIAnnotator(name="d", model="m", base_url=fake_openai.base_url, api_key_env=openai_key, max_retries=0)
    assert default.annotate(ml_image).prompt_version == "annotate_v1"  # a Mikels image keeps the v1 prompt


def test_parsing_takes_exactly_the_taxonomys_labels():
    raw = json.dumps({"triplets": GOOD_TRIPLETS, "distribution": six_way("surprise", 0.55), "rationale": "Confetti."})
    result = parse_annotation(raw, model="m", prompt_version="annotate_v2", labels=EKMAN.labels)
    assert result.label == "surprise" and list(result.distribution) == list(EKMAN.labels)
    with pytest.raises(StageError, match="unknown emotion\\(s\\) 'happiness', 'surprise'"):
        parse_annotation(raw, model="m", prompt_version="annotate_v1")  # read as Mikels'
    custom = taxonomy_from_spec({"name": "valence3", "labels": ["negative", "neutral", "positive"]})
    three = json.dumps({"triplets": GOOD_TRIPLETS, "distribution": {"negative": 0.2, "neutral": 0.3, "positive": 0.5},
                        "rationale": "Sun."})
    assert parse_annotation(three, model="m", prompt_version="annotate_v2", labels=custom.labels).label == "positive"
    critic = json.loads(critic_json("0. background: x"))
    critic["suggested_label"] = "happiness"
    triplets = parse_annotation(raw, model="m", prompt_version="v", labels=EKMAN.labels).triplets[:1]
    assert parse_critic(json.dumps(critic), model="c", prompt_version="critic_v2", triplets=triplets,
                        labels=EKMAN.labels).suggested_label == "happiness"
    with pytest.raises(StageError, match="suggested_label: unknown emotion 'happiness'"):
        parse_critic(json.dumps(critic), model="c", prompt_version="critic_v1", triplets=triplets)


class MikelsClassifier:
    name = "emovit"
    labels = EMOTIONS

    def predict(self, images):
        return [{e: 1 / 8 for e in EMOTIONS} for _ in images]


def test_calibration_merges_six_way_and_leaves_out_a_classifier_of_another_taxonomy(ml_image):
    image = ekman_image(ml_image)
    results = [
        AnnotatorResult("a", "annotate_v2", (), six_way("fear", 0.6), "", ""),
        AnnotatorResult("b", "annotate_v2", (), six_way("sadness", 0.5), "", ""),
    ]
    calibration = pipeline.calibrate(TemperatureCalibrator(), image, results, {"a": 2.0}, MikelsClassifier())
    assert list(calibration.merged) == list(EKMAN.labels) and calibration.classifier is None
    assert sum(calibration.merged.values()) == pytest.approx(1.0)
    direct = calibrate_and_merge(results, {"a": 2.0}, labels=EKMAN.labels)
    assert calibration.merged == pytest.approx(direct.merged) and calibration.label == direct.label
    assert calibration.agreement is not None and calibration.agreement.label_match is False
    mikels = pipeline.calibrate(TemperatureCalibrator(), ml_image, [
        AnnotatorResult("a", "annotate_v1", (), {e: (0.65 if e == "awe" else 0.05) for e in EMOTIONS}, "", "")],
        {}, MikelsClassifier())
    assert mikels.classifier is not None  # the classifier's own taxonomy: blended in
    with pytest.raises(ValueError, match="not over the labels"):
        calibrate_and_merge(results, {})  # six-way answers read as Mikels'


@pytest.mark.django_db
def test_calibration_samples_read_each_dataset_in_its_own_labels_and_pool_them_padded():
    mikels = DatasetFactory(slug="plain")
    ekman = DatasetFactory(slug="eemo", taxonomy=EKMAN.to_spec())
    for dataset, label, distribution in (
        (mikels, "awe", {e: (0.65 if e == "awe" else 0.05) for e in EMOTIONS}),
        (ekman, "happiness", six_way("happiness", 0.5)),
    ):
        image = ImageFactory(dataset=dataset)
        data = annotation_payload(image.width, image.height)
        data["ces"] = {"label": label, "distribution": distribution}
        make_annotation(image, author_name="gpt-4o", payload=data, raw_distribution=distribution)
        make_annotation(image, kind=AnnotationKind.IMPORT, author_name="import", payload=data, decision=Decision.APPROVED)
    alone = calibration_samples(dataset=ekman)["gpt-4o"]
    assert alone.probs.shape == (1, 6) and alone.labels.tolist() == [EKMAN.labels.index("happiness")]
    assert alone.probs[0].tolist() == pytest.approx(list(six_way("happiness", 0.5).values()))
    pooled = calibration_samples()["gpt-4o"]
    assert pooled.probs.shape == (2, 8) and pooled.n_raw == 2
    rows = dict(zip(pooled.image_ids.tolist(), zip(pooled.probs.tolist(), pooled.labels.tolist(), strict=True), strict=True))
    ekman_row, ekman_code = rows[ekman.images.get().pk]
    assert ekman_row[6:] == [0.0, 0.0] and ekman_row.index(max(ekman_row)) == ekman_code == 3
    mikels_row, mikels_code = rows[mikels.images.get().pk]
    assert mikels_row.index(max(mikels_row)) == mikels_code == 1
