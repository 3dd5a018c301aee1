"""Pixels as the importer stores them and the models see them: EXIF orientation and modes (no Django).

* :func:`upright` applies the EXIF orientation (``ImageOps.exif_transpose``), so width,
  height, boxes and masks are in the frame a browser shows; an unreadable EXIF block
  counts as no orientation (browsers ignore it too).
* :func:`to_8bit` scales 16-bit, 32-bit and float greyscale to 8-bit ``L``.
* :func:`browser_pixels` gives the pixels in a mode browsers show (``L``, ``LA``, ``RGB``,
  ``RGBA``); :func:`to_rgb` gives ``RGB`` with transparency composited over white.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

HIGH_BIT_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
TRANSPOSING_ORIENTATIONS = frozenset({2, 3, 4, 5, 6, 7, 8})
WHITE = (255, 255, 255)
_EXIF_ORIENTATION = 0x0112


def exif_orientation(image: PILImage.Image) -> int | None:
    """The EXIF orientation tag (1-8), or None when absent or unreadable (browsers ignore it then too)."""
    try:
        return image.getexif().get(_EXIF_ORIENTATION)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError):
        return None


def upright(image: PILImage.Image) -> PILImage.Image:
    """The image turned as its EXIF orientation says; ``image`` itself when it says nothing to do.

    A malformed EXIF block can make the transposition raise (any exception type).
    """
    if exif_orientation(image) not in TRANSPOSING_ORIENTATIONS:
        return image
    return ImageOps.exif_transpose(image)


def to_8bit(image: PILImage.Image) -> PILImage.Image:
    """16-bit, 32-bit integer and float greyscale scaled to 8-bit ``L``.

    Integers within 0..65535 are scaled as 16-bit (``/ 257``); anything else (floats,
    negative or larger integers) is stretched from its minimum to its maximum.
    """
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return PILImage.fromarray(array, "L")
    values = array.astype(np.float64)
    if np.issubdtype(array.dtype, np.integer) and values.size and values.min() >= 0 and values.max() <= 65535:
        scaled = values / 257.0  # the full 16-bit range onto 0..255
    else:
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return PILImage.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def browser_pixels(image: PILImage.Image) -> PILImage.Image:
    """The pixels in a mode browsers show correctly: L, LA, RGB or RGBA (``image`` itself when it is one)."""
    mode = image.mode
    if mode in {"L", "LA", "RGB", "RGBA"}:
        return image
    if mode == "1":
        return image.convert("L")
    if mode in HIGH_BIT_DEPTH_MODES:
        return to_8bit(image)
    if mode in {"P", "PA"}:
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode == "La":
        return image.convert("LA")
    if mode in {"RGBa", "RGBX"}:
        return image.convert("RGBA" if mode == "RGBa" else "RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def to_rgb(image: PILImage.Image) -> PILImage.Image:
    """A new ``RGB`` image: transparency composited over white, high bit depths scaled to 8 bits."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in HIGH_BIT_DEPTH_MODES:
        return to_8bit(image).convert("RGB")
    if mode in ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = PILImage.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV, RGBX
