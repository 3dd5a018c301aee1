"""Per-backend efficiency switches: dtype (float32/bfloat16/float16), TF32, SAM's upsampling.

Tiny random-initialised models of the real architectures on the CPU (bfloat16 and float16
run there too); the answers in half precision must match float32's closely.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from core.masks import decode_mask  # noqa: E402
from ml.stages.backends._torch_utils import set_tf32  # noqa: E402
from ml.stages.backends._vision import decode_image  # noqa: E402
from ml.stages.backends.grounding_dino import GroundingDinoGrounder  # noqa: E402
from ml.stages.backends.hf_classifier import HFEmotionClassifier  # noqa: E402
from ml.stages.backends.sam_hf import HFSamSegmenter  # noqa: E402
from ml.stages.types import BackendNotConfigured, Box  # noqa: E402
from tests.ml.vision_fixtures import random_image  # noqa: E402

pytestmark = pytest.mark.ml
PHRASES = ["red square", "dark sky", "calm sea"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_grounding_dino_in_half_precision_finds_the_boxes_float32_finds(tiny_grounding_dino_dir, dtype):
    options = {"model_path": str(tiny_grounding_dino_dir), "device": "cpu", "box_threshold": 0.0, "text_threshold": 0.0}
    exact = GroundingDinoGrounder(**options)
    half = GroundingDinoGrounder(**options, dtype=dtype)
    images = [random_image(seed=s, key=str(s)) for s in range(3)]

    assert {p.dtype for p in half.model.parameters()} == {getattr(torch, dtype)}
    assert dtype in half.describe()
    # The model's outputs agree. Grounding DINO keeps its top-k encoder proposals as queries, and
    # a random model's near-tied proposals come out in another order in half precision, so each
    # token's best score over the queries is compared, not query by query.
    pils = [decode_image(image) for image in images]
    texts = ["red square. dark sky. calm sea."] * 3
    want_probs, _, _ = exact._forward(pils, texts)
    got_probs, got_boxes, _ = half._forward(pils, texts)
    assert got_probs.dtype == got_boxes.dtype == torch.float32
    assert torch.allclose(got_probs.max(dim=1).values, want_probs.max(dim=1).values, atol=0.1)
    for image, detections in zip(images, half.ground(images, [PHRASES] * 3)):
        assert [d.phrase for d in detections] == PHRASES
        for d in detections:
            assert d.box is not None and 0 <= d.box.x0 < d.box.x1 <= image.width and 0 <= d.box.y0 < d.box.y1 <= image.height


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_sam_in_half_precision_gives_float32s_masks(tiny_sam_hf_dir, dtype):
    exact = HFSamSegmenter(model_path=str(tiny_sam_hf_dir), device="cpu")
    half = HFSamSegmenter(model_path=str(tiny_sam_hf_dir), device="cpu", dtype=dtype)
    image = random_image(seed=4)
    boxes = [[Box(8, 6, 50, 40), Box(20, 15, 70, 55)]]

    assert {p.dtype for p in half.model.parameters()} == {getattr(torch, dtype)}
    for a, b in zip(exact.segment([image], boxes)[0], half.segment([image], boxes)[0]):
        agree = (decode_mask(a.rle) == decode_mask(b.rle)).mean()
        assert agree > 0.97
        assert b.score == pytest.approx(a.score, abs=0.05)
    clicked = half.refine(image, None, [(30.0, 25.0)], [1])
    assert decode_mask(clicked.rle).shape == (image.height, image.width)


def test_sam_upsamples_on_the_device_and_copies_only_boolean_masks_to_the_host(tiny_sam_hf_dir, monkeypatch):
    segmenter = HFSamSegmenter(model_path=str(tiny_sam_hf_dir), device="cpu")
    image = random_image(seed=5)
    segmenter.embed([image])  # the encoder pass is not what is checked
    moved: list[tuple[torch.dtype, tuple[int, ...]]] = []
    to_host = torch.Tensor.cpu

    def cpu(tensor, *args, **kwargs):
        moved.append((tensor.dtype, tuple(tensor.shape)))
        return to_host(tensor, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    segmenter.segment([image], [[Box(8, 6, 50, 40), Box(20, 15, 70, 55)]])

    # The full-size boolean masks and the two predicted IoUs; never SAM's float low-resolution masks.
    assert sorted(moved, key=str) == sorted([(torch.bool, (2, 1, 60, 80)), (torch.float32, (2, 1))], key=str)


def test_classifier_in_bfloat16_gives_distributions(tiny_classifier_dir):
    classifier = HFEmotionClassifier(model_path=str(tiny_classifier_dir), device="cpu", dtype="bfloat16")
    exact = HFEmotionClassifier(model_path=str(tiny_classifier_dir), device="cpu")
    images = [random_image(seed=s, key=str(s)) for s in range(2)]

    for want, got in zip(exact.predict(images), classifier.predict(images)):
        assert sum(got.values()) == pytest.approx(1.0)
        assert np.allclose(list(got.values()), list(want.values()), atol=0.02)


@pytest.mark.parametrize(
    "backend", [GroundingDinoGrounder, HFSamSegmenter, HFEmotionClassifier], ids=["dino", "sam", "classifier"]
)
def test_an_unknown_dtype_says_which_are_allowed(backend, tmp_path):
    with pytest.raises(BackendNotConfigured, match=r"option 'dtype' must be one of \['bfloat16', 'float16', 'float32'\]"):
        backend(model_path=str(tmp_path), device="cpu", dtype="int8")


def test_tf32_switches_torchs_float32_matmul_and_cudnn_flags():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        set_tf32(True)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
        set_tf32(None)  # leaves it
        assert torch.backends.cuda.matmul.allow_tf32 is True
        set_tf32(False)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
        with pytest.raises(BackendNotConfigured, match="option 'tf32' must be true, false or null"):
            set_tf32("yes")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_the_tf32_option_of_a_backend_reaches_torch(tiny_sam_hf_dir):
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        HFSamSegmenter(model_path=str(tiny_sam_hf_dir), device="cpu", tf32=True)
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
