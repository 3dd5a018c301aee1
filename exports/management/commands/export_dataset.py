"""``manage.py export_dataset --dataset SLUG --format FORMAT --out PATH`` (docs/export.md)."""

from __future__ import annotations

import getpass
import shutil
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotations.models import Dataset, ImageSource, ImageStatus
from exports.filters import InvalidExportRequest
from exports.models import ExportFormat, ExportStatus
from exports.runs import export_run
from exports.selectors import final_dir
from exports.services import export_create
from exports.writers.images import IMAGE_MODES, link_or_copy
from qa.exporting import PAIR_SELECTIONS


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Command(BaseCommand):
    help = ("Export a dataset's final annotations (approved items by default) as a versioned snapshot under "
            "EXPORT_ROOT, listed on the Exports page, and put a copy (hard links when possible) at --out.")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="dataset slug")
        parser.add_argument("--format", required=True, choices=ExportFormat.values)
        parser.add_argument("--out", help="folder to create with the export's files (must not exist or be empty)")
        parser.add_argument("--status", nargs="+", choices=ImageStatus.values, default=[ImageStatus.APPROVED],
                            help="image statuses to take (default: approved)")
        parser.add_argument("--source", nargs="+", choices=ImageSource.values, help="image sources to take")
        parser.add_argument("--label", nargs="+", help="CES labels to take (labels of the dataset's taxonomy)")
        parser.add_argument("--since", help="ISO date or date-time, inclusive")
        parser.add_argument("--until", help="ISO date or date-time, exclusive (a bare date: through that day)")
        parser.add_argument("--date-field", choices=["image", "annotation"], default="image",
                            help="what --since/--until apply to: when the image was added, or its final annotation made")
        parser.add_argument("--min-agreement", type=float, help="minimum annotator agreement in [0, 1]")
        parser.add_argument("--include-auto-accepted", action="store_true",
                            help="also export images whose only final answer is the pipeline's auto-accepted model "
                                 "answer (machine-accepted, not human-approved; counted apart in the manifest)")
        parser.add_argument("--images", choices=IMAGE_MODES, default="none",
                            help="image files: none, copy or (hard) link them into images/, or url to reference public "
                                 "storage URLs (refused on local storage and with signed S3 URLs)")
        parser.add_argument("--categories", choices=["emotion", "role"], help="COCO categories (default: emotion)")
        parser.add_argument("--include-rejected", action="store_true",
                            help="COCO, Parquet: also write the elements a reviewer or adjudicator rejected, marked with "
                                 "their status (left out by default and counted in the manifest; JSONL always keeps them)")
        parser.add_argument("--pairs", choices=PAIR_SELECTIONS,
                            help="qa-jsonl, qa-parquet: approved (accepted or edited QA pairs, the default) or current "
                                 "(every pair's current version, with its status)")
        parser.add_argument("--user", help="username recorded as the export's author (default: the OS account, as run_by)")

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(slug=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset {options['dataset']!r}") from None
        out = Path(options["out"]) if options["out"] else None
        if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise CommandError(f"--out {out} exists and is not an empty folder")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        filters = {key: options[key] for key in ("status", "source", "label", "since", "until", "min_agreement")}
        filters["date_field"] = options["date_field"]
        filters["include_auto_accepted"] = options["include_auto_accepted"]
        qa_format = ExportFormat(options["format"]) in (ExportFormat.QA_JSONL, ExportFormat.QA_PARQUET)
        if options["pairs"] and not qa_format:
            raise CommandError("--pairs applies to qa-jsonl and qa-parquet only")
        export_options = {"images": options["images"]}
        if options["pairs"]:
            export_options["pairs"] = options["pairs"]
        if options["categories"]:
            export_options["categories"] = options["categories"]
        if options["include_rejected"]:
            export_options["include_rejected"] = True
        try:
            snapshot = export_create(dataset=dataset, export_format=options["format"], filters=filters,
                                     options=export_options, created_by=user,
                                     run_by=options["user"] or _os_user())
        except InvalidExportRequest as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Snapshot {snapshot.pk} (version {snapshot.version}) of {dataset.slug}: exporting…")
        snapshot = export_run(snapshot_id=snapshot.pk)
        if snapshot.status != ExportStatus.COMPLETE:
            raise CommandError(f"export failed: {snapshot.error}")
        counts = snapshot.manifest["counts"]
        if qa_format:
            self.stdout.write(f"{counts['pairs']} QA pair(s) exported, {counts['pairs_left_out']} not selected "
                              f"(see --pairs); snapshot at {final_dir(snapshot)}")
        else:
            self.stdout.write(
                f"{counts['images']} image(s) exported ({counts['machine_accepted']} machine-accepted), "
                f"{counts['skipped_without_final']} without a final annotation, {counts['skipped_auto_accepted']} "
                f"auto-accepted only (see --include-auto-accepted), {counts['skipped_in_review']} still in review and "
                f"{counts['skipped_by_filter']} outside the filter "
                f"skipped; {counts['rejected_elements_left_out']} rejected element(s) left out (see --include-rejected); "
                f"snapshot at {final_dir(snapshot)}"
            )
        if out is not None:
            if out.exists():
                out.rmdir()
            shutil.copytree(final_dir(snapshot), out, copy_function=link_or_copy)
            self.stdout.write(f"Files at {out}")
