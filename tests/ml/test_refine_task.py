"""``ml.tasks.gpu_refine_mask``, the worker side of click-to-refine, with a tiny random SAM of
the real architecture loaded from a saved folder through the configured registry."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from annotations.validation import validate_mask
from core.masks import decode_mask
from ml import tasks
from ml.config import get_registry, reset_registry
from ml.stages.types import BackendNotConfigured
from tests.factories import ImageFactory

pytestmark = [pytest.mark.django_db, pytest.mark.ml]


@pytest.fixture
def sam_config(settings, tiny_sam_hf_dir):
    settings.EMOVERSE_ML = {
        "segmenter": {"backend": "ml.stages.backends.sam_hf.HFSamSegmenter", "options": {"model_path": str(tiny_sam_hf_dir), "device": "cpu"}},
    }
    reset_registry()
    yield settings.EMOVERSE_ML
    reset_registry()


def test_refine_returns_a_full_size_rle_the_review_api_accepts(sam_config):
    image = ImageFactory(width=64, height=48)

    out = tasks.gpu_refine_mask.apply(args=[image.pk, [4.0, 4.0, 40.0, 30.0], [[20.0, 16.0]], [1]]).get()

    assert set(out) == {"mask", "score"} and 0.0 <= out["score"] <= 1.0
    assert out["mask"]["size"] == [48, 64] and isinstance(out["mask"]["counts"], str)
    assert validate_mask(out["mask"], 64, 48) == out["mask"]
    assert decode_mask(out["mask"]).sum() > 0


def test_clicks_on_the_same_image_reuse_its_embedding(sam_config):
    image = ImageFactory(width=64, height=48)
    segmenter = get_registry().segmenter()
    passes: list[int] = []
    segmenter.model.vision_encoder.register_forward_hook(lambda m, args, out: passes.append(1))

    tasks.gpu_refine_mask(image.pk, None, [[10.0, 10.0]], [1])
    tasks.gpu_refine_mask(image.pk, [2.0, 2.0, 50.0, 40.0], [[10.0, 10.0], [45.0, 30.0]], [1, 0])

    assert len(passes) == 1


def test_an_empty_mask_comes_back_as_none(sam_config, monkeypatch):
    from core.masks import encode_mask
    from ml.stages.types import Mask

    image = ImageFactory(width=64, height=48)
    segmenter = get_registry().segmenter()
    empty = Mask(rle=encode_mask(np.zeros((48, 64), dtype=bool)), score=0.12)
    monkeypatch.setattr(segmenter, "refine", lambda *a, **k: empty)

    assert tasks.gpu_refine_mask(image.pk, None, [[10.0, 10.0]], [1]) == {"mask": None, "score": 0.12}


def test_without_a_segmenter_the_task_fails_saying_what_to_configure(settings):
    settings.EMOVERSE_ML = {}
    reset_registry()
    image = ImageFactory()

    with pytest.raises(BackendNotConfigured, match="no segmenter configured"):
        tasks.gpu_refine_mask(image.pk, None, [[10.0, 10.0]], [1])
