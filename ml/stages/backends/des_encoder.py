"""DesEncoder backend: a 1024-d DES vector from a local vision backbone and a linear head.

``model_path`` is a local folder in Hugging Face format holding

* a vision backbone, either
  - anything ``AutoModel`` loads whose output has ``pooler_output`` or
    ``last_hidden_state``: ViT, DINOv2, ConvNeXt, a CLIP/SigLIP vision model, or a
    full CLIP/SigLIP model (its vision tower is used), with its image processor; or
  - a Qwen2.5-VL checkpoint (``model_type`` ``qwen2_5_vl``): only its vision tower
    is kept after loading (the language model is dropped);
* the projection head ``des_head.safetensors`` (preferred) or ``des_head.pt``:
  the state dict of a ``torch.nn.Linear(in_features, 1024)`` — keys ``weight``
  ``(1024, in_features)`` and optionally ``bias`` ``(1024,)`` — where
  ``in_features`` is the backbone's feature size (``hidden_size``; for
  Qwen2.5-VL ``vision_config.out_hidden_size``).

The pooled feature of an image is the backbone's ``pooler_output`` when it has
one (CLS-based for ViT/CLIP/DINOv2, global average for ConvNeXt), otherwise the
mean of ``last_hidden_state`` over tokens; for Qwen2.5-VL the mean of the
image's merged vision tokens. The head maps it to 1024 dimensions; with
``normalize`` (default) the vector is L2-normalised, so dot products are cosine
similarities and the vectors sit on the unit sphere (re-normalise after
interpolating). Output: ``float32`` ``(n, 1024)``.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    Qwen2_5_VLForConditionalGeneration,
)

from core.vocabulary import DES_DIM
from ml.stages.backends._torch_utils import (
    CONFIG_FILE,
    PROCESSOR_FILES,
    WEIGHT_FILES,
    batched,
    model_folder,
    positive_int,
    resolve_device,
    set_tf32,
)
from ml.stages.backends._vision import decode_image
from ml.stages.types import BackendNotConfigured, ImageInput

WHAT = "DES encoder"
REQUIRED_FILES = (
    CONFIG_FILE,
    PROCESSOR_FILES,
    WEIGHT_FILES,
    "des_head.safetensors|des_head.pt",
)
QWEN_VL_TYPES = ("qwen2_5_vl",)
DTYPES = {  # the same names as _torch_utils.DTYPES
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def load_head(folder: Path, in_features: int) -> torch.nn.Linear:
    """The ``Linear(in_features, 1024)`` saved in ``folder`` as ``des_head.safetensors`` or ``des_head.pt``."""
    path = folder / "des_head.safetensors"
    try:
        if path.is_file():
            state = load_file(str(path))
        else:
            path = folder / "des_head.pt"
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        SafetensorError,
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        OSError,
    ) as exc:
        raise BackendNotConfigured(f"{WHAT}: cannot read {path}: {exc}") from exc
    if not isinstance(state, dict) or "weight" not in state or not set(state) <= {"weight", "bias"}:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise BackendNotConfigured(
            f"{WHAT}: {path} must hold a Linear's state dict (weight, bias), got {keys}"
        )
    weight = state["weight"]
    if tuple(weight.shape) != (DES_DIM, in_features):
        raise BackendNotConfigured(
            f"{WHAT}: {path} weight has shape {tuple(weight.shape)}, expected ({DES_DIM}, {in_features}): "
            f"in_features must be the backbone's feature size {in_features}, out_features {DES_DIM}"
        )
    head = torch.nn.Linear(in_features, DES_DIM, bias="bias" in state)
    head.load_state_dict({k: v.float() for k, v in state.items()})
    return head.eval()


class _Backbone(Protocol):
    """A loaded backbone: ``features(pils)`` gives an ``(n, in_features)`` float32 tensor."""

    in_features: int

    def features(self, pils: list[Any]) -> torch.Tensor: ...


class _AutoBackbone:
    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype):
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=dtype)
        # Full CLIP/SigLIP-style models: keep the vision tower only.
        tower = (
            model.vision_model
            if hasattr(model, "get_image_features") and hasattr(model, "vision_model")
            else model
        )
        config = getattr(model.config, "vision_config", None) or model.config
        size = getattr(config, "hidden_size", None) or (getattr(config, "hidden_sizes", None) or [None])[-1]
        if not isinstance(size, int):
            raise BackendNotConfigured(
                f"{WHAT}: cannot tell the feature size of {type(model).__name__} from {path}/config.json"
            )
        self.in_features = size
        self.tower = tower.to(device).eval()
        self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        self.device, self.dtype = device, dtype

    def features(self, pils: list[Any]) -> torch.Tensor:
        inputs = self.processor(images=pils, return_tensors="pt")
        outputs = self.tower(pixel_values=inputs["pixel_values"].to(self.device, self.dtype))
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            pooled = outputs.last_hidden_state.mean(dim=1)
        return pooled.flatten(1).float()


class _QwenVisionBackbone:
    def __init__(self, path: Path, device: torch.device, dtype: torch.dtype):
        full = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, local_files_only=True, dtype=dtype)
        self.visual = full.model.visual.to(device).eval()
        del full  # the language model is not needed
        self.in_features = int(self.visual.config.out_hidden_size)
        self.merge = int(self.visual.spatial_merge_size)
        self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        self.device, self.dtype = device, dtype

    def features(self, pils: list[Any]) -> torch.Tensor:
        inputs = self.processor(images=pils, return_tensors="pt")
        grid = inputs["image_grid_thw"].to(self.device)
        outputs = self.visual(inputs["pixel_values"].to(self.device, self.dtype), grid_thw=grid)
        tokens = outputs.pooler_output if hasattr(outputs, "pooler_output") else outputs
        sizes = (grid.prod(-1) // self.merge**2).tolist()
        return torch.stack([chunk.float().mean(dim=0) for chunk in torch.split(tokens, sizes)])


class VisionDesEncoder:
    """Options: ``model_path`` (local folder with the backbone and ``des_head.*``,
    required), ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``; default ``auto``),
    ``dtype`` of the backbone (``float32``, ``bfloat16``, ``float16``; default
    ``float32``; the head runs in float32), ``batch_size`` (default 16),
    ``normalize`` (L2-normalise the vectors; default ``True``) and ``tf32`` (TF32 matrix
    products on CUDA; default ``null``, torch's setting)."""

    def __init__(
        self,
        *,
        model_path: str,
        device: str = "auto",
        dtype: str = "float32",
        batch_size: int = 16,
        normalize: bool = True,
        tf32: bool | None = None,
    ):
        set_tf32(tf32)
        if dtype not in DTYPES:
            raise BackendNotConfigured(
                f"{WHAT}: option 'dtype' must be one of {sorted(DTYPES)}, got {dtype!r}"
            )
        self.batch_size = positive_int(batch_size, "batch_size")
        self.normalize = bool(normalize)
        self.path = model_folder(model_path, what=WHAT, required=REQUIRED_FILES)
        self.device = resolve_device(device)
        config = AutoConfig.from_pretrained(self.path, local_files_only=True)
        backbone_class = _QwenVisionBackbone if config.model_type in QWEN_VL_TYPES else _AutoBackbone
        self.backbone: _Backbone = backbone_class(self.path, self.device, DTYPES[dtype])
        self.head = load_head(self.path, self.backbone.in_features).to(self.device)
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"DES encoder from {self.path} on {self.device} ({self.backbone.in_features} -> {DES_DIM})"

    def encode(self, images: Sequence[ImageInput]) -> np.ndarray:
        """``(n, 1024)`` ``float32``, one DES vector per image (unit L2 norm with ``normalize``).

        Raises :class:`ml.stages.types.StageError` when an image cannot be decoded.
        """
        out = np.zeros((len(images), DES_DIM), dtype=np.float32)
        start = 0
        for batch in batched(list(images), self.batch_size):
            pils = [decode_image(image) for image in batch]
            with self._lock, torch.inference_mode():
                vectors = self.head(self.backbone.features(pils))
                if self.normalize:
                    vectors = torch.nn.functional.normalize(vectors, dim=-1)
            out[start : start + len(batch)] = vectors.cpu().numpy()
            start += len(batch)
        return out
