"""Segmenter backend: SAM through transformers (``SamModel``), from a local folder.

``model_path`` is a folder in Hugging Face format (``config.json``, the weights,
the processor config), e.g.
``hf download facebook/sam-vit-huge --local-dir /models/sam-vit-huge``, loaded
once with ``local_files_only=True``.

The image embedding (the expensive part: the ViT encoder) is computed once per
image, ``batch_size`` images per encoder pass, and kept in an LRU cache of
``cache_size`` entries keyed by ``ImageInput.key`` (plus the image's size and a
CRC of its bytes), so :meth:`refine` after :meth:`segment` (or a second click)
only runs the small prompt encoder and mask decoder (see
:class:`ml.stages.backends._sam_common.CachedSamSegmenter`).

Masks come back at the image's full size as COCO RLE, with SAM's predicted IoU
(clipped to [0, 1]) as :attr:`ml.stages.types.Mask.score`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import SamModel, SamProcessor

from ml.stages.backends._sam_common import DEFAULT_CACHE_MIB, CachedSamSegmenter, Embedded
from ml.stages.backends._torch_utils import (
    CONFIG_FILE,
    PROCESSOR_FILES,
    WEIGHT_FILES,
    load_pretrained,
    model_folder,
    resolve_device,
    resolve_dtype,
    set_tf32,
)
from ml.stages.backends._vision import decode_image
from ml.stages.types import ImageInput

WHAT = "SAM (transformers)"
REQUIRED_FILES = (CONFIG_FILE, PROCESSOR_FILES, WEIGHT_FILES)


class HFSamSegmenter(CachedSamSegmenter):
    """Options: ``model_path`` (local folder, required), ``device`` (``auto``, ``cpu``,
    ``cuda``, ``cuda:N``; default ``auto``), ``batch_size`` (images per encoder pass;
    default 4), ``cache_size`` (image embeddings kept; default 32, 0 disables), ``cache_mib``
    (their memory at most; default 256, 0 disables), ``dtype`` (``float32``, ``bfloat16``,
    ``float16``; default ``float32``) and ``tf32`` (TF32 matrix products on CUDA; default
    ``null``, torch's setting).

    Masks are upsampled to the image's size on the model's device and only the boolean
    masks are copied to the host."""

    def __init__(
        self,
        *,
        model_path: str,
        device: str = "auto",
        batch_size: int = 4,
        cache_size: int = 32,
        cache_mib: float = DEFAULT_CACHE_MIB,
        dtype: str = "float32",
        tf32: bool | None = None,
    ):
        super().__init__(batch_size=batch_size, cache_size=cache_size, cache_mib=cache_mib)
        self.dtype = resolve_dtype(dtype, what=WHAT)
        self.path = model_folder(model_path, what=WHAT, required=REQUIRED_FILES)
        self.device = resolve_device(device)
        set_tf32(tf32)
        self.processor = SamProcessor.from_pretrained(self.path, local_files_only=True)
        self.model = load_pretrained(SamModel, self.path, device=self.device, dtype=self.dtype)

    def describe(self) -> str:
        return f"SAM (transformers) from {self.path} on {self.device} ({str(self.dtype).removeprefix('torch.')})"

    def _encode(self, images: Sequence[ImageInput]) -> list[Embedded]:
        encoded = self.processor(images=[decode_image(image) for image in images], return_tensors="pt")
        with self._lock, torch.inference_mode():
            features = self.model.get_image_embeddings(encoded["pixel_values"].to(self.device, self.dtype))
        return [
            Embedded(
                features=features[k : k + 1],
                original_size=tuple(int(v) for v in encoded["original_sizes"][k]),
                input_size=tuple(int(v) for v in encoded["reshaped_input_sizes"][k]),
            )
            for k in range(len(images))
        ]

    def _predict(
        self,
        embedded: Embedded,
        *,
        multimask: bool,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        # Original pixels -> the resized model input (what SamProcessor does to prompts).
        (h, w), (ih, iw) = embedded.original_size, embedded.input_size
        scale = np.array([iw / w, ih / h], dtype=np.float32)
        prompts: dict[str, torch.Tensor] = {}
        if points is not None:
            prompts["input_points"] = torch.from_numpy(points * scale)[None, None]  # (1, 1, n, 2)
            prompts["input_labels"] = torch.from_numpy(labels)[None, None]  # (1, 1, n)
        if boxes is not None:
            prompts["input_boxes"] = torch.from_numpy(boxes * np.tile(scale, 2))[None]  # (1, P, 4)
        with self._lock, torch.inference_mode():
            outputs = self.model(
                image_embeddings=embedded.features,
                multimask_output=multimask,
                **{k: v.to(self.device) for k, v in prompts.items()},
            )
            # Upsampled to the padded input, cropped and upsampled to the image on the device;
            # only the boolean masks (a byte per pixel) travel to the host.
            masks = self.processor.post_process_masks(
                [outputs.pred_masks[0].float()], [embedded.original_size], [embedded.input_size]
            )[0]
        return masks.cpu().numpy(), outputs.iou_scores[0].float().cpu().numpy()
