"""The pure orchestration in ml/stages/pipeline.py, end to end with the fake OpenAI server."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from core.triplets import PhraseTriplet
from core.vocabulary import DES_DIM, ROLES
from ml.stages import pipeline
from ml.stages.backends.openai_critic import OpenAICritic
from ml.stages.backends.openai_vlm import OpenAIAnnotator
from ml.stages.backends.temperature_calibrator import TemperatureCalibrator
from ml.stages.calibration import calibrate_and_merge
from ml.stages.registry import Registry
from ml.stages.types import (
    Box,
    CriticResult,
    Detection,
    ElementVerdict,
    StageError,
)
from tests.ml.core_fixtures import png_image
from tests.ml.stage_fakes import (
    FakeAnnotator,
    FakeClassifier,
    FakeDes,
    FakeGrounder,
    FakeSegmenter,
)


def test_run_pipeline_with_openai_backends_grounds_and_segments(fake_openai, openai_key):
    endpoint = {"base_url": fake_openai.base_url, "api_key_env": openai_key, "max_retries": 0}
    images = [png_image(64, 48, seed=1, key="1"), png_image(40, 30, seed=2, key="2")]
    grounder, segmenter = FakeGrounder(), FakeSegmenter()

    out = pipeline.run_pipeline(
        images,
        annotators=[OpenAIAnnotator(name="a", model="fake-a", **endpoint), OpenAIAnnotator(name="b", model="fake-b", **endpoint)],
        calibrator=TemperatureCalibrator(),
        critic=OpenAICritic(model="critic", **endpoint),
        grounder=grounder,
        segmenter=segmenter,
        des=FakeDes(),
        temperatures={"a": 1.5},
    )

    assert grounder.batches == [2]  # one batched call for both images
    assert len(segmenter.batches) == 1
    assert len(fake_openai.requests) == 6  # 2 annotators + 1 critic per image
    first = out[0]
    assert [r.model for r in first.results] == ["a", "b"]
    assert first.calibration.label == "fear"  # a: fear 0.7 (flattened by T=1.5), b: sadness 0.45
    assert first.calibration.agreement.label_match is False
    assert first.routing.priority == pytest.approx((first.calibration.agreement.score + first.calibration.confidence) / 2)
    assert first.routing.auto_accept is False
    assert len(first.triplets) == 2
    assert len(first.critic.elements) == 6
    for image, result in zip(images, out):
        for triplet in result.triplets:
            assert [e.role for e in triplet.elements] == list(ROLES)
            for element in triplet.elements:
                assert element.box is not None and 0 <= element.box.x0 < element.box.x1 <= image.width
                decoded = mask_utils.decode({"size": element.mask.rle["size"], "counts": element.mask.rle["counts"].encode()})
                assert decoded.shape == (image.height, image.width)
                assert decoded[:, int(element.box.x0) + 1].all()  # the mask is the box's mask
    assert out[1].des.shape == (DES_DIM,) and out[1].des.dtype == np.float32


def test_unfound_phrases_keep_no_box_and_no_mask():
    image = png_image()
    triplets = [[PhraseTriplet("invisible fog", "dark clouds", "lone fisherman")]]
    grounder, segmenter = FakeGrounder(), FakeSegmenter()

    (grounded,) = pipeline.ground_and_segment(grounder, segmenter, [image], triplets)

    background = grounded[0].elements[0]
    assert background.phrase == "invisible fog" and background.box is None and background.mask is None
    assert segmenter.batches == [[2]]


def test_images_without_any_box_are_not_sent_to_the_segmenter():
    images = [png_image(key="1"), png_image(seed=3, key="2")]
    triplets = [[PhraseTriplet("invisible a", "invisible b", "invisible c")], [PhraseTriplet("sea", "waves", "boat")]]
    segmenter = FakeSegmenter()
    pipeline.ground_and_segment(FakeGrounder(), segmenter, images, triplets)
    assert segmenter.batches == [[3]]


def test_shared_phrases_are_grounded_once():
    grounder = FakeGrounder()
    calls = []
    original = grounder.ground
    grounder.ground = lambda images, phrases: calls.append(phrases) or original(images, phrases)
    triplets = [[PhraseTriplet("sea", "waves", "boat"), PhraseTriplet("sea", "storm", "boat")]]
    pipeline.ground_and_segment(grounder, FakeSegmenter(), [png_image()], triplets)
    assert calls == [[["sea", "waves", "boat", "storm"]]]


class OutsideGrounder:
    def ground(self, images, phrases):
        return [[Detection(p, Box(0, 0, img.width + 20, 10, 0.9)) for p in ps] for img, ps in zip(images, phrases)]


def test_a_box_outside_the_image_is_a_stage_error():
    with pytest.raises(StageError, match="invalid box"):
        pipeline.ground_and_segment(OutsideGrounder(), FakeSegmenter(), [png_image()], [[PhraseTriplet("a", "b", "c")]])


def test_bad_des_shape_is_a_stage_error():
    class Short:
        def encode(self, images):
            return np.zeros((len(images), 10), dtype=np.float32)

    with pytest.raises(StageError, match="expected float32"):
        pipeline.encode_des(Short(), [png_image()])


def test_classifier_distribution_goes_into_the_calibration():
    results = pipeline.annotate_all([FakeAnnotator("a"), FakeAnnotator("b")], png_image())
    calibration = pipeline.calibrate(
        TemperatureCalibrator(classifier_weight=0.9), png_image(), results, {}, FakeClassifier("awe")
    )
    assert calibration.classifier["awe"] == 1.0
    assert calibration.label == "awe"


def test_a_classifier_with_a_broken_distribution_is_refused():
    class Broken:
        name = "broken"

        def predict(self, images):
            return [{"fear": 0.5}]

    results = pipeline.annotate_all([FakeAnnotator("a")], png_image())
    with pytest.raises(StageError, match="classifier broken: missing emotion"):
        pipeline.calibrate(TemperatureCalibrator(), png_image(), results, {}, Broken())


def test_annotator_errors_propagate_from_run_pipeline():
    bad = FakeAnnotator("b", error=StageError("b: malformed JSON", raw_output="{"))
    with pytest.raises(StageError, match="malformed"):
        pipeline.run_pipeline(
            [png_image()], annotators=[FakeAnnotator("a"), bad], calibrator=TemperatureCalibrator(),
            critic=None, grounder=FakeGrounder(), segmenter=FakeSegmenter(),
        )


def _critic(verdict="ok", label="ok"):
    elements = tuple(ElementVerdict(0, r, verdict, "x") for r in ROLES)
    return CriticResult("c", "critic_v1", elements, label, "x", "x", "{}")


def test_routing_auto_accepts_only_above_threshold_with_a_clean_critic():
    results = pipeline.annotate_all([FakeAnnotator("a", p=0.9), FakeAnnotator("b", p=0.9)], png_image())
    calibration = calibrate_and_merge(results, {})
    assert calibration.agreement.score > 0.99 and calibration.confidence == pytest.approx(0.9, abs=1e-4)

    assert pipeline.route(calibration, _critic(), auto_accept_threshold=None).auto_accept is False
    assert pipeline.route(calibration, _critic(), auto_accept_threshold=0.85).auto_accept is True
    assert pipeline.route(calibration, _critic(), auto_accept_threshold=0.95).auto_accept is False
    assert pipeline.route(calibration, _critic("doubtful"), auto_accept_threshold=0.85).auto_accept is False
    assert pipeline.route(calibration, _critic(label="wrong"), auto_accept_threshold=0.85).auto_accept is False


def test_low_agreement_sorts_first():
    agree = calibrate_and_merge(pipeline.annotate_all([FakeAnnotator("a"), FakeAnnotator("b")], png_image()), {})
    disagree = calibrate_and_merge(
        pipeline.annotate_all([FakeAnnotator("a"), FakeAnnotator("b", peak="awe")], png_image()), {}
    )
    assert pipeline.route(disagree, None, auto_accept_threshold=None).priority < pipeline.route(
        agree, None, auto_accept_threshold=None
    ).priority


def test_a_critic_calling_the_label_or_an_element_wrong_is_reviewed_sooner():
    calibration = calibrate_and_merge(pipeline.annotate_all([FakeAnnotator("a"), FakeAnnotator("b")], png_image()), {})
    clean = pipeline.route(calibration, _critic(), auto_accept_threshold=None).priority
    assert pipeline.route(calibration, None, auto_accept_threshold=None).priority == clean
    assert pipeline.route(calibration, _critic("doubtful"), auto_accept_threshold=None).priority == clean
    assert pipeline.route(calibration, _critic(label="wrong"), auto_accept_threshold=None).priority == pytest.approx(clean / 2)
    assert pipeline.route(calibration, _critic("wrong"), auto_accept_threshold=None).priority == pytest.approx(clean / 2)


@pytest.mark.ml
def test_run_pipeline_with_tiny_real_vision_models(
    fake_openai, openai_key, tiny_grounding_dino_dir, tiny_sam_hf_dir, tiny_classifier_dir, tiny_des_vit_dir
):
    """The same orchestration with random-initialised models of the real architectures,
    loaded through the registry exactly as a worker loads them."""
    endpoint = {"base_url": fake_openai.base_url, "api_key_env": openai_key, "max_retries": 0}
    registry = Registry({
        "annotators": [
            {"name": "a", "backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator", "options": {"model": "fake-a", **endpoint}},
            {"name": "b", "backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator", "options": {"model": "fake-b", **endpoint}},
        ],
        "critic": {"backend": "ml.stages.backends.openai_critic.OpenAICritic", "options": {"model": "c", **endpoint}},
        "classifier": {"name": "emovit-tiny", "backend": "ml.stages.backends.hf_classifier.HFEmotionClassifier",
                       "options": {"model_path": str(tiny_classifier_dir), "device": "cpu"}},
        "grounder": {"backend": "ml.stages.backends.grounding_dino.GroundingDinoGrounder",
                     "options": {"model_path": str(tiny_grounding_dino_dir), "device": "cpu", "box_threshold": 0.0, "text_threshold": 0.0}},
        "segmenter": {"backend": "ml.stages.backends.sam_hf.HFSamSegmenter", "options": {"model_path": str(tiny_sam_hf_dir), "device": "cpu"}},
        "des": {"backend": "ml.stages.backends.des_encoder.VisionDesEncoder", "options": {"model_path": str(tiny_des_vit_dir), "device": "cpu"}},
    })
    images = [png_image(64, 48, seed=1, key="1"), png_image(50, 70, seed=2, key="2")]

    out = pipeline.run_pipeline(
        images, annotators=registry.annotators(), calibrator=registry.calibrator(), critic=registry.critic(),
        grounder=registry.grounder(), segmenter=registry.segmenter(), classifier=registry.classifier(), des=registry.des(),
    )

    for image, result in zip(images, out):
        assert result.calibration.classifier is not None
        assert sum(result.calibration.classifier.values()) == pytest.approx(1.0, abs=1e-3)
        assert result.des.shape == (DES_DIM,) and result.des.dtype == np.float32
        elements = [e for t in result.triplets for e in t.elements]
        assert any(e.box is not None for e in elements)  # thresholds at 0: every phrase gets a box
        for e in elements:
            if e.box is None:
                continue
            assert 0 <= e.box.x0 < e.box.x1 <= image.width and 0 <= e.box.y0 < e.box.y1 <= image.height
            assert e.mask.rle["size"] == [image.height, image.width]
            assert 0.0 <= e.mask.score <= 1.0
