"""Image checks and normalisation (annotations.images) and the ingest service."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

from annotations.errors import InvalidImage
from annotations.images import image_prepare
from annotations.models import Image
from annotations.services_images import image_ingest
from tests.factories import DatasetFactory, png_bytes


def encode(image: PILImage.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> PILImage.Image:
    image = PILImage.open(io.BytesIO(data))
    image.load()
    return image


def marked_rgb(width: int = 64, height: int = 48) -> PILImage.Image:
    """Grey image with a red block in the top-left corner (to follow rotations)."""
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    pixels[:8, :8] = (255, 0, 0)
    return PILImage.fromarray(pixels, "RGB")


def png_with_header_size(width: int, height: int) -> bytes:
    """A small real PNG whose IHDR is rewritten to claim ``width`` x ``height`` (CRC fixed)."""
    data = bytearray(png_bytes(16, 16, seed=3))
    ihdr_start = 8 + 8  # signature, then length + type of the IHDR chunk
    data[ihdr_start:ihdr_start + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr_start + 13]))
    data[ihdr_start + 13:ihdr_start + 17] = struct.pack(">I", crc)
    return bytes(data)


# --- kept as they are ----------------------------------------------------------------


def test_browser_safe_jpeg_is_kept_byte_for_byte_with_size_hash_and_thumbnail(settings):
    settings.EMOVERSE_THUMBNAIL_SIZE = 32
    original = encode(marked_rgb(64, 48), "JPEG", quality=90)
    prepared = image_prepare(original)
    assert prepared.data == original and not prepared.reencoded and not prepared.transposed
    assert (prepared.format, prepared.width, prepared.height) == ("JPEG", 64, 48)
    assert prepared.sha256 == hashlib.sha256(original).hexdigest()
    thumb = decode(prepared.thumbnail)
    assert thumb.format == "JPEG" and max(thumb.size) == 32 and thumb.size == (32, 24)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "1"])
def test_standard_png_modes_are_kept(mode):
    original = encode(marked_rgb().convert(mode), "PNG")
    prepared = image_prepare(original)
    assert prepared.data == original and prepared.format == "PNG" and not prepared.reencoded


def test_palette_png_with_transparency_is_kept_and_its_thumbnail_is_flattened():
    palette = marked_rgb().convert("P")
    original = encode(palette, "PNG", transparency=0)
    assert decode(original).info.get("transparency") == 0
    prepared = image_prepare(original)
    assert prepared.data == original and not prepared.reencoded
    assert decode(prepared.thumbnail).mode == "RGB"


# --- re-encoded ------------------------------------------------------------------------


def test_exif_rotated_jpeg_stores_the_transposed_pixels():
    exif = PILImage.Exif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise
    original = encode(marked_rgb(64, 48), "JPEG", quality=95, exif=exif.tobytes())
    prepared = image_prepare(original)
    assert prepared.transposed and prepared.reencoded
    assert (prepared.width, prepared.height) == (48, 64)  # the stored frame
    stored = np.asarray(decode(prepared.data).convert("RGB")).astype(int)
    assert stored.shape == (64, 48, 3)
    # The red block of the top-left corner is now in the top-right corner.
    assert stored[3, 44, 0] > 200 and stored[3, 44, 1] < 60
    assert stored[3, 3, 0] < 200
    assert decode(prepared.data).getexif().get(0x0112) in (None, 1)
    assert prepared.sha256 == hashlib.sha256(original).hexdigest()  # dedupe key: the original file


def test_cmyk_jpeg_is_reencoded_as_rgb_jpeg():
    original = encode(marked_rgb().convert("CMYK"), "JPEG", quality=95)
    assert decode(original).mode == "CMYK"
    prepared = image_prepare(original)
    stored = decode(prepared.data)
    assert prepared.reencoded and prepared.format == "JPEG" and stored.mode == "RGB"
    red = np.asarray(stored)[3, 3]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_16bit_png_is_scaled_to_8bit_png():
    values = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    original = encode(PILImage.fromarray(values), "PNG")
    assert decode(original).mode.startswith("I")
    prepared = image_prepare(original)
    stored = decode(prepared.data)
    assert prepared.reencoded and prepared.format == "PNG" and stored.mode == "L"
    pixels = np.asarray(stored)
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255
    assert np.all(np.diff(pixels.astype(int).ravel()) >= 0)  # order kept


def test_palette_with_transparency_in_tiff_becomes_rgba_png():
    original = encode(marked_rgb().convert("RGBA"), "TIFF")
    prepared = image_prepare(original)
    stored = decode(prepared.data)
    assert prepared.reencoded and prepared.format == "PNG" and stored.mode == "RGBA"


def test_bmp_becomes_png_with_the_same_pixels():
    source = marked_rgb()
    prepared = image_prepare(encode(source, "BMP"))
    assert prepared.format == "PNG"
    assert np.array_equal(np.asarray(decode(prepared.data)), np.asarray(source))


# --- refused -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"name,label\nboat,fear\n", "not an image"),
        (encode(marked_rgb(), "JPEG")[:400], "truncated"),
        (encode(PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)), "JPEG")[:3000],
         "truncated"),
        (png_bytes(64, 48, seed=1)[:300], "corrupt or truncated"),
    ],
    ids=["empty", "text-file", "jpeg-cut-in-header", "jpeg-cut-in-scan", "truncated-png"],
)
def test_unusable_files_are_refused_with_the_reason(data, reason):
    with pytest.raises(InvalidImage, match=reason):
        image_prepare(data)


def test_png_with_a_corrupt_chunk_is_refused():
    data = bytearray(png_bytes(64, 48, seed=2))
    idat = data.index(b"IDAT")
    data[idat + 20] ^= 0xFF  # flip a byte inside the compressed pixels
    with pytest.raises(InvalidImage, match="corrupt"):
        image_prepare(bytes(data))


def test_decompression_bomb_is_refused_from_its_header_before_decoding():
    bomb = png_with_header_size(100_000, 100_000)
    assert len(bomb) < 2000
    with pytest.raises(InvalidImage, match="decompression bomb"):
        image_prepare(bomb)


def test_pixel_cap_comes_from_settings(settings):
    settings.EMOVERSE_MAX_IMAGE_PIXELS = 1000
    with pytest.raises(InvalidImage, match=r"64x48 = 3,072 pixels, more than the cap of 1,000"):
        image_prepare(png_bytes(64, 48))
    settings.EMOVERSE_MAX_IMAGE_PIXELS = 4000
    assert image_prepare(png_bytes(64, 48)).width == 64


def test_header_between_cap_and_pillow_limit_is_refused_by_our_cap(settings):
    settings.EMOVERSE_MAX_IMAGE_PIXELS = 10_000
    with pytest.raises(InvalidImage, match="more than the cap of 10,000"):
        image_prepare(png_with_header_size(200, 200))


# --- ingest service ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_ingest_stores_file_and_thumbnail_and_deduplicates_by_content(tmp_path):
    dataset = DatasetFactory()
    path = tmp_path / "boat.png"
    path.write_bytes(png_bytes(64, 48, seed=5))
    image, created = image_ingest(dataset=dataset, path_or_bytes=path, source="emoset")
    assert created and (image.width, image.height, image.source) == (64, 48, "emoset")
    assert image.original_name == "boat.png"
    assert image.file.read() == path.read_bytes()
    assert decode(image.thumbnail.read()).format == "JPEG"
    again, created_again = image_ingest(dataset=dataset, path_or_bytes=path.read_bytes(), original_name="copy.png")
    assert not created_again and again.pk == image.pk
    other, created_other = image_ingest(dataset=DatasetFactory(), path_or_bytes=path)
    assert created_other and other.pk != image.pk  # deduplicated per dataset
    assert Image.objects.count() == 2


@pytest.mark.django_db
def test_ingest_of_a_bad_file_writes_nothing(tmp_path, settings):
    dataset = DatasetFactory()
    with pytest.raises(InvalidImage, match="not an image"):
        image_ingest(dataset=dataset, path_or_bytes=b"%PDF-1.7 not a picture", original_name="x.jpg")
    with pytest.raises(InvalidImage, match="not found"):
        image_ingest(dataset=dataset, path_or_bytes=tmp_path / "missing.jpg")
    assert not Image.objects.exists()
    assert not (settings.MEDIA_ROOT / "images").exists()
