"""What the two SAM backends share: the embedding cache, batching, prompt checks, mask output.

:class:`CachedSamSegmenter` implements :class:`ml.stages.protocols.Segmenter` on top of
two model-specific steps a subclass provides: ``_encode`` (one batched image
encoder pass) and ``_predict`` (prompt encoder + mask decoder against one cached
embedding). Coordinates handed to ``_predict`` are absolute pixels ``XYXY`` /
``(x, y)`` of the original image; the subclass maps them to its model input.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from core.masks import encode_mask
from ml.stages.backends._torch_utils import LRUCache, batched, image_fingerprint, positive_int
from ml.stages.types import BackendNotConfigured, Box, ImageInput, Mask

BOXES_PER_PASS = 16  # mask-decoder passes are chunked so full-size masks stay bounded in memory
# Image embeddings kept per segmenter (an LRU by bytes): SAM ViT-H's is 256x64x64 float32, 4 MiB.
DEFAULT_CACHE_MIB = 256


@dataclass(frozen=True)
class Embedded:
    """One image's encoder output ``(1, C, h, w)`` on the model's device, the original
    ``(height, width)`` and the ``(height, width)`` it was resized to before padding."""

    features: torch.Tensor
    original_size: tuple[int, int]
    input_size: tuple[int, int]


class CachedSamSegmenter(ABC):
    """A SAM segmenter whose image embeddings are computed in batches and kept in an LRU cache
    keyed by ``ImageInput.key`` (plus the image's size and a CRC of its bytes): at most
    ``cache_size`` images and ``cache_mib`` MiB, each entry a copy of its own (never a view
    of the batch's tensor), so the pipeline's batches and click-to-refine share it."""

    def __init__(self, *, batch_size: int, cache_size: int, cache_mib: float = DEFAULT_CACHE_MIB):
        self.batch_size = positive_int(batch_size, "batch_size")
        if isinstance(cache_mib, bool) or not isinstance(cache_mib, (int, float)) or not cache_mib >= 0:
            raise BackendNotConfigured(f"cache_mib must be a number of MiB >= 0, got {cache_mib!r}")
        self.cache = LRUCache[Embedded](
            positive_int(cache_size, "cache_size", minimum=0) if cache_mib > 0 else 0,
            max_bytes=int(cache_mib * 2**20),
            sizeof=lambda e: e.features.numel() * e.features.element_size(),
        )
        self._lock = threading.Lock()  # one model call at a time per instance

    @abstractmethod
    def _encode(self, images: Sequence[ImageInput]) -> list[Embedded]:
        """One image-encoder pass over ``images`` (at most ``batch_size``)."""

    @abstractmethod
    def _predict(
        self,
        embedded: Embedded,
        *,
        multimask: bool,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(P, M, H, W)`` bool at the original size and predicted IoUs ``(P, M)``.

        Either ``boxes`` ``(P, 4)`` (one mask per box) or ``points`` ``(n, 2)`` with
        ``labels`` ``(n,)`` and optionally one box ``(1, 4)`` (``P`` = 1).
        """

    def embed(self, images: Sequence[ImageInput]) -> list[Embedded]:
        """The embedding of every image: from the cache, or computed in batches (and cached)."""
        keys = [image_fingerprint(image) for image in images]
        found: dict[Hashable, Embedded] = {}
        missing: dict[Hashable, ImageInput] = {}
        for key, image in zip(keys, images):
            if key not in found and key not in missing:
                cached = self.cache.get(key)
                if cached is None:
                    missing[key] = image
                else:
                    found[key] = cached
        for batch in batched(list(missing.items()), self.batch_size):
            for (key, _), embedded in zip(batch, self._encode([image for _, image in batch])):
                # A slice of the batch's output would keep the whole batch tensor alive in the cache.
                embedded = replace(embedded, features=embedded.features.clone())
                self.cache.put(key, embedded)
                found[key] = embedded
        return [found[key] for key in keys]

    def segment(self, images: Sequence[ImageInput], boxes: Sequence[Sequence[Box]]) -> list[list[Mask]]:
        """Batched: one mask per box (absolute pixel ``XYXY`` in the image's frame).

        Each mask is a COCO RLE of the image's full ``[height, width]`` with SAM's
        predicted IoU as score. Images without boxes are not embedded. Raises
        :class:`ml.stages.types.StageError` when an image cannot be decoded.
        """
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} lists of boxes")
        wanted = [i for i, bs in enumerate(boxes) if bs]
        embedded = dict(zip(wanted, self.embed([images[i] for i in wanted])))
        results: list[list[Mask]] = [[] for _ in images]
        for i in wanted:
            for chunk in batched(list(boxes[i]), BOXES_PER_PASS):
                xyxy = np.array([b.as_list() for b in chunk], dtype=np.float32)
                masks, scores = self._predict(embedded[i], multimask=False, boxes=xyxy)
                results[i].extend(to_masks(masks[:, 0], scores[:, 0]))
        return results

    def refine(
        self,
        image: ImageInput,
        box: Box | None,
        points: Sequence[tuple[float, float]],
        point_labels: Sequence[int],
    ) -> Mask:
        """Click-to-refine: absolute pixel ``(x, y)`` clicks labelled 1 (inside) or 0
        (outside), with an optional box. Reuses the cached embedding of ``image``.

        A single click without a box is ambiguous: SAM's three candidate masks are
        computed and the one with the highest predicted IoU is returned.
        """
        check_clicks(box, points, point_labels)
        embedded = self.embed([image])[0]
        masks, scores = self._predict(
            embedded,
            multimask=box is None and len(points) == 1,
            points=np.array(points, dtype=np.float32) if points else None,
            labels=np.array(point_labels, dtype=np.int64) if points else None,
            boxes=np.array([box.as_list()], dtype=np.float32) if box is not None else None,
        )
        best = int(np.argmax(scores[0]))
        return to_masks(masks[0, best : best + 1], scores[0, best : best + 1])[0]


def check_clicks(box: Box | None, points: Sequence[tuple[float, float]], point_labels: Sequence[int]) -> None:
    """``ValueError`` unless the prompt is a box and/or clicks with one 0/1 label each."""
    if len(points) != len(point_labels):
        raise ValueError(f"{len(points)} points but {len(point_labels)} point labels")
    if box is None and not points:
        raise ValueError("refine needs a box or at least one click")
    for label in point_labels:
        if label not in (0, 1):
            raise ValueError(f"point labels are 1 (inside) or 0 (outside), got {label!r}")
    for point in points:
        if len(point) != 2 or not all(math.isfinite(float(v)) for v in point):
            raise ValueError(f"a click is a pair of finite pixel coordinates (x, y), got {point!r}")


def to_masks(masks: np.ndarray, scores: np.ndarray) -> list[Mask]:
    """``(N, H, W)`` boolean masks and ``(N,)`` predicted IoUs as :class:`Mask` objects
    (COCO RLE, score clipped to [0, 1]: SAM's IoU head is a regression)."""
    return [Mask(rle=encode_mask(m), score=min(max(float(s), 0.0), 1.0)) for m, s in zip(masks, scores)]
