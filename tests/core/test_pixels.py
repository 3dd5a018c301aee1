"""EXIF orientation and pixel modes (core.pixels)."""

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from core.pixels import browser_pixels, exif_orientation, to_8bit, to_rgb, upright

RED, BLUE = (255, 0, 0), (0, 0, 255)


def png_with_orientation(orientation: int) -> PILImage.Image:
    """A 4x2 (w x h) image: red on the left half, blue on the right, with the EXIF orientation tag."""
    pixels = np.zeros((2, 4, 3), dtype=np.uint8)
    pixels[:, :2] = RED
    pixels[:, 2:] = BLUE
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, "RGB").save(buffer, format="PNG", exif=exif)
    return PILImage.open(io.BytesIO(buffer.getvalue()))


def test_an_exif_rotated_image_is_turned_upright():
    image = png_with_orientation(6)  # stored sideways: turn 90 degrees clockwise to show
    assert exif_orientation(image) == 6
    turned = upright(image)
    assert turned.size == (2, 4)
    assert turned.getpixel((0, 0)) == RED and turned.getpixel((1, 0)) == RED
    assert turned.getpixel((0, 3)) == BLUE and turned.getpixel((1, 3)) == BLUE


def test_a_mirrored_image_is_flipped():
    turned = upright(png_with_orientation(2))
    assert turned.size == (4, 2)
    assert turned.getpixel((0, 0)) == BLUE and turned.getpixel((3, 0)) == RED


@pytest.mark.parametrize("orientation", [1, 0, 9])
def test_an_orientation_that_asks_for_nothing_leaves_the_image_alone(orientation):
    image = png_with_orientation(orientation)
    assert upright(image) is image


def test_no_exif_means_no_orientation():
    image = PILImage.new("RGB", (3, 2))
    assert exif_orientation(image) is None and upright(image) is image


def test_16_bit_greyscale_is_scaled_by_257():
    image = PILImage.fromarray(np.array([[0, 257, 65535]], dtype=np.uint16))
    eight = to_8bit(image)
    assert eight.mode == "L" and np.asarray(eight).tolist() == [[0, 1, 255]]


def test_float_greyscale_is_stretched_from_its_minimum_to_its_maximum():
    eight = to_8bit(PILImage.fromarray(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32), "F"))
    assert np.asarray(eight).tolist() == [[0, 128, 255]]
    flat = to_8bit(PILImage.fromarray(np.full((1, 2), 7.5, dtype=np.float32), "F"))
    assert np.asarray(flat).tolist() == [[0, 0]]


def test_transparency_is_composited_over_white():
    rgba = PILImage.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (10, 20, 30, 255))
    rgb = to_rgb(rgba)
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255) and rgb.getpixel((1, 0)) == (10, 20, 30)
    half = to_rgb(PILImage.new("LA", (1, 1), (0, 128)))
    assert half.getpixel((0, 0)) == (127, 127, 127)


def test_rgb_comes_back_as_a_copy():
    image = PILImage.new("RGB", (2, 2), (1, 2, 3))
    copy = to_rgb(image)
    assert copy is not image and copy.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize(
    ("image", "mode", "pixel"),
    [
        (PILImage.new("1", (1, 1), 1), "L", 255),
        (PILImage.new("L", (1, 1), 9), "L", 9),
        (PILImage.new("CMYK", (1, 1), (0, 0, 0, 0)), "RGB", (255, 255, 255)),
        (PILImage.fromarray(np.array([[65535]], dtype=np.uint16)), "L", 255),
    ],
)
def test_browser_pixels_modes(image, mode, pixel):
    shown = browser_pixels(image)
    assert shown.mode == mode and shown.getpixel((0, 0)) == pixel


def test_a_palette_with_transparency_keeps_its_alpha_for_browsers():
    palette = PILImage.new("P", (1, 1), 0)
    palette.putpalette([200, 10, 10] + [0, 0, 0] * 255)
    palette.info["transparency"] = 0
    assert browser_pixels(palette).mode == "RGBA"
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)
