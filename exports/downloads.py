"""Reading a complete snapshot's files for download: confined paths and a zip streamed on the fly.

Only complete snapshots are readable. Every path is resolved and must lie inside
the snapshot's folder, itself inside ``EXPORT_ROOT``; anything else is reported
as missing (:class:`NothingToDo`), whatever the reason, so a probe learns nothing.
:func:`zip_response` and :func:`file_response` answer the page and the API alike
(404 for anything missing).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.http import FileResponse, Http404, StreamingHttpResponse

from annotations.errors import NothingToDo
from exports.manifest import MANIFEST
from exports.models import ExportSnapshot, ExportStatus
from exports.selectors import export_root, final_dir

_BLOCK = 1024 * 1024


def snapshot_folder(snapshot: ExportSnapshot) -> Path:
    """The resolved folder of a complete snapshot."""
    if snapshot.status != ExportStatus.COMPLETE or not snapshot.path:
        raise NothingToDo("This snapshot is not complete, so there is nothing to download.")
    root = export_root().resolve()
    folder = final_dir(snapshot).resolve()
    if not folder.is_relative_to(root) or folder == root or not folder.is_dir():
        raise NothingToDo("The snapshot's files are missing from the export folder.")
    return folder


def snapshot_file(snapshot: ExportSnapshot, relative: str) -> Path:
    """A regular file inside the snapshot's folder; refuses traversal, absolute paths and links out."""
    folder = snapshot_folder(snapshot)
    if not relative or "\x00" in relative or relative.startswith(("/", "\\")):
        raise NothingToDo("No such file in this snapshot.")
    candidate = (folder / relative).resolve()
    if not candidate.is_relative_to(folder) or not candidate.is_file():
        raise NothingToDo("No such file in this snapshot.")
    return candidate


def snapshot_files(snapshot: ExportSnapshot) -> list[dict[str, Any]]:
    """The manifest's files and the manifest itself (images are listed in ``images.sha256``)."""
    if snapshot.status != ExportStatus.COMPLETE or not snapshot.manifest:
        return []
    return [*snapshot.manifest.get("files", []), {"path": MANIFEST}]


def archive_name(snapshot: ExportSnapshot) -> str:
    return f"{snapshot.dataset.slug}-v{snapshot.version:04d}-{snapshot.format}"


class _Sink(io.RawIOBase):
    """A write-only stream that hands back what was written since the last :meth:`take`."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def zip_stream(snapshot: ExportSnapshot) -> Iterator[bytes]:
    """The snapshot folder as a zip (stored, ZIP64), produced block by block: memory stays flat."""
    folder = snapshot_folder(snapshot)
    prefix = archive_name(snapshot)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in files:
            info = zipfile.ZipInfo.from_file(path, arcname=f"{prefix}/{path.relative_to(folder).as_posix()}")
            with open(path, "rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while block := source.read(_BLOCK):
                    target.write(block)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


def zip_response(snapshot: ExportSnapshot) -> StreamingHttpResponse:
    try:
        stream = zip_stream(snapshot)
        first = next(stream)  # checks the snapshot before the response starts
    except NothingToDo as exc:
        raise Http404(str(exc)) from exc
    response = StreamingHttpResponse(_prepend(first, stream), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{archive_name(snapshot)}.zip"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def file_response(snapshot: ExportSnapshot, path: str) -> FileResponse:
    try:
        resolved = snapshot_file(snapshot, path)
    except NothingToDo as exc:
        raise Http404(str(exc)) from exc
    response = FileResponse(open(resolved, "rb"), as_attachment=True, filename=resolved.name)  # noqa: SIM115 - closed by Django
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _prepend(first: bytes, rest):
    yield first
    yield from rest
