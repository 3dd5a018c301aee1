"""Fit and store a new calibration version per model from human reference labels (ml.recalibration)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Dataset
from ml.recalibration import recalibrate
from ml.calibration_fits import default_min_samples


class Command(BaseCommand):
    help = ("Fit each model's temperature on its raw answers to images with a human reference label, and store it "
            "as a new calibration version (new pre-annotations use it).")

    def add_arguments(self, parser):
        parser.add_argument("--dataset", help="Fit on this dataset only (default: all datasets).")
        parser.add_argument("--min-samples", type=int, default=None,
                            help="Labelled answers a model needs (default EMOVERSE_CALIBRATION_MIN_SAMPLES or 50).")

    def handle(self, *args, dataset=None, min_samples=None, **options):
        target = None
        if dataset:
            target = Dataset.objects.filter(slug=dataset).first()
            if target is None:
                raise CommandError(f"no dataset with slug {dataset!r}")
        try:
            result = recalibrate(dataset=target, min_samples=min_samples if min_samples is not None else default_min_samples())
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for v in result.stored:
            self.stdout.write(f"{v.model_name}: version {v.version}, T = {v.temperature:.4f}, n = {v.n_samples}, "
                              f"ECE {v.ece_before:.4f} -> {v.ece_after:.4f}")
        for model, reason in result.skipped.items():
            self.stdout.write(f"{model}: skipped ({reason})")
        if not result.stored and not result.skipped:
            self.stdout.write("No model answer has a human reference label yet: nothing to calibrate.")
