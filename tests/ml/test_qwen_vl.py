"""The local Qwen2.5-VL backend with a tiny random model of the real architecture.

The tiny model is saved to a folder and loaded through the same code users use
(``local_files_only=True``); ``generate`` runs for real on the CPU.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from ml.stages.backends import qwen_vl
from ml.stages.backends.qwen_vl import QwenVLAnnotator, QwenVLCritic
from ml.stages.calibration import calibrate_and_merge
from ml.stages.types import BackendNotConfigured, ImageInput, StageError
from demo.chat_server import annotation_json, critic_json

pytestmark = pytest.mark.ml


class ForceText(LogitsProcessor):
    """Greedy decoding that emits ``target`` token by token, then end-of-turn.

    Overrides only the decoding boundary: the model still runs its forward passes.
    """

    def __init__(self, target_ids: list[int], prompt_len: int, eos_id: int):
        self.target, self.prompt_len, self.eos = target_ids + [eos_id], prompt_len, eos_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.target[min(step, len(self.target) - 1)]] = 0.0
        return forced


def _force(backend, text: str, monkeypatch) -> None:
    qwen = backend.qwen
    tokenizer = qwen.processor.tokenizer
    target = tokenizer.encode(text, add_special_tokens=False)
    eos = qwen.model.generation_config.eos_token_id
    original = type(qwen.model).generate.__get__(qwen.model)  # the real one, even when patched before

    def generate(**kwargs):
        prompt_len = kwargs["input_ids"].shape[1]
        kwargs["logits_processor"] = LogitsProcessorList([ForceText(target, prompt_len, eos)])
        return original(**kwargs)

    monkeypatch.setattr(qwen.model, "generate", generate)


@pytest.fixture(autouse=True)
def _fresh_cache():
    qwen_vl.load_qwen.cache_clear()
    yield
    qwen_vl.load_qwen.cache_clear()


def test_random_weights_give_a_stage_error_with_the_generated_text(tiny_qwen_dir, ml_image):
    annotator = QwenVLAnnotator(name="qwen-local", model_path=str(tiny_qwen_dir), max_new_tokens=24)

    with pytest.raises(StageError) as caught:
        annotator.annotate(ml_image)

    error = caught.value
    assert error.reason.startswith("qwen-local: ")
    assert error.transient is False
    # 24 tokens of garbage: truncated (no end of turn) or not JSON; the raw text is kept.
    assert "truncated" in error.reason or "malformed JSON" in error.reason
    assert error.raw_output != ""


def test_a_valid_generation_is_parsed(tiny_qwen_dir, ml_image, monkeypatch):
    annotator = QwenVLAnnotator(name="qwen-local", model_path=str(tiny_qwen_dir), max_new_tokens=400)
    answer = annotation_json(peak="contentment", p=0.5)
    _force(annotator, answer, monkeypatch)

    result = annotator.annotate(ml_image)

    assert result.model == "qwen-local"
    assert result.label == "contentment"
    assert result.raw_output == answer
    assert result.usage.completion_tokens > 10 and result.usage.prompt_tokens > 10
    assert result.usage.cost_usd == 0.0


def test_a_truncated_generation_is_refused(tiny_qwen_dir, ml_image, monkeypatch):
    annotator = QwenVLAnnotator(name="qwen-local", model_path=str(tiny_qwen_dir), max_new_tokens=8)
    _force(annotator, annotation_json(), monkeypatch)

    with pytest.raises(StageError, match="truncated"):
        annotator.annotate(ml_image)


def test_critic_shares_the_loaded_model_and_parses(tiny_qwen_dir, ml_image, monkeypatch):
    annotator = QwenVLAnnotator(name="qwen-local", model_path=str(tiny_qwen_dir), max_new_tokens=600)
    critic = QwenVLCritic(model_path=str(tiny_qwen_dir), max_new_tokens=600)
    assert critic.qwen is annotator.qwen  # loaded once per process

    _force(annotator, annotation_json(), monkeypatch)
    result = annotator.annotate(ml_image)
    calibration = calibrate_and_merge([result], {})
    _force(critic, critic_json("0. background: x"), monkeypatch)

    verdict = critic.review(ml_image, [result], calibration)

    assert verdict.model == "critic" and len(verdict.elements) == 3


def test_missing_folder_says_how_to_get_the_weights(tmp_path):
    with pytest.raises(BackendNotConfigured, match="hf download Qwen/Qwen2.5-VL-7B-Instruct"):
        QwenVLAnnotator(name="q", model_path=str(tmp_path / "nothing"))


def test_folder_without_weights_config_is_named(tmp_path):
    with pytest.raises(BackendNotConfigured, match="has no config.json"):
        QwenVLAnnotator(name="q", model_path=str(tmp_path))


def test_device_defaults_to_auto_and_is_checked(tiny_qwen_dir):
    annotator = QwenVLAnnotator(name="q", model_path=str(tiny_qwen_dir), max_new_tokens=4)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert annotator.qwen.device.type == expected and f"on {expected}" in annotator.describe()
    with pytest.raises(BackendNotConfigured, match="option 'device' must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        QwenVLAnnotator(name="q", model_path=str(tiny_qwen_dir), device="tpu")
    with pytest.raises(BackendNotConfigured, match="cuda:99"):
        QwenVLAnnotator(name="q", model_path=str(tiny_qwen_dir), device="cuda:99")


def test_images_are_decoded_like_every_vision_backend(tiny_qwen_dir, ml_image):
    """The shared decoder refuses bytes whose size is not the stored record's (the
    boxes of the other stages would be in another frame) and undecodable bytes."""
    annotator = QwenVLAnnotator(name="q", model_path=str(tiny_qwen_dir), max_new_tokens=4)
    wrong_size = ImageInput(key="7", data=ml_image.data, width=ml_image.width * 2, height=ml_image.height, mime_type="image/png")
    not_an_image = ImageInput(key="8", data=b"not an image", width=4, height=4, mime_type="image/png")

    with pytest.raises(StageError, match="image 7 decodes to 64x48 pixels but its record says 128x48"):
        annotator.annotate(wrong_size)
    with pytest.raises(StageError, match="cannot decode image 8"):
        annotator.annotate(not_an_image)



# -- placement: a model too large for one GPU (Qwen2.5-VL 72B) ---------------------------------


def test_device_map_auto_loads_the_layers_in_place_and_never_moves_the_model(tiny_qwen_dir, ml_image, monkeypatch):
    from transformers import Qwen2_5_VLForConditionalGeneration

    seen = {}
    original = Qwen2_5_VLForConditionalGeneration.from_pretrained.__func__

    def from_pretrained(cls, *args, **kwargs):
        seen.update(kwargs)
        return original(cls, *args, **kwargs)

    def whole_model_move(self, *args, **kwargs):
        raise AssertionError("a device_map model must not be moved with .to()")

    monkeypatch.setattr(Qwen2_5_VLForConditionalGeneration, "from_pretrained", classmethod(from_pretrained))
    monkeypatch.setattr(Qwen2_5_VLForConditionalGeneration, "to", whole_model_move)

    annotator = QwenVLAnnotator(name="q72", model_path=str(tiny_qwen_dir), device_map="auto", dtype="bfloat16",
                                max_memory={"cpu": "2GiB"}, max_new_tokens=4)

    assert seen["device_map"] == "auto" and seen["max_memory"]["cpu"] in ("2GiB", 2 * 1024**3)
    model = annotator.qwen.model
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    # One CPU and no GPU here: accelerate puts every layer on the CPU (with GPUs: over all of them).
    assert {p.device.type for p in model.parameters()} == {"cpu"} and annotator.qwen.device.type == "cpu"
    with pytest.raises(StageError):  # random weights: it generates (on the placed model), then refuses the text
        annotator.annotate(ml_image)


def test_max_memory_gpu_indices_become_integers():
    assert qwen_vl._max_memory({"0": "70GiB", "1": "70GiB", "cpu": "100GiB"}) == {0: "70GiB", 1: "70GiB", "cpu": "100GiB"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device": "cpu", "device_map": "auto"}, "exclude each other"),
        ({"device_map": "everywhere"}, "option 'device_map' must be one of"),
        ({"max_memory": {"0": "70GiB"}}, "'max_memory' needs 'device_map'"),
        ({"device_map": "auto", "max_memory": "70GiB"}, "option 'max_memory' must be an object"),
    ],
)
def test_placement_options_are_checked(tiny_qwen_dir, options, message):
    with pytest.raises(BackendNotConfigured, match=message):
        QwenVLAnnotator(name="q", model_path=str(tiny_qwen_dir), **options)
