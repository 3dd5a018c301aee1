"""Writes of image files and rows: ingest with content-hash deduplication.

Pixels are checked and normalised in :mod:`annotations.image_files` (no database);
this module stores the result. Callers that must validate something against the
image size before writing (the importer) use :func:`image_find_or_prepare`, check,
then :func:`image_store`; everyone else calls :func:`image_ingest`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models.fields.files import FieldFile

from annotations.errors import InvalidImage
from annotations.image_files import PreparedImage, image_prepare, max_file_bytes, sha256_of
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


def _save_content_addressed(field_file: FieldFile, name: str, data: bytes) -> bool:
    """Store ``data`` under ``name`` (which holds the content hash); True when written now.

    A complete file already at that name holds these bytes: one left by a rolled-back
    import of the same image (a batch retried line by line, an interrupted run imported
    again) or being stored by a concurrent import. It is reused, so retries leave no
    second copy. A file of another size there (a write cut off mid-way) is left alone
    and the storage picks a free name.
    """
    target = field_file.field.generate_filename(field_file.instance, name)
    storage = field_file.storage
    if storage.exists(target) and storage.size(target) == len(data):
        field_file.name = target
        return False
    field_file.save(name, ContentFile(data), save=False)
    return True


def image_store(
    *, dataset: Dataset, candidate: ImageCandidate, original_name: str, source: str = ImageSource.WEB,
    status: str = ImageStatus.NEW,
) -> tuple[Image, bool]:
    """Store a candidate from :func:`image_find_or_prepare`: ``(image, created)``.

    Writes the file and thumbnail (named by content, see :func:`_save_content_addressed`),
    then the row in a savepoint; when a concurrent import stored the same content first,
    returns that row.
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
    _save_content_addressed(image.file, name, prepared.data)
    _save_content_addressed(image.thumbnail, f"{PurePosixPath(name).stem}.jpg", prepared.thumbnail)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        existing = Image.objects.filter(dataset=dataset, sha256=prepared.sha256).first()
        if existing is None:
            raise
        # The winner's files share our names unless the storage had to pick others.
        for ours, theirs in ((image.file, existing.file), (image.thumbnail, existing.thumbnail)):
            if ours.name != theirs.name:
                ours.delete(save=False)
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
