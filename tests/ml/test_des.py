"""The DES encoder: tiny random ViT, full CLIP and Qwen2.5-VL backbones with a saved 1024-d
linear head, loaded from their folders as users' checkpoints are."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from core.vocabulary import DES_DIM
from ml.stages.backends._vision import decode_image
from ml.stages.backends.des_encoder import VisionDesEncoder
from ml.stages.pipeline import encode_des
from ml.stages.protocols import DesEncoder
from ml.stages.types import BackendNotConfigured, ImageInput, StageError
from tests.ml.vision_fixtures import random_image, write_des_head

pytestmark = pytest.mark.ml

IMAGES = [random_image(64, 48, seed=s, key=str(s)) for s in range(3)]


def test_vit_backbone_gives_unit_float32_vectors(tiny_des_vit_dir):
    encoder = VisionDesEncoder(model_path=str(tiny_des_vit_dir), device="cpu", batch_size=2)
    assert isinstance(encoder, DesEncoder)
    vectors = encode_des(encoder, IMAGES)  # the pipeline's own shape/dtype/finite check
    assert vectors.shape == (3, DES_DIM) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    for image, expected in zip(IMAGES, vectors):  # batches of 2 and single images agree
        assert encoder.encode([image])[0] == pytest.approx(expected, abs=1e-5)
    assert encoder.encode([]).shape == (0, DES_DIM)


def test_head_is_applied_to_the_pooled_feature(tiny_des_vit_dir):
    raw = VisionDesEncoder(model_path=str(tiny_des_vit_dir), device="cpu", normalize=False)
    image = IMAGES[0]
    inputs = raw.backbone.processor(images=[decode_image(image)], return_tensors="pt")
    with torch.inference_mode():
        pooled = raw.backbone.tower(**inputs).pooler_output
        expected = raw.head(pooled)[0].numpy()
    vector = raw.encode([image])[0]
    assert vector == pytest.approx(expected, abs=1e-5)
    assert np.linalg.norm(vector) != pytest.approx(1.0, abs=1e-3)
    unit = VisionDesEncoder(model_path=str(tiny_des_vit_dir), device="cpu").encode([image])[0]
    assert unit == pytest.approx(vector / np.linalg.norm(vector), abs=1e-5)


def test_full_clip_model_uses_its_vision_tower_and_a_pt_head(tiny_des_clip_dir):
    encoder = VisionDesEncoder(model_path=str(tiny_des_clip_dir), device="cpu")
    assert encoder.backbone.in_features == 24
    assert not (tiny_des_clip_dir / "des_head.safetensors").exists()
    vectors = encoder.encode(IMAGES[:2])
    assert vectors.shape == (2, DES_DIM) and vectors.dtype == np.float32


def test_qwen_vl_vision_tower(tiny_des_qwen_dir):
    encoder = VisionDesEncoder(model_path=str(tiny_des_qwen_dir), device="cpu", batch_size=2)
    assert encoder.backbone.in_features == 64
    vectors = encoder.encode(IMAGES)
    assert vectors.shape == (3, DES_DIM) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert encoder.encode([IMAGES[2]])[0] == pytest.approx(vectors[2], abs=1e-4)


def test_head_problems_say_what_to_fix(tmp_path, tiny_des_vit_dir):
    folder = tmp_path / "model"
    shutil.copytree(tiny_des_vit_dir, folder)
    (folder / "des_head.safetensors").unlink()
    with pytest.raises(
        BackendNotConfigured,
        match=re.escape(f"missing {folder / 'des_head.safetensors'} (or des_head.pt)"),
    ):
        VisionDesEncoder(model_path=str(folder), device="cpu")
    write_des_head(folder, 15)
    with pytest.raises(BackendNotConfigured, match=r"shape \(1024, 15\), expected \(1024, 16\)"):
        VisionDesEncoder(model_path=str(folder), device="cpu")
    write_des_head(folder, 16, out_features=512)
    with pytest.raises(BackendNotConfigured, match=r"shape \(512, 16\), expected \(1024, 16\)"):
        VisionDesEncoder(model_path=str(folder), device="cpu")
    (folder / "des_head.safetensors").write_bytes(b"garbage")
    with pytest.raises(BackendNotConfigured, match="cannot read"):
        VisionDesEncoder(model_path=str(folder), device="cpu")


def test_bad_options(tmp_path, tiny_des_vit_dir):
    with pytest.raises(BackendNotConfigured, match="does not exist"):
        VisionDesEncoder(model_path=str(tmp_path / "nope"), device="cpu")
    with pytest.raises(BackendNotConfigured, match="dtype"):
        VisionDesEncoder(model_path=str(tiny_des_vit_dir), device="cpu", dtype="int8")


def test_corrupt_image_is_a_stage_error(tiny_des_vit_dir):
    encoder = VisionDesEncoder(model_path=str(tiny_des_vit_dir), device="cpu")
    truncated = ImageInput(key="t", data=IMAGES[0].data[:60], width=64, height=48, mime_type="image/png")
    with pytest.raises(StageError, match="cannot decode image t"):
        encoder.encode([IMAGES[1], truncated])
