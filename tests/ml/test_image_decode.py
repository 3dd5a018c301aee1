"""Decoding of stored image bytes for the vision backends (ml/stages/backends/_vision.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageOps

from ml.stages.backends._vision import decode_image, decode_rgb
from ml.stages.types import ImageInput, StageError
from tests.ml.vision_fixtures import image_input


def test_rgb_png_round_trips_exactly():
    pixels = np.random.default_rng(0).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    decoded = decode_rgb(image_input(PILImage.fromarray(pixels, "RGB")))
    assert decoded.dtype == np.uint8 and decoded.shape == (7, 11, 3)
    assert np.array_equal(decoded, pixels)


def test_exif_orientation_is_applied():
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :10] = (255, 0, 0)  # a red band on the left
    source = PILImage.fromarray(pixels, "RGB")
    exif = source.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    source.save(buf, format="JPEG", exif=exif.tobytes(), quality=100)
    upright = ImageOps.exif_transpose(PILImage.open(io.BytesIO(buf.getvalue())))
    assert upright.size == (20, 40)
    image = ImageInput(key="r", data=buf.getvalue(), width=20, height=40)
    decoded = decode_rgb(image)
    assert decoded.shape == (40, 20, 3)
    assert decoded[:10, :, 0].mean() > 200 and decoded[-10:, :, 0].mean() < 60  # the band is now on top
    # The record must describe the displayed frame: the raw (unrotated) size is refused.
    with pytest.raises(StageError, match="decodes to 20x40 pixels but its record says 40x20"):
        decode_image(ImageInput(key="r", data=buf.getvalue(), width=40, height=20))


def test_transparency_is_composited_over_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2] = (10, 20, 30, 255)  # opaque top half, transparent black bottom half
    decoded = decode_rgb(image_input(PILImage.fromarray(rgba, "RGBA")))
    assert decoded.shape == (4, 4, 3)
    assert (decoded[:2] == (10, 20, 30)).all()
    assert (decoded[2:] == 255).all()
    la = PILImage.fromarray(rgba[..., [0, 3]], "LA")
    assert (decode_rgb(image_input(la))[2:] == 255).all()


def test_greyscale_palette_and_cmyk_become_rgb():
    grey = decode_rgb(image_input(PILImage.new("L", (5, 3), 77)))
    assert grey.shape == (3, 5, 3) and (grey == 77).all()
    palette = PILImage.new("RGB", (5, 3), (200, 10, 10)).convert("P", palette=PILImage.Palette.ADAPTIVE)
    assert (decode_rgb(image_input(palette)) == (200, 10, 10)).all()
    cmyk = PILImage.new("CMYK", (6, 4), (0, 255, 255, 0))  # pure red in CMYK
    decoded = decode_rgb(image_input(cmyk, fmt="JPEG", quality=100))
    assert decoded.shape == (4, 6, 3)
    assert decoded[..., 0].min() > 200 and decoded[..., 1:].max() < 60
    bilevel = decode_rgb(image_input(PILImage.new("1", (3, 3), 1)))
    assert (bilevel == 255).all()


def test_sixteen_bit_greyscale_is_scaled_to_eight_bits():
    values = np.array([[0, 257 * 100], [65535, 257 * 20]], dtype=np.uint16)
    image = image_input(PILImage.fromarray(values))
    assert PILImage.open(io.BytesIO(image.data)).mode in {"I;16", "I"}
    decoded = decode_rgb(image)
    assert decoded.dtype == np.uint8
    assert decoded[..., 0].tolist() == [[0, 100], [255, 20]]
    assert (decoded[..., 0] == decoded[..., 2]).all()


def test_float_greyscale_is_stretched():
    values = np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32)
    decoded = decode_rgb(image_input(PILImage.fromarray(values, "F"), fmt="TIFF"))
    assert decoded[..., 0].tolist() == [[0, 64], [128, 255]]


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20],
)
def test_undecodable_bytes_are_a_stage_error(data):
    with pytest.raises(StageError, match="cannot decode image k") as raised:
        decode_image(ImageInput(key="k", data=data, width=1, height=1))
    assert raised.value.transient is False


def test_truncated_file_is_a_stage_error():
    whole = image_input(
        PILImage.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    )
    with pytest.raises(StageError, match="cannot decode image 1"):
        decode_image(ImageInput(key="1", data=whole.data[: len(whole.data) // 2], width=64, height=64))

