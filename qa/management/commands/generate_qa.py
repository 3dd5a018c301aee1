"""``manage.py generate_qa --dataset SLUG [--limit N]``: queue QA generation for a dataset's images."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Dataset, ImageStatus
from ml.stages.types import BackendNotConfigured
from qa.pipeline import qa_generation_request


class Command(BaseCommand):
    help = (
        "Queue QA pair generation (EMOVERSE_ML['qa_generator'], self-checked by 'qa_critic') for the images of a "
        "dataset; images already generated with the configured qa_version are skipped, failed ones retried."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True)
        parser.add_argument("--status", nargs="+", choices=ImageStatus.values, help="only images with these statuses")
        parser.add_argument("--limit", type=int, help="at most this many images (oldest first)")

    def handle(self, *args, **options):
        try:
            dataset = Dataset.objects.get(slug=options["dataset"])
        except Dataset.DoesNotExist:
            raise CommandError(f"no dataset {options['dataset']!r}") from None
        images = dataset.images.order_by("id")
        if options["status"]:
            images = images.filter(status__in=options["status"])
        ids = list(
            images.values_list("id", flat=True)[: options["limit"]]
            if options["limit"]
            else images.values_list("id", flat=True)
        )
        try:
            queued = qa_generation_request(image_ids=ids)
        except BackendNotConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Queued QA generation for {len(queued)} of {len(ids)} image(s).")
