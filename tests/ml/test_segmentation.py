"""Both SAM backends (transformers and segment_anything) with tiny random models of the real
architectures, loaded from a saved folder / ``.pth`` through the backends' own loading code."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("segment_anything")

import torch

from core.masks import decode_mask
from ml.stages.backends.sam_hf import HFSamSegmenter
from ml.stages.backends.sam_meta import MetaSamSegmenter
from ml.stages.protocols import Segmenter
from ml.stages.types import BackendNotConfigured, Box, ImageInput, StageError
from tests.ml.vision_fixtures import TINY_SAM_TYPE, random_image

pytestmark = pytest.mark.ml


@pytest.fixture(params=["transformers", "segment_anything"])
def make_segmenter(request, tiny_sam_hf_dir, tiny_sam_checkpoint):
    def make(**options):
        options.setdefault("device", "cpu")
        if request.param == "transformers":
            return HFSamSegmenter(model_path=str(tiny_sam_hf_dir), **options)
        return MetaSamSegmenter(checkpoint=str(tiny_sam_checkpoint), model_type=TINY_SAM_TYPE, **options)

    return make


def image_encoder(segmenter) -> torch.nn.Module:
    return (
        segmenter.model.vision_encoder
        if isinstance(segmenter, HFSamSegmenter)
        else segmenter.sam.image_encoder
    )


def count_encoder_passes(segmenter) -> list[int]:
    """A list that grows by the batch size of every image-encoder pass."""
    calls: list[int] = []
    image_encoder(segmenter).register_forward_hook(
        lambda module, args, out: calls.append(int(args[0].shape[0]))
    )
    return calls


def assert_valid_mask(mask, image: ImageInput) -> np.ndarray:
    assert set(mask.rle) == {"size", "counts"}
    assert mask.rle["size"] == [image.height, image.width]
    assert isinstance(mask.rle["counts"], str)
    assert 0.0 <= mask.score <= 1.0
    pixels = decode_mask(mask.rle)
    assert pixels.shape == (image.height, image.width) and pixels.dtype == np.uint8
    assert set(np.unique(pixels)) <= {0, 1}
    return pixels


def test_one_full_size_rle_mask_per_box(make_segmenter):
    segmenter = make_segmenter()
    assert isinstance(segmenter, Segmenter)
    images = [
        random_image(80, 60, seed=1, key="a"),
        random_image(50, 90, seed=2, key="b"),
        random_image(key="c"),
    ]
    boxes = [[Box(10, 10, 40, 30), Box(0, 0, 80, 60)], [Box(5, 5, 45, 85)], []]
    masks = segmenter.segment(images, boxes)
    assert [len(m) for m in masks] == [2, 1, 0]
    for image, image_masks in zip(images, masks):
        for mask in image_masks:
            assert_valid_mask(mask, image)


def test_image_embedding_is_computed_once_and_reused_by_refine(make_segmenter):
    segmenter = make_segmenter()
    calls = count_encoder_passes(segmenter)
    image = random_image(80, 60, key="7")
    segmenter.segment([image], [[Box(10, 10, 40, 30)]])
    first = segmenter.refine(image, None, [(20.0, 20.0)], [1])
    second = segmenter.refine(image, Box(10, 10, 40, 30), [(20.0, 20.0), (35.0, 25.0)], [1, 0])
    assert calls == [1]
    assert_valid_mask(first, image)
    assert_valid_mask(second, image)
    # Same key, other pixels: a new embedding (the cache key includes the bytes' CRC).
    changed = random_image(80, 60, seed=5, key="7")
    segmenter.refine(changed, None, [(20.0, 20.0)], [1])
    assert calls == [1, 1]


def test_cache_holds_at_most_cache_size_images(make_segmenter):
    segmenter = make_segmenter(cache_size=1)
    calls = count_encoder_passes(segmenter)
    a, b = random_image(key="a", seed=1), random_image(key="b", seed=2)
    for image in (a, b, a):
        segmenter.refine(image, None, [(10.0, 10.0)], [1])
    assert calls == [1, 1, 1]  # a was evicted by b
    off = make_segmenter(cache_size=0)
    calls = count_encoder_passes(off)
    off.refine(a, None, [(10.0, 10.0)], [1])
    off.refine(a, None, [(10.0, 10.0)], [1])
    assert calls == [1, 1]


def test_images_are_embedded_in_batches(make_segmenter):
    segmenter = make_segmenter(batch_size=4)
    calls = count_encoder_passes(segmenter)
    images = [random_image(70, 50, seed=s, key=str(s)) for s in range(5)]
    boxes = [[Box(5, 5, 30, 30)] for _ in images]
    together = segmenter.segment(images, boxes)
    assert calls == [4, 1]
    one = make_segmenter(batch_size=1)
    for image, box, expected in zip(images, boxes, together):
        alone = one.segment([image], [box])[0][0]
        agreement = (decode_mask(alone.rle) == decode_mask(expected[0].rle)).mean()
        assert agreement > 0.99
        assert alone.score == pytest.approx(expected[0].score, abs=1e-4)


def test_boxes_partly_outside_the_image_still_give_image_sized_masks(make_segmenter):
    image = random_image(40, 30)
    (mask,) = make_segmenter().segment([image], [[Box(-5, -5, 60, 45)]])[0]
    assert_valid_mask(mask, image)


def test_refine_checks_its_prompt(make_segmenter):
    segmenter = make_segmenter()
    image = random_image()
    with pytest.raises(ValueError, match="2 points but 1 point labels"):
        segmenter.refine(image, None, [(1.0, 1.0), (2.0, 2.0)], [1])
    with pytest.raises(ValueError, match="a box or at least one click"):
        segmenter.refine(image, None, [], [])
    with pytest.raises(ValueError, match="1 \\(inside\\) or 0 \\(outside\\)"):
        segmenter.refine(image, None, [(1.0, 1.0)], [2])
    with pytest.raises(ValueError, match="finite"):
        segmenter.refine(image, None, [(float("nan"), 1.0)], [1])
    assert_valid_mask(segmenter.refine(image, Box(2, 2, 30, 30), [], []), image)


def test_corrupt_or_mismatched_image_is_a_stage_error(make_segmenter):
    segmenter = make_segmenter()
    broken = ImageInput(key="9", data=b"GIF89a broken", width=10, height=10, mime_type="image/gif")
    with pytest.raises(StageError, match="cannot decode image 9"):
        segmenter.segment([broken], [[Box(1, 1, 5, 5)]])
    good = random_image(80, 60)
    lying = ImageInput(key="10", data=good.data, width=60, height=80)
    with pytest.raises(StageError, match="decodes to 80x60 pixels but its record says 60x80"):
        segmenter.refine(lying, None, [(1.0, 1.0)], [1])


def test_hf_folder_missing_or_incomplete(tmp_path, tiny_sam_hf_dir):
    with pytest.raises(BackendNotConfigured, match="does not exist"):
        HFSamSegmenter(model_path=str(tmp_path / "nope"), device="cpu")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_sam_hf_dir, partial)
    (partial / "processor_config.json").unlink()
    with pytest.raises(
        BackendNotConfigured,
        match=re.escape(f"missing {partial / 'preprocessor_config.json'}"),
    ):
        HFSamSegmenter(model_path=str(partial), device="cpu")


def test_meta_checkpoint_problems_say_what_to_fix(tmp_path, tiny_sam_checkpoint):
    with pytest.raises(
        BackendNotConfigured,
        match=re.escape(f"file {tmp_path / 'sam.pth'} does not exist"),
    ):
        MetaSamSegmenter(checkpoint=str(tmp_path / "sam.pth"), model_type="vit_b", device="cpu")
    with pytest.raises(
        BackendNotConfigured,
        match=r"model_type='vit_x' is not one of \[.*'vit_b'.*'vit_h'.*'vit_l'",
    ):
        MetaSamSegmenter(checkpoint=str(tiny_sam_checkpoint), model_type="vit_x", device="cpu")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(BackendNotConfigured, match="not a readable PyTorch checkpoint"):
        MetaSamSegmenter(checkpoint=str(garbage), model_type=TINY_SAM_TYPE, device="cpu")
    state = torch.load(tiny_sam_checkpoint, weights_only=True)
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(BackendNotConfigured, match=f"does not match model_type='{TINY_SAM_TYPE}'"):
        MetaSamSegmenter(
            checkpoint=str(tmp_path / "short.pth"),
            model_type=TINY_SAM_TYPE,
            device="cpu",
        )
