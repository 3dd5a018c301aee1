"""Writes of image files and rows: ingest with content-hash deduplication.

Pixels are checked and normalised in :mod:`annotations.images` (no database);
this module stores the result. Callers that must validate something against the
image size before writing (the importer) use :func:`image_find_or_prepare`, check,
then :func:`image_store`; everyone else calls :func:`image_ingest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from annotations.errors import InvalidImage
from annotations.images import PreparedImage, image_prepare, max_file_bytes, sha256_of
from annotations.models import Dataset, Image, ImageSource, ImageStatus


@dataclass(frozen=True)
class ImageCandidate:
    """An image file, either already stored in the dataset (``existing``) or checked and ready to store."""

    sha256: str
    width: int
    height: int
    existing: Image | None = None
    prepared: PreparedImage | None = None


def read_image_file(path: Path) -> bytes:
    """The bytes of an image file, refusing ones too large to be an image under the pixel cap."""
    try:
        size = path.stat().st_size
        limit = max_file_bytes()
        if size > limit:
            raise InvalidImage(f"{path.name}: {size:,} bytes, more than any image under the pixel cap needs ({limit:,})")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidImage(f"image file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise InvalidImage(f"not a file: {path}") from exc
    except PermissionError as exc:
        raise InvalidImage(f"image file not readable (permission denied): {path}") from exc
    except OSError as exc:
        raise InvalidImage(f"image file not readable ({exc.strerror or exc}): {path}") from exc


def image_find_or_prepare(*, dataset: Dataset, data: bytes) -> ImageCandidate:
    """The stored image with this content, or the checked pixels ready for :func:`image_store`.

    A known content hash costs no decoding. Raises :class:`InvalidImage`.
    """
    digest = sha256_of(data)
    existing = Image.objects.filter(dataset=dataset, sha256=digest).first()
    if existing is not None:
        return ImageCandidate(sha256=digest, width=existing.width, height=existing.height, existing=existing)
    prepared = image_prepare(data)
    return ImageCandidate(sha256=digest, width=prepared.width, height=prepared.height, prepared=prepared)


def _stored_name(original_name: str, prepared: PreparedImage) -> str:
    stem = PurePosixPath(original_name.replace("\\", "/")).stem[:80] or "image"
    return f"{stem}-{prepared.sha256[:12]}{prepared.extension}"


def image_store(
    *, dataset: Dataset, candidate: ImageCandidate, original_name: str, source: str = ImageSource.WEB,
    status: str = ImageStatus.NEW,
) -> tuple[Image, bool]:
    """Store a candidate from :func:`image_find_or_prepare`: ``(image, created)``.

    Writes the file and thumbnail, then the row in a savepoint; when a concurrent
    import stored the same content first, returns that row.
    """
    if candidate.existing is not None:
        return candidate.existing, False
    prepared = candidate.prepared
    if source not in ImageSource.values:
        raise InvalidImage(f"unknown source {source!r}; expected one of {', '.join(ImageSource.values)}")
    name = _stored_name(original_name, prepared)
    image = Image(
        dataset=dataset, sha256=prepared.sha256, original_name=original_name[:500], width=prepared.width,
        height=prepared.height, source=source, status=status,
    )
    image.file.save(name, ContentFile(prepared.data), save=False)
    image.thumbnail.save(f"{PurePosixPath(name).stem}.jpg", ContentFile(prepared.thumbnail), save=False)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        image.file.delete(save=False)
        image.thumbnail.delete(save=False)
        existing = Image.objects.filter(dataset=dataset, sha256=prepared.sha256).first()
        if existing is None:
            raise
        return existing, False
    return image, True


def image_ingest(
    *, dataset: Dataset, path_or_bytes: Path | str | bytes, original_name: str = "", source: str = ImageSource.WEB,
) -> tuple[Image, bool]:
    """Check, normalise and store one image file in ``dataset``, deduplicated by content.

    ``path_or_bytes`` is a file path or the file's bytes. Returns ``(image, created)``;
    ``created`` is False when the dataset already holds the same bytes. Raises
    :class:`InvalidImage` with the reason for unusable files.
    """
    if isinstance(path_or_bytes, bytes):
        data = path_or_bytes
    else:
        path = Path(path_or_bytes)
        data = read_image_file(path)
        original_name = original_name or path.name
    candidate = image_find_or_prepare(dataset=dataset, data=data)
    return image_store(dataset=dataset, candidate=candidate, original_name=original_name or "upload", source=source)
