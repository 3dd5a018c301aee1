"""Queue a dataset's images for pre-annotation (or run them in-process without a broker)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Dataset
from ml import selectors, services
from ml.config import get_registry
from ml.stages.types import BackendNotConfigured


def _stuck() -> str:
    return "queued or running with no worker holding them and no message of theirs in the broker"


class Command(BaseCommand):
    help = "Pre-annotate a dataset: two VLM annotators, calibration, critic, grounding and segmentation."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset slug.")
        parser.add_argument("--limit", type=int, help="At most this many images.")
        parser.add_argument(
            "--force", action="store_true",
            help="Also re-run images already done with this pipeline version, and send runs stuck queued or running again.",
        )
        parser.add_argument(
            "--retry-failed", action="store_true",
            help="Send the failed images, and runs stuck queued or running, again instead.",
        )

    def handle(self, *args, dataset, limit=None, force=False, retry_failed=False, **options):
        found = Dataset.objects.filter(slug=dataset).first()
        if found is None:
            raise CommandError(f"no dataset with slug {dataset!r}")
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        try:
            if retry_failed:
                retried = services.retry_failed(dataset=found)
                self.stdout.write(
                    f"Sent {retried.failed} failed image(s) again"
                    + (f", and {retried.stale} stuck one(s) ({_stuck()})." if retried.stale else ".")
                )
            else:
                result = services.enqueue_preannotation(dataset=found, limit=limit, force=force)
                self.stdout.write(
                    f"Queued {result.enqueued} image(s) of {found.slug} for pipeline {result.pipeline_version}; "
                    f"{result.skipped} skipped (already sent, or decided by people)."
                    + (f" {result.stale} of them were stuck ({_stuck()})." if result.stale else "")
                )
        except BackendNotConfigured as exc:
            raise CommandError(str(exc)) from exc
        registry = get_registry()
        progress = selectors.dataset_progress(
            dataset=found, pipeline_version=registry.pipeline_version, stage_names=services.pipeline_stage_names(registry)
        )
        self.stdout.write(
            "Runs: " + ", ".join(f"{status} {n}" for status, n in sorted(progress.runs.items())) if progress.runs else "Runs: none"
        )
        for run in progress.failures[:10]:
            self.stdout.write(f"  failed image {run.image_id} at {run.failed_stage}: {run.error[:200]}")
