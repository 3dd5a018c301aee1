"""``manage.py import_emoverse FILE.jsonl --images-dir DIR --dataset SLUG`` (docs/emoverse-jsonl.md)."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import TextIO

from django.core.management.base import BaseCommand, CommandError

from annotations.importers import LineError, import_emoverse_jsonl
from annotations.importers.emoverse_jsonl import DEFAULT_BATCH_SIZE
from annotations.models import ImageSource
from core.vocabulary import BUILTIN_TAXONOMIES


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _open_errors_file(path: str | None) -> TextIO | None:
    """The ``--errors-file``, line-buffered: each failed line is on disk as soon as it is reported."""
    if not path:
        return None
    try:
        return open(Path(path), "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise CommandError(f"cannot write the errors file {path}: {exc.strerror or exc}") from exc


def _taxonomy(value: str | None):
    """``--taxonomy``: a built-in name, or the path of a JSON file holding a custom taxonomy."""
    if value is None or value.strip().lower() in BUILTIN_TAXONOMIES:
        return value
    try:
        return json.loads(Path(value).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"--taxonomy {value}: neither a built-in taxonomy ({', '.join(BUILTIN_TAXONOMIES)}) "
                           f"nor a readable file ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise CommandError(f"--taxonomy {value}: not a JSON file ({exc})") from exc


def _write_error(out: TextIO, error: LineError) -> None:
    out.write(json.dumps(error.as_dict(), ensure_ascii=False) + "\n")


class Command(BaseCommand):
    help = ("Import an EmoVerse JSONL file (one image and annotation per line); bad lines are reported with their "
            "number and reason, good ones kept; --errors-file PATH lists every failed line as JSONL.")

    def add_arguments(self, parser):
        parser.add_argument("file", help="the JSONL file, or - for standard input")
        parser.add_argument("--images-dir", required=True, help="folder the lines' image paths are relative to")
        parser.add_argument("--dataset", required=True, help="dataset slug (created if it does not exist)")
        parser.add_argument("--taxonomy", metavar="NAME|FILE.json",
                            help="emotion taxonomy of a new dataset: mikels (default), ekman, or a JSON file with a custom "
                                 "one (docs/taxonomies.md); an existing dataset must already have it")
        parser.add_argument("--approved", action="store_true", help="import the lines as already-approved final annotations")
        parser.add_argument("--source-default", default=ImageSource.WEB, choices=ImageSource.values,
                            help="image source for lines without one (default: web)")
        parser.add_argument("--user", default="", help="who runs the import, recorded as provenance (default: the OS user)")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="lines per transaction")
        parser.add_argument("--show-errors", type=int, default=20, help="how many failed lines to print (default 20)")
        parser.add_argument("--errors-file", metavar="PATH",
                            help='write every failed line to PATH as JSONL, {"line": n, "reason": "..."} per line, '
                                 "as the import goes (the file is replaced; empty when no line failed)")

    def handle(self, *args, **options):
        name = options["file"]
        try:
            stream = sys.stdin.buffer if name == "-" else open(Path(name), "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CommandError(f"cannot open {name}: {exc.strerror or exc}") from exc
        errors_file = None
        try:
            errors_file = _open_errors_file(options["errors_file"])
            report = import_emoverse_jsonl(
                stream=stream, images_dir=options["images_dir"], dataset_slug=options["dataset"],
                run_by=options["user"] or _os_user(), file_name=name, approved=options["approved"],
                source_default=options["source_default"], batch_size=options["batch_size"],
                max_errors=max(options["show_errors"], 0), taxonomy=_taxonomy(options["taxonomy"]),
                on_error=None if errors_file is None else lambda error: _write_error(errors_file, error),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
            if errors_file is not None:
                errors_file.close()
        self.stdout.write(
            f"Import run {report.run.pk} into dataset {options['dataset']!r}: {report.imported} imported, "
            f"{report.duplicates} skipped as duplicates, {report.failed} failed "
            f"({report.images_created} new images, {report.annotations_created} new annotations)."
        )
        if report.errors:
            self.stderr.write(f"First {len(report.errors)} of {report.failed} failed line(s):")
            for error in report.errors:
                self.stderr.write(f"  line {error.line}: {error.reason}")
        if report.failed and options["errors_file"]:
            self.stderr.write(f"all {report.failed} failed line(s) are in {options['errors_file']}")
        if not report.ok:
            raise CommandError(f"{report.failed} line(s) failed; the other lines were imported.")
