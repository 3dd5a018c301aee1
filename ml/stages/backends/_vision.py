"""Pixels for the vision backends: image decoding (no torch).

* :func:`decode_image` turns :class:`ml.stages.types.ImageInput` bytes into an RGB
  Pillow image in the frame of the stored file (``image.width`` x
  ``image.height``); :func:`decode_rgb` gives the same pixels as an ``(H, W, 3)``
  ``uint8`` array.

Decoding mirrors what the importer stores and what a browser shows (both through
:mod:`core.pixels`): the EXIF orientation is applied, transparency is composited
over white, 16-bit, 32-bit and float greyscale are scaled to 8 bits and every
other mode (``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ...) is converted to RGB.
Masks are encoded and decoded by :mod:`core.masks`.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image as PILImage

from core.pixels import to_rgb, upright
from ml.stages.types import ImageInput, StageError


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
                rgb = to_rgb(upright(opened))
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

