"""The JSONL importer as a stream (failed lines handed over batch by batch, each batch committed
as it is read) and the ``import_emoverse`` command (its arguments, summary, exit status and
errors file)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotations.importers import import_emoverse_jsonl
from annotations.models import Image, ImportRun
from tests.annotations.test_import import Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path)


def test_failed_lines_are_handed_over_as_each_batch_commits(ws):
    """``on_error`` gets every failed line (not only the first ``max_errors``), batch by batch:
    the lines of a batch committed before a read error are already delivered."""
    lines = []
    for i in range(12):
        lines.append((json.dumps({"image": ws.add_png(f"{i:02d}.png", seed=i)}) if i % 2 else "not json").encode() + b"\n")
    seen = []
    stream = FailingStream(lines, fail_at=10)
    with pytest.raises(OSError, match="simulated read error"):
        import_emoverse_jsonl(stream=stream, images_dir=ws.images, dataset_slug="d", run_by="t", batch_size=4, max_errors=1,
                              on_error=seen.append)
    assert [e.line for e in seen] == [1, 3, 5, 7]  # batches 1-2; batch 3 (lines 9-) never committed
    assert all(e.reason.startswith("malformed JSON") for e in seen)


class FailingStream(io.RawIOBase):
    """A JSONL stream that breaks (like a lost disk) when line ``fail_at`` is read."""

    def __init__(self, lines: list[bytes], fail_at: int):
        self.lines, self.fail_at, self.read_count = lines, fail_at, 0

    def readable(self) -> bool:
        return True

    def readline(self, size: int = -1) -> bytes:
        if self.read_count >= len(self.lines):
            return b""
        self.read_count += 1
        if self.read_count == self.fail_at:
            raise OSError("simulated read error")
        return self.lines[self.read_count - 1]


@pytest.mark.django_db(transaction=True)
def test_lines_stream_in_and_each_batch_is_committed(ws):
    lines = [(json.dumps({"image": ws.add_png(f"{i:02d}.png", seed=i)}) + "\n").encode() for i in range(40)]
    stream = FailingStream(lines, fail_at=25)
    with pytest.raises(OSError, match="simulated read error"):
        import_emoverse_jsonl(stream=stream, images_dir=ws.images, dataset_slug="streamed", run_by="t", batch_size=10)
    # The file was read lazily: the failure came at line 25, after two batches had been committed.
    assert stream.read_count == 25
    assert Image.objects.count() == 20  # batches 1-2 committed; batch 3 (lines 21-24) rolled back
    run = ImportRun.objects.get()
    assert run.imported == 20 and run.finished_at is not None
    # Re-running the whole file picks up where it stopped.
    with open(ws.jsonl, "wb") as out:
        out.writelines(lines)
    report = ws.run(dataset="streamed", batch_size=10)
    assert (report.imported, report.duplicates) == (20, 20) and Image.objects.count() == 40


def test_arguments_are_checked(ws):
    with pytest.raises(ValueError, match="not a directory"):
        import_emoverse_jsonl(stream=io.BytesIO(b""), images_dir=ws.root / "nope", dataset_slug="x", run_by="t")
    with pytest.raises(ValueError, match="unknown default source"):
        import_emoverse_jsonl(stream=io.BytesIO(b""), images_dir=ws.images, dataset_slug="x", run_by="t", source_default="tv")


# --- the management command ---------------------------------------------------------------


def _call(ws: Workspace, *args: str) -> tuple[str, str, int]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_emoverse", str(ws.jsonl), "--images-dir", str(ws.images), *args, stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        err.write(str(exc))
        code = exc.returncode
    return out.getvalue(), err.getvalue(), code


def test_command_prints_summary_and_errors_and_exits_non_zero_on_failure(ws):
    ws.write([ws.line(ws.add_png("a.png", seed=1)), "not json", ws.line("missing.png")])
    out, err, code = _call(ws, "--dataset", "cmd", "--user", "bob")
    assert code == 1
    assert "1 imported, 0 skipped as duplicates, 2 failed" in out
    assert "line 2: malformed JSON" in err and "line 3: missing.png: image file not found" in err
    assert ImportRun.objects.get().run_by == "bob"


def test_command_exits_zero_when_every_line_went_in_and_records_the_os_user(ws, monkeypatch):
    monkeypatch.setattr("getpass.getuser", lambda: "osuser")
    ws.write([ws.line(ws.add_png("a.png", seed=1))])
    out, err, code = _call(ws, "--dataset", "cmd", "--approved", "--batch-size", "1")
    assert code == 0 and "1 imported, 0 skipped as duplicates, 0 failed" in out and err == ""
    run = ImportRun.objects.get()
    assert run.run_by == "osuser" and run.approved
    out, _, code = _call(ws, "--dataset", "cmd", "--approved")
    assert code == 0 and "0 imported, 1 skipped as duplicates" in out


def test_command_writes_every_failed_line_to_the_errors_file(ws, tmp_path):
    good = ws.line(ws.add_png("a.png", seed=1))
    ws.write(["not json", good, *([ws.line("missing.png")] * 3), '{"image": "\\ud800.png"}'])
    errors_file = tmp_path / "errors.jsonl"
    out, err, code = _call(ws, "--dataset", "cmd", "--show-errors", "1", "--batch-size", "2", "--errors-file", str(errors_file))
    assert code == 1 and "1 imported, 0 skipped as duplicates, 5 failed" in out
    assert err.count("  line ") == 1 and f"all 5 failed line(s) are in {errors_file}" in err
    rows = [json.loads(line) for line in errors_file.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 3, 4, 5, 6]
    assert rows[0]["reason"].startswith("malformed JSON") and "image file not found" in rows[1]["reason"]
    assert rows[4]["reason"] == "image: text contains an unpaired surrogate (\\ud800)"
    assert set(rows[0]) == {"line", "reason"}
    # Nothing failed: the file is rewritten, empty.
    ws.write([good])
    out, err, code = _call(ws, "--dataset", "cmd", "--errors-file", str(errors_file))
    assert code == 0 and errors_file.read_text() == ""


def test_command_refuses_an_errors_file_it_cannot_write(ws, tmp_path):
    ws.write([ws.line(ws.add_png("a.png", seed=1))])
    out, err, code = _call(ws, "--dataset", "cmd", "--errors-file", str(tmp_path / "no" / "such" / "dir" / "e.jsonl"))
    assert code == 1 and "cannot write the errors file" in err
    assert not ImportRun.objects.exists()


def test_command_refuses_a_missing_file(ws):
    with pytest.raises(CommandError, match="cannot open"):
        call_command("import_emoverse", str(ws.root / "none.jsonl"), "--images-dir", str(ws.images), "--dataset", "x")
