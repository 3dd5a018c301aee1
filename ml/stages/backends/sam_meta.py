"""Segmenter backend: Meta's ``segment_anything`` package, from a local ``.pth`` checkpoint.

``checkpoint`` is one of Meta's released files (``sam_vit_h_4b8939.pth``,
``sam_vit_l_0b3195.pth``, ``sam_vit_b_01ec64.pth``) and ``model_type`` the
matching key of ``segment_anything.sam_model_registry`` (``vit_h``, ``vit_l``,
``vit_b``; a variant registered there under its own name works the same way).
The model is built by that registry, the state dict read with
``torch.load(map_location="cpu", weights_only=True)`` and moved to ``device``.

As in :mod:`ml.stages.backends.sam_hf`, the image embedding is computed once per image
(``batch_size`` images per encoder pass) and kept in an LRU cache of
``cache_size`` entries keyed by ``ImageInput.key`` (plus size and a CRC of the
bytes); prompts are decoded with ``SamPredictor.predict_torch`` against the
cached features. Masks are COCO RLE at the image's full size with SAM's
predicted IoU (clipped to [0, 1]) as score.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from segment_anything import SamPredictor, sam_model_registry

from ml.stages.backends._sam_common import DEFAULT_CACHE_MIB, CachedSamSegmenter, Embedded
from ml.stages.backends._torch_utils import model_file, resolve_device, set_tf32
from ml.stages.backends._vision import decode_rgb
from ml.stages.types import BackendNotConfigured, ImageInput

WHAT = "SAM (segment_anything)"


def load_sam(checkpoint: str | Path | None, model_type: str) -> torch.nn.Module:
    """Build ``model_type`` with segment_anything's registry and load ``checkpoint`` into it."""
    if model_type not in sam_model_registry:
        raise BackendNotConfigured(
            f"{WHAT}: option model_type={model_type!r} is not one of {sorted(sam_model_registry)}"
        )
    path = model_file(checkpoint, what=WHAT, option="checkpoint", example="sam_vit_h_4b8939.pth")
    sam = sam_model_registry[model_type](checkpoint=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError) as exc:
        raise BackendNotConfigured(f"{WHAT}: {path} is not a readable PyTorch checkpoint: {exc}") from exc
    try:
        sam.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise BackendNotConfigured(
            f"{WHAT}: {path} does not match model_type={model_type!r} (check option model_type): {str(exc)[:500]}"
        ) from exc
    return sam


class MetaSamSegmenter(CachedSamSegmenter):
    """Options: ``checkpoint`` (local ``.pth``, required), ``model_type`` (``vit_h``,
    ``vit_l``, ``vit_b``; default ``vit_h``), ``device`` (``auto``, ``cpu``, ``cuda``,
    ``cuda:N``; default ``auto``), ``batch_size`` (images per encoder pass; default 4),
    ``cache_size`` (image embeddings kept; default 32, 0 disables), ``cache_mib`` (their
    memory at most; default 256, 0 disables) and ``tf32`` (TF32 matrix products on CUDA;
    default ``null``, torch's setting). segment_anything runs in float32 only;
    :class:`ml.stages.backends.sam_hf.HFSamSegmenter` takes a ``dtype``."""

    def __init__(
        self,
        *,
        checkpoint: str,
        model_type: str = "vit_h",
        device: str = "auto",
        batch_size: int = 4,
        cache_size: int = 32,
        cache_mib: float = DEFAULT_CACHE_MIB,
        tf32: bool | None = None,
    ):
        super().__init__(batch_size=batch_size, cache_size=cache_size, cache_mib=cache_mib)
        self.device = resolve_device(device)
        set_tf32(tf32)
        self.model_type = model_type
        self.sam = load_sam(checkpoint, model_type).to(self.device).eval()
        self.checkpoint = Path(checkpoint).expanduser()
        self.predictor = SamPredictor(self.sam)

    def describe(self) -> str:
        return f"SAM {self.model_type} (segment_anything) from {self.checkpoint} on {self.device}"

    def _encode(self, images: Sequence[ImageInput]) -> list[Embedded]:
        inputs, sizes = [], []
        for image in images:
            pixels = decode_rgb(image)  # (H, W, 3) uint8, as SamPredictor.set_image takes it
            resized = self.predictor.transform.apply_image(pixels)
            tensor = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
            inputs.append(self.sam.preprocess(tensor))  # normalised and padded to a square
            sizes.append((tuple(pixels.shape[:2]), tuple(resized.shape[:2])))
        with self._lock, torch.inference_mode():
            features = self.sam.image_encoder(torch.cat(inputs))
        return [Embedded(features[k : k + 1], *sizes[k]) for k in range(len(images))]

    def _predict(
        self,
        embedded: Embedded,
        *,
        multimask: bool,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        # Original pixels -> the resized model input, as SamPredictor.predict does.
        transform, original = self.predictor.transform, embedded.original_size
        coords = point_labels = xyxy = None
        if points is not None:
            coords = transform.apply_coords_torch(torch.from_numpy(points)[None], original).to(self.device)
            point_labels = torch.from_numpy(labels)[None].to(self.device)
        if boxes is not None:
            xyxy = transform.apply_boxes_torch(torch.from_numpy(boxes), original).to(self.device)
        with self._lock, torch.inference_mode():
            # The cached features take the place of SamPredictor.set_torch_image.
            predictor = self.predictor
            predictor.features, predictor.is_image_set = embedded.features, True
            predictor.original_size, predictor.input_size = embedded.original_size, embedded.input_size
            masks, scores, _ = predictor.predict_torch(
                coords, point_labels, boxes=xyxy, multimask_output=multimask
            )
            predictor.reset_image()
        return masks.cpu().numpy(), scores.float().cpu().numpy()
