"""The transformers emotion-classifier backend with a tiny random ViT whose labels are the
8 emotions in a shuffled order, saved and loaded from a folder as users' checkpoints are."""

from __future__ import annotations

import json
import re
import shutil

import pytest

pytest.importorskip("torch")

import torch

from core.vocabulary import EMOTIONS
from ml.stages.backends._vision import decode_image
from ml.stages.backends.hf_classifier import HFEmotionClassifier
from ml.stages.protocols import EmotionClassifier
from ml.stages.types import BackendNotConfigured, ImageInput, StageError
from tests.ml.vision_fixtures import build_tiny_classifier, random_image

pytestmark = pytest.mark.ml


@pytest.fixture(scope="module")
def classifier(tiny_classifier_dir) -> HFEmotionClassifier:
    return HFEmotionClassifier(
        model_path=str(tiny_classifier_dir),
        name="emovit-tiny",
        device="cpu",
        batch_size=2,
    )


def test_one_distribution_over_the_eight_emotions_per_image(classifier):
    assert isinstance(classifier, EmotionClassifier)
    assert classifier.name == "emovit-tiny"
    images = [random_image(seed=s, key=str(s)) for s in range(3)]
    predictions = classifier.predict(images)
    assert len(predictions) == 3
    for distribution in predictions:
        assert list(distribution) == list(EMOTIONS)
        assert all(isinstance(p, float) and 0.0 < p < 1.0 for p in distribution.values())
        assert sum(distribution.values()) == pytest.approx(1.0, abs=1e-12)
    assert predictions[0] != predictions[1]
    # Batched (batch_size=2) and one at a time agree.
    for image, expected in zip(images, predictions):
        (alone,) = classifier.predict([image])
        assert alone == pytest.approx(expected, abs=1e-6)
    assert classifier.predict([]) == []


def test_columns_follow_the_checkpoint_label_order(classifier, tiny_classifier_dir):
    id2label = json.loads((tiny_classifier_dir / "config.json").read_text())["id2label"]
    assert [id2label[str(i)] for i in range(8)] != list(EMOTIONS)  # the fixture shuffles them
    image = random_image(seed=4)
    inputs = classifier.processor(images=[decode_image(image)], return_tensors="pt")
    with torch.inference_mode():
        probs = torch.softmax(classifier.model(**inputs).logits.double(), dim=-1)[0]
    predicted = classifier.predict([image])[0]
    for i in range(8):
        assert predicted[id2label[str(i)]] == pytest.approx(float(probs[i]), abs=1e-9)


@pytest.mark.parametrize(
    "labels",
    [
        ("happy", *EMOTIONS[1:]),  # an unknown label
        EMOTIONS[:7],  # one missing
        (*EMOTIONS[:7], "awe"),  # a duplicate
        (*EMOTIONS, "neutral"),  # one too many
    ],
)
def test_other_labels_are_refused(tmp_path, labels):
    folder = build_tiny_classifier(tmp_path / "model", labels=labels)
    with pytest.raises(
        BackendNotConfigured,
        match=re.escape(f"{folder}/config.json id2label must be exactly the 8 emotions"),
    ):
        HFEmotionClassifier(model_path=str(folder), device="cpu")


def test_labels_are_compared_ignoring_case_and_spaces(tmp_path):
    folder = build_tiny_classifier(tmp_path / "model", labels=tuple(f" {e.title()}" for e in EMOTIONS))
    distribution = HFEmotionClassifier(model_path=str(folder), device="cpu").predict([random_image()])[0]
    assert list(distribution) == list(EMOTIONS)


def test_missing_or_incomplete_folder(tmp_path, tiny_classifier_dir):
    with pytest.raises(BackendNotConfigured, match="does not exist"):
        HFEmotionClassifier(model_path=str(tmp_path / "nope"), device="cpu")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_classifier_dir, partial)
    (partial / "config.json").unlink()
    with pytest.raises(BackendNotConfigured, match=re.escape(f"missing {partial / 'config.json'}")):
        HFEmotionClassifier(model_path=str(partial), device="cpu")


def test_corrupt_image_is_a_stage_error(classifier):
    with pytest.raises(StageError, match="cannot decode image x"):
        classifier.predict([ImageInput(key="x", data=b"", width=1, height=1)])
