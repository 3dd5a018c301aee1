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
import json
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
# accelerate's placements: the layers spread over every visible GPU (then CPU) by free memory.
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
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


def placement(device: str, device_map: Any, max_memory: Any) -> str:
    """``device_map`` and ``max_memory`` checked, as a hashable key (JSON) for :func:`load_qwen`."""
    if device_map is None:
        if max_memory is not None:
            raise BackendNotConfigured("option 'max_memory' needs 'device_map' (e.g. \"auto\")")
        return ""
    if device != "auto":
        raise BackendNotConfigured(
            f"options 'device' ({device!r}) and 'device_map' exclude each other: device_map places the "
            "layers itself (\"auto\" spreads them over every visible GPU); leave 'device' out"
        )
    if not (device_map in DEVICE_MAPS or (isinstance(device_map, dict) and device_map)):
        raise BackendNotConfigured(
            f"option 'device_map' must be one of {list(DEVICE_MAPS)} or an object of module -> device, got {device_map!r}"
        )
    if max_memory is not None and not (isinstance(max_memory, dict) and max_memory):
        raise BackendNotConfigured(f"option 'max_memory' must be an object like {{\"0\": \"70GiB\", \"cpu\": \"200GiB\"}}, got {max_memory!r}")
    return json.dumps({"device_map": device_map, "max_memory": max_memory}, sort_keys=True)


@functools.lru_cache(maxsize=2)
def load_qwen(
    model_path: str, device: str, dtype: str, min_pixels: int | None, max_pixels: int | None, placed: str = ""
) -> QwenVL:
    """Load (once per process) the model and processor of one folder; ``placed``: see :func:`placement`."""
    return QwenVL(_check_folder(model_path), device=device, dtype=dtype, min_pixels=min_pixels, max_pixels=max_pixels,
                  placed=placed)


def _max_memory(max_memory: dict[str, str] | None) -> dict[int | str, str] | None:
    """JSON keys are strings; accelerate wants GPU indices as integers."""
    if max_memory is None:
        return None
    return {int(k) if str(k).isdigit() else k: v for k, v in max_memory.items()}


class QwenVL:
    """The loaded model: chat-template a prompt with one image, generate greedily.

    With a ``device_map`` (``placed``) the weights are loaded straight onto their devices by
    accelerate, layer by layer, sharded over the visible GPUs (Qwen2.5-VL 72B in bfloat16 needs
    about 150 GB: two 80 GB GPUs at least); the model is never moved as a whole with ``.to``.
    Inputs go to the device of the first layers; accelerate's hooks carry them on.
    """

    def __init__(
        self, path: Path, *, device: str, dtype: str, min_pixels: int | None, max_pixels: int | None, placed: str = ""
    ):
        # Heavy imports here, not at module level: see the module docstring.
        import torch
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        from ml.stages.backends._torch_utils import resolve_device

        if dtype not in DTYPES:
            raise BackendNotConfigured(f"option 'dtype' must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.path = path
        self._torch = torch
        pixel_options = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True, **pixel_options)
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        if placed:
            where = json.loads(placed)
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                path, local_files_only=True, dtype=torch_dtype, device_map=where["device_map"],
                max_memory=_max_memory(where["max_memory"]),
            )
            self.device = self.model.get_input_embeddings().weight.device
        else:
            self.device = resolve_device(device)
            self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
                path, local_files_only=True, dtype=torch_dtype
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
        device_map: str | dict[str, Any] | None = None,
        max_memory: dict[str, str] | None = None,
    ):
        self.name = name
        self.prompts = PromptChoice(prompt, mikels_default=prompts[0], any_default=prompts[1])
        self.prompt = self.prompts.mikels
        self.max_new_tokens = max_new_tokens
        placed = placement(device, device_map, max_memory)
        self.qwen = load_qwen(str(model_path), device, dtype, min_pixels, max_pixels, placed)

    def describe(self) -> str:
        spread = getattr(self.qwen.model, "hf_device_map", None)
        where = (f"sharded over {', '.join(sorted({str(d) for d in spread.values()}))} (device_map)" if spread
                 else f"on {self.qwen.device}")
        return f"Qwen2.5-VL from {self.qwen.path} {where}, prompt {self.prompts.version}"

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
    CPU; or ``cpu``, ``cuda``, ``cuda:1``), or instead ``device_map`` (``"auto"``: the
    layers sharded over every visible GPU, as a 72B model needs; ``balanced``,
    ``sequential``, or an object of module -> device) with optional ``max_memory``
    (``{"0": "70GiB", "1": "70GiB"}``),
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
