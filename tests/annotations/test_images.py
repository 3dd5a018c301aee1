"""Image checks and normalisation (annotations.image_files) and the ingest service."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from django.db import transaction
from PIL import Image as PILImage

from annotations.errors import InvalidImage
from annotations.image_files import image_prepare
from annotations.image_services import image_ingest
from annotations.models import Image
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


def media_files(root, folder: str) -> list[str]:
    base = root / folder
    return sorted(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file()) if base.exists() else []


@pytest.mark.django_db
def test_files_are_named_by_dataset_and_content_and_a_rolled_back_store_leaves_one_copy(tmp_path, settings):
    dataset = DatasetFactory()
    data = png_bytes(64, 48, seed=7)
    with pytest.raises(RuntimeError), transaction.atomic():
        image_ingest(dataset=dataset, path_or_bytes=data, original_name="sub/boat.png")
        raise RuntimeError("the import's transaction rolls back after the file was written")
    assert not Image.objects.exists()
    left = media_files(settings.MEDIA_ROOT, "images")
    digest = hashlib.sha256(data).hexdigest()
    assert left == [f"images/{dataset.pk}/{digest[:2]}/boat-{digest[:12]}.png"]
    image, created = image_ingest(dataset=dataset, path_or_bytes=data, original_name="sub/boat.png")
    assert created and image.file.name == left[0] and image.file.read() == data
    assert media_files(settings.MEDIA_ROOT, "images") == left  # reused, not copied again
    assert len(media_files(settings.MEDIA_ROOT, "thumbs")) == 1


@pytest.mark.django_db
def test_a_cut_off_file_under_the_name_is_not_reused(settings):
    dataset = DatasetFactory()
    data = png_bytes(64, 48, seed=8)
    digest = hashlib.sha256(data).hexdigest()
    cut = settings.MEDIA_ROOT / f"images/{dataset.pk}/{digest[:2]}/boat-{digest[:12]}.png"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(data[: len(data) // 2])
    image, _ = image_ingest(dataset=dataset, path_or_bytes=data, original_name="boat.png")
    assert image.file.name != str(cut.relative_to(settings.MEDIA_ROOT))
    assert image.file.read() == data


@pytest.mark.django_db
def test_losing_a_race_for_the_same_content_keeps_the_winners_files(settings, monkeypatch):
    """Two imports store the same bytes; the second one's row insert hits the unique
    constraint. It returns the winner's row and the winner's files stay readable."""
    from annotations import image_services

    dataset = DatasetFactory()
    data = png_bytes(64, 48, seed=9)
    candidate = image_services.image_find_or_prepare(dataset=dataset, data=data)  # before the winner stored it
    winner, _ = image_ingest(dataset=dataset, path_or_bytes=data, original_name="a.png")
    loser, created = image_services.image_store(dataset=dataset, candidate=candidate, original_name="a.png")
    assert not created and loser.pk == winner.pk
    assert winner.file.storage.exists(winner.file.name) and winner.thumbnail.storage.exists(winner.thumbnail.name)
    assert len(media_files(settings.MEDIA_ROOT, "images")) == 1


@pytest.mark.django_db
def test_ingest_of_a_bad_file_writes_nothing(tmp_path, settings):
    dataset = DatasetFactory()
    with pytest.raises(InvalidImage, match="not an image"):
        image_ingest(dataset=dataset, path_or_bytes=b"%PDF-1.7 not a picture", original_name="x.jpg")
    with pytest.raises(InvalidImage, match="not found"):
        image_ingest(dataset=dataset, path_or_bytes=tmp_path / "missing.jpg")
    assert not Image.objects.exists()
    assert not (settings.MEDIA_ROOT / "images").exists()


def test_mpo_phone_jpeg_is_kept_as_a_jpeg():
    """An MPO (a phone camera's JPEG with a second picture) is found by the JPEG opener and
    opened again after its check the same way: kept byte for byte, stored as a JPEG."""
    first = PILImage.new("RGB", (40, 30), (200, 30, 30))
    buffer = io.BytesIO()
    first.save(buffer, format="MPO", save_all=True, append_images=[PILImage.new("RGB", (40, 30), (0, 0, 200))])
    data = buffer.getvalue()
    assert PILImage.open(io.BytesIO(data)).format == "MPO"
    prepared = image_prepare(data, sha256=hashlib.sha256(data).hexdigest())
    assert (prepared.format, prepared.width, prepared.height, prepared.reencoded) == ("JPEG", 40, 30, False)
    assert prepared.data == data and prepared.sha256 == hashlib.sha256(data).hexdigest()
