"""Pixels and masks for the vision backends: image decoding and COCO RLE (no torch).

* :func:`decode_image` turns :class:`ml.stages.types.ImageInput` bytes into an RGB
  Pillow image in the frame of the stored file (``image.width`` x
  ``image.height``); :func:`decode_rgb` gives the same pixels as an ``(H, W, 3)``
  ``uint8`` array.
* :func:`encode_mask` / :func:`decode_mask` convert between an ``(H, W)`` binary
  array and a COCO RLE dict ``{"size": [H, W], "counts": str}`` (pycocotools'
  compressed string, column-major), the mask format of :class:`ml.stages.types.Mask`.

Decoding mirrors what the importer stores and what a browser shows: the EXIF
orientation is applied, transparency is composited over white, 16-bit, 32-bit
and float greyscale are scaled to 8 bits and every other mode (``1``, ``L``,
``P``, ``CMYK``, ``YCbCr``, ...) is converted to RGB.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps
from pycocotools import mask as mask_utils

from ml.stages.types import ImageInput, StageError

_EXIF_ORIENTATION = 0x0112
_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
WHITE = (255, 255, 255)


def decode_image(image: ImageInput) -> PILImage.Image:
    """The image as an RGB Pillow image of size ``(image.width, image.height)``.

    Raises :class:`StageError` (not transient) when the bytes are not a
    decodable image, are truncated, or decode to another size than the one the
    :class:`ImageInput` claims (boxes and masks would be in the wrong frame).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(image.data)) as opened:
                opened.load()
                pil = _apply_orientation(opened)
                rgb = _to_rgb(pil)
    except (
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        PILImage.DecompressionBombError,
    ) as exc:
        raise StageError(f"cannot decode image {image.key}: {type(exc).__name__}: {exc}") from exc
    if rgb.size != (image.width, image.height):
        raise StageError(
            f"image {image.key} decodes to {rgb.width}x{rgb.height} pixels "
            f"but its record says {image.width}x{image.height}"
        )
    return rgb


def decode_rgb(image: ImageInput) -> np.ndarray:
    """The image as an ``(H, W, 3)`` ``uint8`` RGB array (see :func:`decode_image`)."""
    return np.asarray(decode_image(image), dtype=np.uint8)


def _apply_orientation(pil: PILImage.Image) -> PILImage.Image:
    try:
        orientation = pil.getexif().get(_EXIF_ORIENTATION)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError):
        return pil  # unreadable EXIF: browsers ignore it too
    if orientation in (None, 1):
        return pil
    return ImageOps.exif_transpose(pil)


def _to_rgb(pil: PILImage.Image) -> PILImage.Image:
    mode = pil.mode
    if mode == "RGB":
        return pil.copy()
    if mode in _HIGH_BIT_DEPTH_MODES:
        return _to_8bit(pil).convert("RGB")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in pil.info):
        rgba = pil.convert("RGBA")
        background = PILImage.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return pil.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV, RGBX


def _to_8bit(pil: PILImage.Image) -> PILImage.Image:
    """16-bit, 32-bit integer and float greyscale scaled to 8-bit ``L`` (as the importer does)."""
    values = np.asarray(pil).astype(np.float64)
    if pil.mode != "F" and values.size and values.min() >= 0 and values.max() <= 65535:
        scaled = values / 257.0  # the full 16-bit range onto 0..255
    else:
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return PILImage.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def encode_mask(mask: np.ndarray) -> dict[str, object]:
    """COCO RLE of an ``(H, W)`` boolean or 0/1 array: ``{"size": [H, W], "counts": str}``."""
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    return {
        "size": [int(mask.shape[0]), int(mask.shape[1])],
        "counts": rle["counts"].decode("ascii"),
    }


def decode_mask(rle: Mapping[str, object]) -> np.ndarray:
    """The ``(H, W)`` ``uint8`` 0/1 array of a COCO RLE dict (``counts`` as str or bytes)."""
    counts = rle["counts"]
    size = [int(v) for v in rle["size"]]  # type: ignore[union-attr]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return mask_utils.decode({"size": size, "counts": counts})
