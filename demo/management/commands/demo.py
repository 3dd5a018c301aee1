"""``manage.py demo``: demo users and the demo dataset (idempotent; no network)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.services import DEMO_DATASET, DEMO_USERS, demo_embeddings_store, demo_embeddings_write, demo_load
from ml.stages.types import BackendNotConfigured
from qa.models import QAPair


class Command(BaseCommand):
    help = "Create the demo users and import the demo dataset (scikit-image's bundled photographs, pre-annotated)."

    def add_arguments(self, parser):
        parser.add_argument("--dir", default=str(Path(settings.VAR_DIR) / "demo"),
                            help="where the demo images and demo.jsonl are written (default: var/demo)")
        parser.add_argument("--write-embeddings", action="store_true",
                            help="embed the demo's phrases with the phrase embedder (needs requirements-ml.txt) and "
                                 "write them to demo/phrase_embeddings.npz, the file the demo ships; nothing else")

    def handle(self, *args, **options):
        if options["write_embeddings"]:
            try:
                self.stdout.write(f"wrote {demo_embeddings_write()}")
            except BackendNotConfigured as exc:
                raise CommandError(str(exc)) from exc
            return
        report = demo_load(folder=Path(options["dir"]))
        self.stdout.write(
            f"Dataset {DEMO_DATASET!r}: {report.imported} lines imported, {report.duplicates} already there, "
            f"{report.failed} failed."
        )
        for error in report.errors:
            self.stderr.write(f"  line {error.line}: {error.reason}")
        embeddings = demo_embeddings_store()  # nothing new: demo_load stored them; this counts them
        if embeddings.missing:
            self.stdout.write(f"Phrase embeddings ({embeddings.model}): {embeddings.missing} of {embeddings.phrases} demo "
                              "phrases have none, so the annotators' triplets are paired by words (the review page says "
                              "so); a worker with requirements-ml.txt embeds them.")
        else:
            self.stdout.write(f"Phrase embeddings ({embeddings.model}): all {embeddings.phrases} demo phrases; the "
                              "annotators' triplets are paired by meaning.")
        qa_pairs = QAPair.objects.filter(dataset__slug=DEMO_DATASET, is_current=True).count()
        self.stdout.write(
            f"QA pairs: {qa_pairs} in {DEMO_DATASET!r}; review them at /qa/review/{DEMO_DATASET}/ (as reviewer) and "
            f"rate images at /qa/rate/{DEMO_DATASET}/ (as rater or reviewer)."
        )
        self.stdout.write("\nDemo logins (fixed demo passwords; never use them outside the demo):")
        for user in DEMO_USERS:
            self.stdout.write(f"  {user.username:<12} {user.password:<16} {', '.join(user.roles)}")
        self.stdout.write(
            f"\nEvery item of {DEMO_DATASET!r} gets one review. For an agreement study, give a sample of items several "
            "reviews: set 'reviews per item' (e.g. 2) and 'overlap fraction' (e.g. 0.3) on the dataset in the Django "
            "admin (/django-admin/, as admin)."
        )
        if not report.ok:
            raise CommandError(f"{report.failed} demo line(s) failed to import.")
