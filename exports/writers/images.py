"""Image files of an export: none, copied, hard-linked, or referenced by storage URL.

Exported names are the images' import paths (``Image.original_name``), kept
when they are safe relative paths and unique in the export; otherwise the image
id is appended (``photos/cat__123.jpg``) or, for unsafe paths, used alone. Copied
and linked files lie under ``images/`` and are listed with their SHA-256 in
``images.sha256`` (``sha256sum -c`` format). The stored file is what is exported:
the pixels the boxes and masks refer to (EXIF orientation applied), which may
differ from the bytes originally imported (``Image.sha256``).

``url`` writes ``storage.url(name)``, so it is allowed only where that is a
lasting public URL (:func:`url_mode_problem`): not a site-relative ``/media/``
path (not served with DEBUG off) nor a signed S3 URL that expires.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath, PureWindowsPath

from django.core.files.storage import FileSystemStorage, Storage

from annotations.models import Image
from exports.writers.items import ExportImage, WriterResult

IMAGE_MODES = ("none", "copy", "link", "url")
IMAGES_DIR = "images"
CHECKSUMS_FILE = "images.sha256"
_COPY_BUFFER = 1024 * 1024
URL_MODE_HELP = ("images=url needs a storage that serves public URLs (S3 with AWS_QUERYSTRING_AUTH=False, "
                 "a CDN via AWS_S3_CUSTOM_DOMAIN, or an absolute MEDIA_URL served by a web server); use copy or link")


def image_storage() -> Storage:
    """The storage of ``Image.file``."""
    return Image._meta.get_field("file").storage


def url_mode_problem(storage: Storage | None = None) -> str | None:
    """Why ``storage.url()`` is not a lasting public URL (the message to show), or None when it is.

    Local storage gives ``MEDIA_URL + name``: public only when ``MEDIA_URL`` is an
    absolute http(s) URL that a web server or CDN serves. S3 signs URLs (which
    expire) when ``querystring_auth`` is on, unless a custom domain serves them
    unsigned. Other storages are trusted to return what their ``url()`` promises.
    """
    storage = image_storage() if storage is None else storage
    if isinstance(storage, FileSystemStorage):
        base = storage.base_url or ""
        if base.startswith(("http://", "https://")):
            return None
        return f"{URL_MODE_HELP}. The images are on local storage, whose URLs ({base or '/'}...) are not served with DEBUG off."
    if getattr(storage, "querystring_auth", False) and (
        not getattr(storage, "custom_domain", None) or getattr(storage, "cloudfront_signer", None)
    ):
        return f"{URL_MODE_HELP}. The storage signs its URLs, and signed URLs expire."
    return None


def _stored_name(image: Image | ExportImage) -> str:
    """The storage name of the image's file (a model's ``FieldFile``, or a row's string)."""
    return image.file if isinstance(image.file, str) else (image.file.name or "")


def export_file_name(image: Image | ExportImage, duplicates: set[str]) -> str:
    """The image's path inside the export (see module docstring)."""
    raw = image.original_name.replace("\\", "/")
    if image.original_name not in duplicates and _plain(raw):
        return raw
    posix = PurePosixPath(raw)
    suffix = PurePosixPath(_stored_name(image)).suffix or posix.suffix
    parts = [p for p in posix.parts if p not in ("", ".")]
    if not parts or posix.is_absolute() or PureWindowsPath(raw).drive or ".." in parts or "\x00" in raw:
        return f"{image.pk}{suffix}"
    name = "/".join(parts)
    if image.original_name in duplicates:
        stem = PurePosixPath(name)
        return str(stem.with_name(f"{stem.stem}__{image.pk}{stem.suffix or suffix}"))
    return name


def _plain(name: str) -> bool:
    """A relative path without empty, ``.`` or ``..`` parts (the common case, checked without pathlib)."""
    if not name or name.startswith("/") or ":" in name or "\x00" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


class ImagePlacer:
    """Puts each exported image where the mode says and returns its URL and exported-file hash."""

    def __init__(self, folder: Path, mode: str) -> None:
        if mode not in IMAGE_MODES:
            raise ValueError(f"unknown images mode {mode!r}; expected one of {', '.join(IMAGE_MODES)}")
        if mode == "url" and (problem := url_mode_problem()):
            raise ValueError(problem)
        self.mode = mode
        self._folder = folder
        self._storage = image_storage()
        self._checksums = open(folder / CHECKSUMS_FILE, "w", encoding="utf-8") if mode in ("copy", "link") else None  # noqa: SIM115
        self.copied = 0
        self.linked = 0

    def place(self, image: ExportImage, file_name: str) -> tuple[str | None, str | None]:
        """``(url, sha256 of the exported file)``; each None when the mode gives none."""
        if self.mode == "none":
            return None, None
        if self.mode == "url":
            return self._storage.url(image.file), None
        target = self._folder / IMAGES_DIR / file_name
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = self._link(image.file, target) if self.mode == "link" else None
        if digest is None:
            digest = self._copy(image.file, target)
        self._checksums.write(f"{digest}  {IMAGES_DIR}/{file_name}\n")
        return None, digest

    def _link(self, name: str, target: Path) -> str | None:
        """Hard-link the stored file ``name``; None (copy instead) when storage or filesystem cannot."""
        try:
            source = self._storage.path(name)
        except NotImplementedError:  # object storage has no local path
            return None
        try:
            os.link(source, target)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                return None
            raise
        self.linked += 1
        with open(target, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def _copy(self, name: str, target: Path) -> str:
        digest = hashlib.sha256()
        with self._storage.open(name, "rb") as source, open(target, "wb") as out:
            while block := source.read(_COPY_BUFFER):
                digest.update(block)
                out.write(block)
        self.copied += 1
        return digest.hexdigest()

    def close(self) -> WriterResult:
        if self._checksums is None:
            return WriterResult(files=[])
        self._checksums.close()
        return WriterResult(files=[CHECKSUMS_FILE], counts={"images_copied": self.copied, "images_linked": self.linked})

    def abort(self) -> None:
        if self._checksums is not None:
            self._checksums.close()


def link_or_copy(source: str, target: str) -> None:
    """``shutil.copytree`` copy function: a hard link when the filesystem allows, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
