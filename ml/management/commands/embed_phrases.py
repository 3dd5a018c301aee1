"""``manage.py embed_phrases --dataset SLUG``: embed every phrase of a dataset that has no stored embedding.

Runs the phrase embedder in this process (where requirements-ml.txt is installed): for data
from before phrases were embedded automatically, or after a worker could not embed them.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Dataset
from ml.embeddings import embed_dataset_phrases


class Command(BaseCommand):
    help = "Embed the phrases of a dataset that have no stored embedding, so triplets pair by meaning."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset slug.")

    def handle(self, *args, dataset: str, **options):
        found = Dataset.objects.filter(slug=dataset).first()
        if found is None:
            raise CommandError(f"no dataset with slug {dataset!r}")
        result = embed_dataset_phrases(dataset_id=found.pk)
        if result.unavailable:
            raise CommandError(result.message())
        self.stdout.write(result.message())
