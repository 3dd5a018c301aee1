"""Reads of image files, and writes of image files and rows: ingest with content-hash deduplication.

Pixels are checked and normalised in :mod:`annotations.image_files` (no database);
this module reads files (:func:`read_image_file`: regular files only, with a size limit)
and stores the result. Callers that must validate something against the
image size before writing (the importer) use :func:`image_find_or_prepare`, check,
optionally write the files before their transaction opens (:func:`image_store_files`),
then :func:`image_store`; everyone else calls :func:`image_ingest`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models.fields.files import FieldFile

from annotations.errors import InvalidImage
from annotations.image_files import PreparedImage, image_prepare, max_file_bytes, sha256_of
from annotations.models import Dataset, Image, ImageSource, ImageStatus

_NOT_REGULAR = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


@dataclass(frozen=True)
class ImageCandidate:
    """An image file, either already stored in the dataset (``existing``) or checked and ready
    to store: its pixels (``prepared``), or once :func:`image_store_files` wrote them, the
    names of its file and thumbnail (``files``)."""

    sha256: str
    width: int
    height: int
    existing: Image | None = None
    prepared: PreparedImage | None = None
    files: tuple[str, str] | None = None


def _refuse_unless_regular(mode: int, path: Path) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "a special file")
    raise InvalidImage(f"not a regular file ({kind}): {path}")


def _read_regular_file(path: Path, limit: int) -> bytes:
    """Read ``path`` when it is a regular file of at most ``limit`` bytes. Nothing here waits
    for a writer: the mode is checked before the file is opened, and the open is non-blocking
    (a FIFO swapped in between is refused on the opened descriptor)."""
    try:
        _refuse_unless_regular(os.stat(path).st_mode, path)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            _refuse_unless_regular(info.st_mode, path)
            if info.st_size > limit:
                raise InvalidImage(f"{path.name}: {info.st_size:,} bytes, more than the limit of {limit:,} bytes per image")
            data = file.read(limit + 1)
    except FileNotFoundError as exc:
        raise InvalidImage(f"image file not found: {path}") from exc
    except PermissionError as exc:
        raise InvalidImage(f"image file not readable (permission denied): {path}") from exc
    except OSError as exc:
        raise InvalidImage(f"image file not readable ({exc.strerror or exc}): {path}") from exc
    if len(data) > limit:  # it grew after the size was checked
        raise InvalidImage(f"{path.name}: more than the limit of {limit:,} bytes per image")
    return data


def read_image_file(path: Path) -> bytes:
    """The bytes of an image file. Raises :class:`InvalidImage` for anything that is not a
    regular file (a FIFO, a socket, a device, a folder: refused without waiting) and a file
    larger than ``EMOVERSE_MAX_IMAGE_BYTES`` or than any image under the pixel cap needs
    (refused unread).

    A read can still stall in the kernel (a hung network mount): the importer calls this in
    worker processes that it kills after ``EMOVERSE_IMAGE_READ_TIMEOUT_S``
    (:mod:`annotations.importers.file_workers`).
    """
    return _read_regular_file(path, min(settings.EMOVERSE_MAX_IMAGE_BYTES, max_file_bytes()))


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


def image_store_files(*, dataset: Dataset, candidate: ImageCandidate, original_name: str) -> ImageCandidate:
    """Write the file and thumbnail of a new candidate (named by content, see
    :func:`_save_content_addressed`; no database access) and return the candidate with
    their names in place of the pixels. A candidate with nothing to write is returned as it is.
    """
    prepared = candidate.prepared
    if candidate.existing is not None or prepared is None:
        return candidate
    name = _stored_name(original_name, prepared)
    image = Image(dataset=dataset, sha256=prepared.sha256)  # all that the upload paths need
    _save_content_addressed(image.file, name, prepared.data)
    _save_content_addressed(image.thumbnail, f"{PurePosixPath(name).stem}.jpg", prepared.thumbnail)
    return replace(candidate, prepared=None, files=(image.file.name, image.thumbnail.name))


def image_store(
    *, dataset: Dataset, candidate: ImageCandidate, original_name: str, source: str = ImageSource.WEB,
    status: str = ImageStatus.NEW,
) -> tuple[Image, bool]:
    """Store a candidate from :func:`image_find_or_prepare`: ``(image, created)``.

    Writes the file and thumbnail unless :func:`image_store_files` did, then the row in
    a savepoint; when a concurrent import stored the same content first, returns that row.
    """
    if candidate.existing is not None:
        return candidate.existing, False
    if source not in ImageSource.values:
        raise InvalidImage(f"unknown source {source!r}; expected one of {', '.join(ImageSource.values)}")
    file_name, thumbnail_name = image_store_files(dataset=dataset, candidate=candidate, original_name=original_name).files
    image = Image(
        dataset=dataset, sha256=candidate.sha256, original_name=original_name[:500], width=candidate.width,
        height=candidate.height, source=source, status=status, file=file_name, thumbnail=thumbnail_name,
    )
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        existing = Image.objects.filter(dataset=dataset, sha256=candidate.sha256).first()
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
