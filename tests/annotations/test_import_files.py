"""The importer reads only regular files, within a size and a time limit, and reads them
before its transaction opens (issue 13): a FIFO or a stalled mount in ``--images-dir``
fails its line instead of hanging the import while it holds the database's write lock."""

from __future__ import annotations

import errno
import multiprocessing
import os
import socket
import threading
import time
from unittest import mock

import pytest
from django.db import connection

from annotations import image_services
from annotations.image_services import read_image_file
from annotations.importers import file_workers
from annotations.models import Annotation, Image
from tests.annotations.test_import import Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path)


@pytest.fixture
def fifo(ws):
    """A FIFO in the images folder. Should anything open it for reading, a writer feeds it a few
    bytes and closes it, so a reader that blocks on it is released instead of hanging the tests."""
    path = ws.images / "pipe.png"
    os.mkfifo(path)
    stop = threading.Event()

    def release_readers():
        while not stop.is_set():
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:  # ENXIO: nobody has it open for reading
                if exc.errno != errno.ENXIO:
                    raise
                time.sleep(0.05)
                continue
            os.write(fd, b"not an image")
            os.close(fd)

    writer = threading.Thread(target=release_readers, daemon=True)
    writer.start()
    yield path
    stop.set()
    writer.join(5)


def _names_imported() -> list[str]:
    return sorted(Image.objects.values_list("original_name", flat=True))


def test_a_fifo_fails_its_line_at_once_and_the_others_import(ws, fifo):
    good_before, good_after = ws.add_png("a.png", seed=1), ws.add_png("b.png", seed=2)
    started = time.monotonic()
    report = ws.run([ws.line(good_before), ws.line(fifo.name), ws.line(good_after)])
    assert time.monotonic() - started < 5
    assert (report.imported, report.failed) == (2, 1)
    assert report.errors[0].line == 2 and "not a regular file (a FIFO)" in report.errors[0].reason, report.errors
    assert _names_imported() == ["a.png", "b.png"]


def test_a_symbolic_link_to_a_fifo_inside_the_folder_is_refused_too(ws, fifo):
    os.symlink(fifo, ws.images / "link.png")
    report = ws.run([ws.line("link.png"), ws.line(ws.add_png("a.png", seed=1))])
    assert (report.imported, report.failed) == (1, 1)
    assert "not a regular file (a FIFO)" in report.errors[0].reason


def test_a_socket_is_refused(ws):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(ws.images / "socket.png"))
        report = ws.run([ws.line("socket.png"), ws.line(ws.add_png("a.png", seed=1))])
    finally:
        server.close()
    assert (report.imported, report.failed) == (1, 1)
    assert "not a regular file (a socket)" in report.errors[0].reason


def test_a_folder_named_like_an_image_is_refused(ws):
    (ws.images / "folder.png").mkdir()
    report = ws.run([ws.line("folder.png")])
    assert report.failed == 1 and "not a regular file (a folder)" in report.errors[0].reason


def test_a_symbolic_link_leading_outside_the_folder_is_refused(ws):
    outside = ws.root / "outside.png"
    outside.write_bytes(b"secret")
    os.symlink(outside, ws.images / "escape.png")
    os.symlink("/dev/zero", ws.images / "zero.png")
    report = ws.run([ws.line("escape.png"), ws.line("zero.png"), ws.line(ws.add_png("a.png", seed=1))])
    assert (report.imported, report.failed) == (1, 2)
    assert all("escapes --images-dir" in e.reason and "symbolic link" in e.reason for e in report.errors)


def test_a_file_over_the_size_limit_is_refused_unread(ws, settings):
    small = ws.add_png("small.png", seed=1)
    big = ws.add_png("big.png", seed=2, width=256, height=256)
    settings.EMOVERSE_MAX_IMAGE_BYTES = (ws.images / small).stat().st_size + 100
    assert (ws.images / big).stat().st_size > settings.EMOVERSE_MAX_IMAGE_BYTES
    with mock.patch("pathlib.Path.read_bytes", side_effect=AssertionError("read")):
        report = ws.run([ws.line(big), ws.line(small)])
    assert (report.imported, report.failed) == (1, 1)
    assert f"more than the limit of {settings.EMOVERSE_MAX_IMAGE_BYTES:,} bytes" in report.errors[0].reason
    assert _names_imported() == ["small.png"]


def test_a_read_that_takes_too_long_fails_its_line(ws, settings):
    """A stalled mount: the read of one file does not come back in time."""
    settings.EMOVERSE_IMAGE_READ_TIMEOUT_S = 0.2
    real = image_services._read_regular_file
    release = threading.Event()

    def stalled_on_one_file(path, limit):
        if path.name == "stalled.png":
            release.wait(10)
        return real(path, limit)

    names = [ws.add_png("stalled.png", seed=1), ws.add_png("a.png", seed=2)]
    started = time.monotonic()
    try:
        with mock.patch.object(image_services, "_read_regular_file", stalled_on_one_file):
            report = ws.run([ws.line(n) for n in names])
    finally:
        release.set()
    assert time.monotonic() - started < 5
    assert (report.imported, report.failed) == (1, 1)
    assert "not read within 0.2 s (EMOVERSE_IMAGE_READ_TIMEOUT_S)" in report.errors[0].reason
    assert _names_imported() == ["a.png"]


def test_reading_a_fifo_returns_at_once(fifo):
    started = time.monotonic()
    with pytest.raises(image_services.InvalidImage, match=r"not a regular file \(a FIFO\)"):
        read_image_file(fifo)
    assert time.monotonic() - started < 1


def _no_reader_left_behind() -> None:
    """No thread and no worker process of the import outlives it."""
    assert not [t.name for t in threading.enumerate() if t.name.startswith("read-image")]
    assert multiprocessing.active_children() == []


def test_a_stalled_read_leaves_nothing_blocked_behind(ws, settings):
    """The stalled worker is killed: no thread of the importing process waits on the file."""
    settings.EMOVERSE_IMAGE_READ_TIMEOUT_S = 0.2
    real = image_services._read_regular_file

    def stalled_on_one_file(path, limit):
        if path.name == "stalled.png":
            time.sleep(30)
        return real(path, limit)

    names = [ws.add_png("stalled.png", seed=1), ws.add_png("a.png", seed=2)]
    with mock.patch.object(image_services, "_read_regular_file", stalled_on_one_file):
        report = ws.run([ws.line(n) for n in names])
    assert (report.imported, report.failed) == (1, 1)
    _no_reader_left_behind()


def test_resolving_the_path_is_inside_the_time_limit(ws, settings):
    """A stalled mount hangs already when the path is resolved (``realpath`` stats every
    component): that too fails its line within the limit instead of hanging the import."""
    settings.EMOVERSE_IMAGE_READ_TIMEOUT_S = 0.2
    real = os.path.realpath

    def stalled_mount(path, *args, **kwargs):
        if "stalled-mount" in str(path):
            time.sleep(30)
        return real(path, *args, **kwargs)

    (ws.images / "stalled-mount").mkdir()
    names = [ws.add_png("stalled-mount/x.png", seed=1), ws.add_png("a.png", seed=2)]
    started = time.monotonic()
    with mock.patch("os.path.realpath", stalled_mount):
        report = ws.run([ws.line(n) for n in names])
    assert time.monotonic() - started < 5
    assert (report.imported, report.failed) == (1, 1)
    assert report.errors[0].line == 1 and "not read within 0.2 s" in report.errors[0].reason, report.errors
    assert _names_imported() == ["a.png"]
    _no_reader_left_behind()


def test_a_fifo_on_the_resolve_path_fails_its_line_at_once(ws, fifo):
    """A FIFO named as a folder of the image path: resolving and reading never wait on it."""
    good = ws.add_png("a.png", seed=1)
    started = time.monotonic()
    report = ws.run([ws.line(f"{fifo.name}/inside.png"), ws.line(good)])
    assert time.monotonic() - started < 5
    assert (report.imported, report.failed) == (1, 1)
    assert report.errors[0].line == 1 and "image file not readable" in report.errors[0].reason, report.errors
    _no_reader_left_behind()


def test_files_are_checked_in_parallel_worker_processes(ws, settings):
    settings.EMOVERSE_IMPORT_WORKERS = 2
    names = [ws.add_png(f"{i}.png", seed=i) for i in range(6)]
    log = ws.root / "prepared-by"
    real = file_workers.prepare_file

    def record(found):
        with open(log, "a") as out:
            out.write(f"{os.getpid()}\n")
        return real(found)

    with mock.patch.object(file_workers, "prepare_file", record):
        report = ws.run([ws.line(n) for n in names])
    assert (report.imported, report.failed) == (6, 0)
    pids = [int(pid) for pid in log.read_text().split()]
    assert len(pids) == 6 and os.getpid() not in pids  # each new image checked once, in a worker
    assert Image.objects.count() == 6
    _no_reader_left_behind()


def _spy(monkeypatch, module, name: str, seen: list):
    real = getattr(module, name)

    def spy(*args, **kwargs):
        seen.append((name, connection.in_atomic_block))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)


@pytest.mark.django_db(transaction=True)
def test_files_are_read_checked_and_stored_before_the_transaction_opens(ws, monkeypatch):
    """Also when the batch's write fails and the batch is written again line by line: the
    files are not read again (no transaction is ever open while the file workers run)."""
    from annotations.importers import batch_write

    seen: list[tuple[str, bool]] = []
    _spy(monkeypatch, file_workers.FilePool, "run", seen)
    real_write = batch_write.annotations_write
    writes = []

    def first_batch_write_fails(*, items, **options):
        writes.append(len(items))
        if len(writes) == 1:
            raise ValueError("the batch write fails once")
        return real_write(items=items, **options)

    monkeypatch.setattr(batch_write, "annotations_write", first_batch_write_fails)
    names = [ws.add_png(f"{i}.png", seed=i) for i in range(3)]
    report = ws.run([ws.line(n) for n in names])
    assert (report.imported, report.failed) == (3, 0)
    assert writes == [3, 1, 1, 1]
    # find; then check the pixels and the lines and store the files, a task per image: once each for the batch
    assert seen == [("run", False)] * 2
    assert Annotation.objects.count() == 3
