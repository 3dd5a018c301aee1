"""Tiny random-initialised vision models of the real architectures, saved like real checkpoints.

Imported by tests/ml/conftest.py (fixtures) and bench/pipeline.py (builders). Every
model is saved to a folder (``save_pretrained``) or a ``.pth`` state dict and then
loaded through our backends exactly as a user's download would be.
"""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from core.vocabulary import EMOTIONS
from demo.tiny_models import (  # noqa: F401 - re-exported to the tests
    BERT_FIXED_IDS,
    PHRASE_WORDS,
    build_tiny_des_vit,
    build_tiny_grounding_dino,
    build_tiny_sam_hf,
    write_bert_vocab,
    write_des_head,
)
from ml.stages.types import ImageInput

TINY_SAM_TYPE = "vit_tiny_test"


def build_tiny_meta_sam(checkpoint: str | None = None):
    """segment_anything's ``Sam`` with the real modules, shrunk (64 px input, 32-d embeddings)."""
    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    dim, image_size, patch = 32, 64, 8
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=image_size,
            patch_size=patch,
            embed_dim=32,
            depth=2,
            num_heads=2,
            mlp_ratio=2,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(image_size // patch, image_size // patch),
            input_image_size=(image_size, image_size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=3,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    sam.eval()
    if checkpoint is not None:
        sam.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return sam


def save_tiny_meta_sam(path: Path, *, seed: int = 0) -> Path:
    import torch

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_tiny_meta_sam().state_dict(), path)
    return path


def build_tiny_classifier(folder: Path, *, labels: tuple[str, ...] | None = None, seed: int = 0) -> Path:
    """A tiny ViT image classifier whose ``id2label`` is ``labels`` (default: EMOTIONS shuffled)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    if labels is None:
        labels = tuple(np.random.default_rng(seed).permutation(EMOTIONS))
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def build_tiny_des_clip(folder: Path, *, seed: int = 0) -> Path:
    """A tiny full CLIP model (vision + text towers); the DES encoder uses its vision tower."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 24,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
        },
        text_config={
            "vocab_size": 64,
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "max_position_embeddings": 16,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        projection_dim=8,
    )
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    write_des_head(folder, 24, fmt="pt", seed=seed)
    return folder


# -- images -------------------------------------------------------------------------------
def image_input(pil: PILImage.Image, *, key: str = "1", fmt: str = "PNG", **save_options) -> ImageInput:
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **save_options)
    return ImageInput(
        key=key,
        data=buf.getvalue(),
        width=pil.width,
        height=pil.height,
        mime_type=f"image/{fmt.lower()}",
    )


def random_image(width: int = 80, height: int = 60, *, seed: int = 0, key: str = "1") -> ImageInput:
    """A noisy RGB PNG with a bright rectangle (something for a detector to look at)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 96, (height, width, 3), dtype=np.uint8)
    pixels[height // 4 : height // 2, width // 4 : width // 2] = (230, 40, 40)
    return image_input(PILImage.fromarray(pixels, "RGB"), key=key)


# -- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_grounding_dino_dir(tmp_path_factory) -> Path:
    return build_tiny_grounding_dino(tmp_path_factory.mktemp("tiny-grounding-dino"))


@pytest.fixture(scope="session")
def tiny_sam_hf_dir(tmp_path_factory) -> Path:
    return build_tiny_sam_hf(tmp_path_factory.mktemp("tiny-sam-hf"))


@pytest.fixture(scope="session")
def tiny_sam_checkpoint(tmp_path_factory) -> Path:
    """A ``.pth`` of the tiny Meta SAM; ``model_type`` :data:`TINY_SAM_TYPE` is registered meanwhile."""
    from segment_anything import sam_model_registry

    sam_model_registry[TINY_SAM_TYPE] = build_tiny_meta_sam
    yield save_tiny_meta_sam(tmp_path_factory.mktemp("tiny-sam-meta") / "sam_tiny.pth")
    sam_model_registry.pop(TINY_SAM_TYPE, None)


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-emotion-vit"))


@pytest.fixture(scope="session")
def tiny_des_vit_dir(tmp_path_factory) -> Path:
    return build_tiny_des_vit(tmp_path_factory.mktemp("tiny-des-vit"))


@pytest.fixture(scope="session")
def tiny_des_qwen_dir(tmp_path_factory, tiny_qwen_dir) -> Path:
    """ml-core's tiny Qwen2.5-VL folder, copied, with a DES head on its vision tower (64 -> 1024)."""
    import shutil

    from transformers import AutoConfig

    folder = tmp_path_factory.mktemp("tiny-des-qwen") / "model"
    shutil.copytree(tiny_qwen_dir, folder)
    out_hidden = AutoConfig.from_pretrained(folder, local_files_only=True).vision_config.out_hidden_size
    write_des_head(folder, out_hidden)
    return folder


@pytest.fixture(scope="session")
def tiny_des_clip_dir(tmp_path_factory) -> Path:
    return build_tiny_des_clip(tmp_path_factory.mktemp("tiny-des-clip"))
