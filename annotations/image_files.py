"""Image checking and normalisation with Pillow (no database).

:func:`image_prepare` turns untrusted file bytes into what the database stores,
or raises :class:`annotations.errors.InvalidImage` with a reason a person can act
on. Order of the checks:

1. the header is parsed (``Image.open`` is lazy) and the pixel count it claims is
   compared with the cap (``EMOVERSE_MAX_IMAGE_PIXELS``) *before* anything is
   decoded, so a decompression bomb costs a few bytes of reading;
2. the whole image is decoded (``load``) with truncated files refused;
3. the EXIF orientation is applied (``core.pixels.upright``): width, height,
   boxes and masks are always in the frame of the *stored* pixels;
4. the stored bytes are the original file, untouched, when it is already a
   browser-safe JPEG, PNG, WebP or GIF in a standard mode and was not rotated;
   otherwise the pixels are re-encoded: PNG for alpha, 16-bit and lossless
   sources, JPEG (quality 95) for JPEG sources (CMYK, rotated);
5. a JPEG thumbnail no larger than ``EMOVERSE_THUMBNAIL_SIZE`` on its long side.

The dedupe key is the SHA-256 of the *original* file bytes.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image as PILImage

from annotations.errors import InvalidImage
from core.pixels import (
    HIGH_BIT_DEPTH_MODES,
    TRANSPOSING_ORIENTATIONS,
    browser_pixels,
    exif_orientation,
    to_rgb,
    upright,
)

# Formats every browser displays, and the modes in which we keep a file as it is.
_BROWSER_SAFE_MODES = {
    "JPEG": {"L", "RGB"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA"},
    "WEBP": {"RGB", "RGBA"},
    "GIF": {"L", "P"},
    "MPO": {"L", "RGB"},  # what Pillow calls the JPEGs of many phone cameras
}
_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}
THUMBNAIL_QUALITY = 85
REENCODE_JPEG_QUALITY = 95
# A compressed file is never much larger than its raw pixels; a bigger file is refused unread.
MAX_BYTES_PER_PIXEL = 8


@dataclass(frozen=True)
class PreparedImage:
    """What is stored for one image. ``width``/``height`` are those of ``data``."""

    data: bytes
    format: str  # JPEG | PNG | WEBP | GIF
    width: int
    height: int
    sha256: str  # of the original file bytes
    thumbnail: bytes  # JPEG
    transposed: bool  # an EXIF orientation was applied
    reencoded: bool  # ``data`` is not the original file

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.format]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def max_file_bytes(max_pixels: int | None = None) -> int:
    """Files larger than this are refused without being read."""
    return (max_pixels or settings.EMOVERSE_MAX_IMAGE_PIXELS) * MAX_BYTES_PER_PIXEL + 1024 * 1024


def _open(data: bytes, max_pixels: int, formats: tuple[str, ...] | None = None) -> PILImage.Image:
    """Open lazily (header only) and refuse bombs before any pixel is decoded (``formats``:
    the only formats to try, when known)."""
    try:
        with warnings.catch_warnings():
            # Our own cap decides below; Pillow's warning would only duplicate it.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            image = PILImage.open(io.BytesIO(data), formats=formats)
    except PILImage.DecompressionBombError as exc:
        raise InvalidImage(f"decompression bomb refused: {exc}") from exc
    except PILImage.UnidentifiedImageError as exc:
        raise InvalidImage("not an image: Pillow cannot identify the file format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"corrupt or truncated image: the header cannot be read ({type(exc).__name__}: {exc})") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"image header claims an empty size {width}x{height}")
    if width * height > max_pixels:
        raise InvalidImage(
            f"decompression bomb refused: the header claims {width}x{height} = {width * height:,} pixels, "
            f"more than the cap of {max_pixels:,} (EMOVERSE_MAX_IMAGE_PIXELS)"
        )
    return image


def _decode(data: bytes, max_pixels: int) -> PILImage.Image:
    """Verify the file's structure, then decode every pixel; truncated files fail here."""
    image = _open(data, max_pixels)
    try:
        image.verify()  # checks chunk CRCs (PNG) and structure without decoding
        # verify() leaves the object unusable: open again, trying only the format found (an MPO
        # is found by the JPEG opener, which has no entry of its own: then every format is tried)
        image = _open(data, max_pixels, (image.format,) if image.format in PILImage.OPEN else None)
        image.load()
    except InvalidImage:
        raise
    except Exception as exc:  # Pillow's decoders raise many types on hostile input
        raise InvalidImage(f"corrupt or truncated image ({type(exc).__name__}: {exc})") from exc
    return image


def _encode(image: PILImage.Image, source_format: str, icc_profile: bytes | None) -> tuple[bytes, str]:
    pixels = browser_pixels(image)
    lossy_source = source_format in {"JPEG", "MPO"} and image.mode not in HIGH_BIT_DEPTH_MODES
    fmt = "JPEG" if lossy_source and pixels.mode in {"L", "RGB"} else "PNG"
    buffer = io.BytesIO()
    options: dict = {"quality": REENCODE_JPEG_QUALITY} if fmt == "JPEG" else {"optimize": False}
    if icc_profile and pixels.mode == image.mode:  # a CMYK profile does not describe RGB pixels
        options["icc_profile"] = icc_profile
    pixels.save(buffer, format=fmt, **options)
    return buffer.getvalue(), fmt


def _thumbnail(image: PILImage.Image, size: int) -> bytes:
    pixels = to_rgb(browser_pixels(image))
    pixels.thumbnail((size, size), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    pixels.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def image_prepare(data: bytes, *, max_pixels: int | None = None, thumbnail_size: int | None = None,
                  sha256: str | None = None) -> PreparedImage:
    """Check ``data`` (the bytes of an image file) and return what to store (``sha256``: the
    hash of ``data`` when the caller has it).

    Raises :class:`InvalidImage` for non-images, corrupt or truncated files and
    images with more than ``max_pixels`` pixels (default
    ``settings.EMOVERSE_MAX_IMAGE_PIXELS``).
    """
    max_pixels = max_pixels or settings.EMOVERSE_MAX_IMAGE_PIXELS
    thumbnail_size = thumbnail_size or settings.EMOVERSE_THUMBNAIL_SIZE
    if not data:
        raise InvalidImage("the file is empty")
    if len(data) > max_file_bytes(max_pixels):
        raise InvalidImage(f"the file has {len(data):,} bytes, more than any image under the pixel cap needs")
    image = _decode(data, max_pixels)
    source_format = image.format or ""
    icc_profile = image.info.get("icc_profile")
    orientation = exif_orientation(image)
    transposed = orientation in TRANSPOSING_ORIENTATIONS
    if transposed:
        try:
            image = upright(image)
        except Exception as exc:  # a malformed EXIF block
            raise InvalidImage(f"EXIF orientation {orientation} could not be applied ({type(exc).__name__}: {exc})") from exc
    keep = not transposed and image.mode in _BROWSER_SAFE_MODES.get(source_format, set())
    if keep:
        stored, fmt = data, "JPEG" if source_format == "MPO" else source_format
    else:
        stored, fmt = _encode(image, source_format, icc_profile)
    return PreparedImage(
        data=stored,
        format=fmt,
        width=image.width,
        height=image.height,
        sha256=sha256 or sha256_of(data),
        thumbnail=_thumbnail(image, thumbnail_size),
        transposed=transposed,
        reencoded=not keep,
    )
