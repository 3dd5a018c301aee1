"""Fixtures of the ml-core tests (annotators, critic, calibration, pipeline, tasks).

Imported by tests/ml/conftest.py. Builds a tiny random Qwen2.5-VL with a byte-level
tokenizer trained offline, and starts the fake OpenAI-compatible server.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from ml.config import reset_registry
from ml.stages.types import ImageInput
from demo.chat_server import ChatServer
from tests.ml.stage_fakes import api_pipeline_config

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# The Qwen2-VL chat template (system prompt, image placeholder, generation prompt).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TOKENIZER_CORPUS = [
    '{"triplets": [{"background": "stormy beach at dusk", "attribute": "dark heavy clouds", "subject": "lone fisherman"}],',
    '"distribution": {"amusement": 0.04, "awe": 0.04, "contentment": 0.04, "excitement": 0.04, "anger": 0.04,',
    '"disgust": 0.04, "fear": 0.72, "sadness": 0.04}, "rationale": "The dark clouds evoke fear."}',
    "You annotate the emotion a photograph evokes. Describe the image as triplets.",
]


def build_tiny_qwen(folder: Path) -> Path:
    """Save a random-initialised Qwen2.5-VL (~0.2M parameters) with its processor to ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    torch.manual_seed(0)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=420, special_tokens=list(QWEN_SPECIAL_TOKENS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(TOKENIZER_CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 1e6},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen2.5-vl"))


def png_image(width: int = 64, height: int = 48, seed: int = 0, key: str = "1") -> ImageInput:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB").save(buf, format="PNG")
    return ImageInput(key=key, data=buf.getvalue(), width=width, height=height, mime_type="image/png")


@pytest.fixture
def ml_image() -> ImageInput:
    return png_image()


@pytest.fixture
def fake_openai():
    server = ChatServer().start()
    yield server
    server.stop()


@pytest.fixture
def openai_key(monkeypatch) -> str:
    monkeypatch.setenv("EMOVERSE_TEST_OPENAI_KEY", "sk-test-not-a-real-key")
    return "EMOVERSE_TEST_OPENAI_KEY"


@pytest.fixture
def ml_config(settings, fake_openai, openai_key):
    """A complete pipeline: two annotators and a critic on the fake server, fake vision stages."""
    settings.EMOVERSE_ML = api_pipeline_config(
        fake_openai.base_url, openai_key, version="test-v1", timeout=30, gpu_batch_size=8,
        des={"backend": "tests.ml.stage_fakes.FakeDes"}, classifier=None,
    )
    reset_registry()
    yield settings.EMOVERSE_ML
    reset_registry()
