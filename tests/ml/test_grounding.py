"""The Grounding DINO backend with a tiny random model of the real architecture.

The model is saved with ``save_pretrained`` and loaded by the backend from that
folder (``local_files_only=True``); every test runs real forward passes on the CPU.
"""

from __future__ import annotations

import re
import shutil

import pytest

pytest.importorskip("torch")

import torch

from ml.stages.backends.grounding_dino import GroundingDinoGrounder, clean_phrase
from ml.stages.protocols import Grounder
from ml.stages.types import BackendNotConfigured, ImageInput, StageError
from tests.ml.vision_fixtures import random_image

pytestmark = pytest.mark.ml

PHRASES = ["dark heavy clouds", "lone fisherman", "a red square"]


def make(folder, **options) -> GroundingDinoGrounder:
    options.setdefault("device", "cpu")
    return GroundingDinoGrounder(model_path=str(folder), **options)


@pytest.fixture(scope="module")
def grounder(tiny_grounding_dino_dir) -> GroundingDinoGrounder:
    return make(tiny_grounding_dino_dir, box_threshold=0.0, text_threshold=0.0)


def count_forward_passes(model: torch.nn.Module) -> list[int]:
    """A list that grows by the batch size of every forward pass of ``model``."""
    calls: list[int] = []
    model.register_forward_hook(
        lambda module, args, kwargs, out: calls.append(int(kwargs["pixel_values"].shape[0])),
        with_kwargs=True,
    )
    return calls


def assert_inside(box, image: ImageInput) -> None:
    assert 0.0 <= box.x0 < box.x1 <= image.width
    assert 0.0 <= box.y0 < box.y1 <= image.height
    assert 0.0 < box.score <= 1.0
    assert all(isinstance(v, float) for v in (*box.as_list(), box.score))


def test_every_phrase_gets_an_absolute_box_inside_its_image(grounder):
    assert isinstance(grounder, Grounder)
    images = [
        random_image(80, 60, seed=1, key="a"),
        random_image(50, 90, seed=2, key="b"),
    ]
    phrases = [PHRASES, ["blue sky"]]
    detections = grounder.ground(images, phrases)
    assert [[d.phrase for d in ds] for ds in detections] == phrases
    for image, ds in zip(images, detections):
        for detection in ds:
            assert detection.box is not None  # thresholds are 0: every phrase has a best box
            assert_inside(detection.box, image)
    # Absolute pixels, not [0, 1]: some coordinate of some box is beyond 1 px.
    assert max(max(d.box.as_list()) for ds in detections for d in ds) > 1.0


def test_threshold_of_one_finds_nothing(tiny_grounding_dino_dir):
    for options in ({"box_threshold": 1.0}, {"text_threshold": 1.0}):
        detections = make(tiny_grounding_dino_dir, **options).ground([random_image()], [PHRASES])
        assert [d.box for d in detections[0]] == [None, None, None]


def test_text_threshold_keeps_only_phrases_scoring_above_it(grounder, tiny_grounding_dino_dir):
    image = random_image(seed=3)
    loose = {d.phrase: d.box for d in grounder.ground([image], [PHRASES])[0]}
    scores = sorted(box.score for box in loose.values())
    assert scores[0] < scores[-1]
    cut = (scores[0] + scores[-1]) / 2
    strict = make(tiny_grounding_dino_dir, box_threshold=0.0, text_threshold=cut).ground([image], [PHRASES])[
        0
    ]
    for detection in strict:
        if loose[detection.phrase].score > cut:
            assert detection.box == loose[detection.phrase]  # the same best query wins
        else:
            assert detection.box is None


def test_boxes_reaching_outside_the_image_are_clipped(tiny_grounding_dino_dir):
    grounder = make(tiny_grounding_dino_dir, box_threshold=0.0, text_threshold=0.0)
    with torch.no_grad():  # make every predicted box nearly as large as the image, off-centre: it overflows
        last = grounder.model.bbox_embed[-1].layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, 8.0, 8.0]))
    image = random_image(70, 40)
    detections = grounder.ground([image], [PHRASES])[0]
    for detection in detections:
        assert_inside(detection.box, image)
    touching = [
        d.box
        for d in detections
        if d.box.x0 == 0.0 or d.box.x1 == 70.0 or d.box.y0 == 0.0 or d.box.y1 == 40.0
    ]
    assert touching


def test_batches_give_the_same_boxes_as_one_image_at_a_time(tiny_grounding_dino_dir):
    images = [random_image(64, 64, seed=s, key=str(s)) for s in range(5)]
    phrases = [PHRASES[: 1 + s % 3] for s in range(5)]
    batched = make(tiny_grounding_dino_dir, box_threshold=0.0, text_threshold=0.0, batch_size=4)
    calls = count_forward_passes(batched.model)
    together = batched.ground(images, phrases)
    assert calls == [4, 1]
    one = make(tiny_grounding_dino_dir, box_threshold=0.0, text_threshold=0.0, batch_size=1)
    for image, ps, expected in zip(images, phrases, together):
        alone = one.ground([image], [ps])[0]
        for a, b in zip(alone, expected):
            assert a.phrase == b.phrase
            assert a.box.as_list() == pytest.approx(b.box.as_list(), abs=1e-3)
            assert a.box.score == pytest.approx(b.box.score, abs=1e-5)


def test_prompts_longer_than_the_text_window_are_split(tiny_grounding_dino_dir):
    grounder = make(tiny_grounding_dino_dir, box_threshold=0.0, text_threshold=0.0, batch_size=1)
    assert grounder.max_phrase_tokens == 22  # max_text_len 24 of the tiny model
    words = [
        "red",
        "blue",
        "dark",
        "heavy",
        "lone",
        "stormy",
        "green",
        "calm",
        "old",
        "bright",
    ]
    phrases = [f"{w} sky" for w in words]  # 10 phrases x 3 tokens (with ".") = 30 > 22
    calls = count_forward_passes(grounder.model)
    detections = grounder.ground([random_image()], [phrases])[0]
    assert len(calls) == 2
    assert [d.phrase for d in detections] == phrases
    assert all(d.box is not None for d in detections)


def test_a_phrase_longer_than_the_window_is_cut_to_fit(grounder):
    phrase = " ".join(["stormy beach"] * 20)  # 40 tokens
    assert (
        len(grounder.tokenizer(grounder._fit(clean_phrase(phrase)), add_special_tokens=False)["input_ids"])
        == 21
    )
    detections = grounder.ground([random_image()], [[phrase, "blue sky"]])[0]
    assert [d.phrase for d in detections] == [phrase, "blue sky"]
    assert all(d.box is not None for d in detections)


def test_duplicate_and_empty_phrases(grounder):
    detections = grounder.ground([random_image()], [["Dark clouds.", "dark   clouds", "", " . ? "]])[0]
    assert [d.phrase for d in detections] == [
        "Dark clouds.",
        "dark   clouds",
        "",
        " . ? ",
    ]
    assert detections[0].box is not None and detections[0].box == detections[1].box
    assert detections[2].box is None and detections[3].box is None
    assert grounder.ground([random_image()], [[]]) == [[]]
    assert grounder.ground([], []) == []


def test_clean_phrase():
    assert clean_phrase("  The Dark. Clouds?  ") == "the dark clouds"


def test_corrupt_image_is_a_stage_error(grounder):
    broken = ImageInput(
        key="9",
        data=b"\x89PNG\r\n\x1a\nnot really",
        width=10,
        height=10,
        mime_type="image/png",
    )
    with pytest.raises(StageError, match="cannot decode image 9"):
        grounder.ground([broken], [["blue sky"]])


def test_length_mismatch_is_refused(grounder):
    with pytest.raises(ValueError, match="2 images but 1 lists"):
        grounder.ground([random_image(), random_image()], [["sky"]])


def test_missing_or_incomplete_folder_says_what_to_configure(tmp_path, tiny_grounding_dino_dir):
    with pytest.raises(
        BackendNotConfigured,
        match=re.escape(f"model_path='{tmp_path / 'nope'}'") + ".*does not exist",
    ):
        make(tmp_path / "nope")
    with pytest.raises(BackendNotConfigured, match="set option 'model_path'"):
        GroundingDinoGrounder(model_path="")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_grounding_dino_dir, partial)
    (partial / "model.safetensors").unlink()
    with pytest.raises(
        BackendNotConfigured,
        match=re.escape(f"missing {partial / 'model.safetensors'}"),
    ):
        make(partial)


def test_bad_options_are_refused(tiny_grounding_dino_dir):
    with pytest.raises(BackendNotConfigured, match="box_threshold"):
        make(tiny_grounding_dino_dir, box_threshold=1.5)
    with pytest.raises(BackendNotConfigured, match="batch_size"):
        make(tiny_grounding_dino_dir, batch_size=0)
    with pytest.raises(BackendNotConfigured, match="device"):
        make(tiny_grounding_dino_dir, device="tpu")
