"""``manage.py import_qa FILE.jsonl --dataset SLUG`` (docs/qa-jsonl.md)."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Dataset
from qa.importers.jsonl import DEFAULT_BATCH_SIZE, ERRORS_KEPT_ON_RUN, LineError, import_qa_jsonl


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Command(BaseCommand):
    help = (
        "Import QA pairs from JSONL (one pair per line, docs/qa-jsonl.md) into an existing dataset whose images "
        "are imported already; every bad line is reported with its number and reason, duplicates are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the JSONL file, or - for standard input")
        parser.add_argument("--dataset", required=True, help="dataset slug (the images must be in it)")
        parser.add_argument("--approved", action="store_true", help="import lines without a status as accepted")
        parser.add_argument(
            "--user", default="", help="who runs the import, recorded as provenance (default: the OS user)"
        )
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="lines per transaction")
        parser.add_argument("--show-errors", type=int, default=20, help="how many failed lines to print (default 20)")
        parser.add_argument(
            "--errors-file", metavar="PATH", help='write every failed line to PATH as JSONL, {"line", "reason"}'
        )

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(slug=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset {options['dataset']!r}") from None
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        name = options["file"]
        try:
            stream = sys.stdin.buffer if name == "-" else open(Path(name), "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CommandError(f"cannot read {name}: {exc.strerror or exc}") from exc
        errors_out = None
        if options["errors_file"]:
            try:
                errors_out = open(Path(options["errors_file"]), "w", encoding="utf-8", buffering=1)  # noqa: SIM115
            except OSError as exc:
                raise CommandError(f"cannot write the errors file: {exc.strerror or exc}") from exc
        shown = 0

        def on_error(error: LineError) -> None:
            nonlocal shown
            if errors_out is not None:
                errors_out.write(json.dumps(error.as_dict(), ensure_ascii=False) + "\n")
            if shown < options["show_errors"]:
                shown += 1
                self.stderr.write(f"line {error.line}: {error.reason}")

        try:
            report = import_qa_jsonl(
                stream,
                dataset=dataset,
                file_name=name,
                run_by=options["user"] or _os_user(),
                approved=options["approved"],
                batch_size=options["batch_size"],
                on_error=on_error,
                max_errors=ERRORS_KEPT_ON_RUN,
            )
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
            if errors_out is not None:
                errors_out.close()
        if report.failed > shown:
            self.stderr.write(f"... and {report.failed - shown} more failed line(s)")
        self.stdout.write(
            f"Imported {report.imported} pair(s), {report.duplicates} duplicate(s) skipped, "
            f"{report.failed} line(s) failed (import run {report.run.pk})."
        )
        if report.failed:
            raise CommandError(f"{report.failed} line(s) failed; the other lines were imported.")
