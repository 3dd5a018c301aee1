"""Annotator and Critic backends: a local Qwen2.5-VL folder through transformers.

``model_path`` is a folder in Hugging Face format (``config.json``,
``model*.safetensors``, the processor and tokenizer files, a chat template),
e.g. ``hf download Qwen/Qwen2.5-VL-7B-Instruct --local-dir /models/qwen2.5-vl-7b``.
It is loaded with ``local_files_only=True``: nothing is fetched at run time.
The model is loaded once per process and shared by an annotator and a critic
pointing at the same folder. Prompts and answer validation are the same as the
OpenAI-compatible backends (:mod:`ml.stages.prompts`, :mod:`ml.stages.parsing`).

Both backends declare ``default_queue = "gpu"``: their tasks go to the GPU workers
unless the configuration entry names another queue. The web process reads that
attribute when it sends work, so torch and transformers are imported only when a
model is loaded (:class:`QwenVL`), never at import of this module.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.triplets import PhraseTriplet
from ml.stages.backends._vision import decode_image
from ml.stages.parsing import check_completion, parse_annotation, parse_critic
from ml.stages.prompts import Prompt, PromptChoice, render_annotate, render_critic
from ml.stages.types import (
    AnnotatorResult,
    BackendNotConfigured,
    CalibrationResult,
    CriticResult,
    ImageInput,
    StageError,
    Usage,
)

DTYPES = ("auto", "float32", "bfloat16", "float16")  # "auto": the dtype saved with the weights
REQUIRED_FILES = ("config.json", "preprocessor_config.json|processor_config.json", "tokenizer.json|vocab.json")


def _check_folder(model_path: str) -> Path:
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise BackendNotConfigured(
            f"Qwen2.5-VL folder {path} does not exist: download it with "
            f"`hf download Qwen/Qwen2.5-VL-7B-Instruct --local-dir {path}` and set options.model_path"
        )
    for alternatives in REQUIRED_FILES:
        if not any((path / name).is_file() for name in alternatives.split("|")):
            raise BackendNotConfigured(f"Qwen2.5-VL folder {path} has no {alternatives.replace('|', ' or ')}")
    return path


@functools.lru_cache(maxsize=2)
def load_qwen(model_path: str, device: str, dtype: str, min_pixels: int | None, max_pixels: int | None) -> QwenVL:
    """Load (once per process) the model and processor of one folder."""
    return QwenVL(_check_folder(model_path), device=device, dtype=dtype, min_pixels=min_pixels, max_pixels=max_pixels)


class QwenVL:
    """The loaded model: chat-template a prompt with one image, generate greedily."""

    def __init__(self, path: Path, *, device: str, dtype: str, min_pixels: int | None, max_pixels: int | None):
        # Heavy imports here, not at module level: see the module docstring.
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        from ml.stages.backends._torch_utils import resolve_device

        if dtype not in DTYPES:
            raise BackendNotConfigured(f"option 'dtype' must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.path = path
        self.device = resolve_device(device)
        self._torch = torch
        pixel_options = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True, **pixel_options)
        self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            path, local_files_only=True, dtype=dtype if dtype == "auto" else getattr(torch, dtype)
        ).to(self.device)
        self.model.eval()
        self._lock = threading.Lock()  # one generate() at a time per loaded model

    def generation_options(self) -> dict[str, Any]:
        """Extra keyword arguments for ``generate`` (a hook for logits processors)."""
        return {}

    def generate(self, prompt: str, image: ImageInput, *, max_new_tokens: int) -> tuple[str, str, Usage]:
        """Return ``(text, finish_reason, usage)``; finish_reason is ``stop`` or ``length``.

        The image is decoded like every vision backend's (:func:`decode_image`: EXIF
        orientation, transparency over white, high bit depths); :class:`StageError` when
        it cannot be."""
        pil = decode_image(image)
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], images=[pil], return_tensors="pt").to(self.device)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        with self._lock, self._torch.inference_mode():
            output = self.model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, **self.generation_options()
            )
        generated = output[0, inputs["input_ids"].shape[1] :].tolist()
        stopped = bool(generated) and generated[-1] in eos_ids
        finish_reason = "stop" if stopped or len(generated) < max_new_tokens else "length"
        answer = self.processor.tokenizer.decode(generated, skip_special_tokens=True)
        usage = Usage(prompt_tokens=int(inputs["input_ids"].shape[1]), completion_tokens=len(generated))
        return answer, finish_reason, usage


class _QwenBackend:
    default_queue = "gpu"  # a local model: its tasks go to the GPU workers (ml.stages.registry)

    def __init__(
        self,
        *,
        name: str,
        model_path: str,
        prompt: str | None,
        prompts: tuple[str, str],
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 1024,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
    ):
        self.name = name
        self.prompts = PromptChoice(prompt, mikels_default=prompts[0], any_default=prompts[1])
        self.prompt = self.prompts.mikels
        self.max_new_tokens = max_new_tokens
        self.qwen = load_qwen(str(model_path), device, dtype, min_pixels, max_pixels)

    def describe(self) -> str:
        return f"Qwen2.5-VL from {self.qwen.path} on {self.qwen.device}, prompt {self.prompts.version}"

    def _prompt(self, image: ImageInput) -> Prompt:
        try:
            return self.prompts.for_taxonomy(image.taxonomy)
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}") from exc

    def _ask(self, text: str, image: ImageInput) -> tuple[str, Usage]:
        answer, finish_reason, usage = self.qwen.generate(text, image, max_new_tokens=self.max_new_tokens)
        try:
            return check_completion(answer, finish_reason=finish_reason), usage
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}", raw_output=exc.raw_output) from exc


class QwenVLAnnotator(_QwenBackend):
    """Options: ``name``, ``model_path``, ``device`` (``auto``: CUDA when visible, else
    CPU; or ``cpu``, ``cuda``, ``cuda:1``),
    ``dtype`` (``auto``, ``bfloat16``, ``float16``, ``float32``), ``max_new_tokens``,
    ``min_pixels``/``max_pixels`` (image resolution bounds of the processor) and
    ``prompt`` (default ``annotate_v1`` for a Mikels dataset, ``annotate_v2`` for any other taxonomy)."""

    def __init__(self, *, name: str, model_path: str, prompt: str | None = None, **options: Any):
        super().__init__(name=name, model_path=model_path, prompt=prompt, prompts=("annotate_v1", "annotate_v2"), **options)

    def annotate(self, image: ImageInput) -> AnnotatorResult:
        prompt = self._prompt(image)
        raw, usage = self._ask(render_annotate(prompt, image.taxonomy), image)
        try:
            return parse_annotation(raw, model=self.name, prompt_version=prompt.version, usage=usage,
                                    labels=image.taxonomy.labels)
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}", raw_output=exc.raw_output) from exc


class QwenVLCritic(_QwenBackend):
    """Same options as :class:`QwenVLAnnotator`; ``prompt`` defaults to ``critic_v1`` for a
    Mikels dataset, ``critic_v2`` for any other taxonomy."""

    def __init__(self, *, model_path: str, name: str = "critic", prompt: str | None = None, **options: Any):
        super().__init__(name=name, model_path=model_path, prompt=prompt, prompts=("critic_v1", "critic_v2"), **options)

    def review(
        self,
        image: ImageInput,
        results: Sequence[AnnotatorResult],
        calibration: CalibrationResult,
        triplets: Sequence[PhraseTriplet] | None = None,
    ) -> CriticResult:
        prompt = self._prompt(image)
        candidates, text = render_critic(prompt, results, calibration, triplets, image.taxonomy)
        raw, usage = self._ask(text, image)
        try:
            return parse_critic(raw, model=self.name, prompt_version=prompt.version, triplets=candidates, usage=usage,
                                labels=image.taxonomy.labels)
        except StageError as exc:
            raise StageError(f"{self.name}: {exc.reason}", raw_output=exc.raw_output) from exc
