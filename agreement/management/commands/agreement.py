"""Print a dataset's agreement report (the same dict as the page, the downloads and the API).

Semantic phrase agreement reads the stored phrase embeddings; workers store them after
pre-annotation, import and review, and ``python manage.py embed_phrases`` fills in a
dataset's missing ones.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.http import QueryDict

from agreement import selectors
from agreement.csv_report import report_csv, report_rows
from agreement.forms import ReportFilterForm
from agreement.report import agreement_report
from agreement.results import ReportOptions
from annotations.models import Dataset


class Command(BaseCommand):
    help = "Print the agreement report of a dataset (--json or --csv for the downloadable forms)."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Dataset slug.")
        out = parser.add_mutually_exclusive_group()
        out.add_argument("--json", action="store_true", help="Print the report as JSON.")
        out.add_argument("--csv", action="store_true", help="Print the report as CSV.")
        parser.add_argument("--source", default="")
        parser.add_argument("--label", default="")
        parser.add_argument("--from", dest="date_from", default="", help="Reviews on or after YYYY-MM-DD.")
        parser.add_argument("--to", dest="date_to", default="", help="Reviews on or before YYYY-MM-DD.")
        parser.add_argument("--reviewer", action="append", default=[], help="Only this reviewer (repeatable).")
        parser.add_argument("--resamples", type=int, help="Bootstrap resamples (default EMOVERSE_AGREEMENT_RESAMPLES or 1000).")
        parser.add_argument("--seed", type=int, help="Bootstrap seed (default EMOVERSE_AGREEMENT_SEED or 0).")
        parser.add_argument("--min-shared", type=int, help="Shared items a reviewer pair needs for Cohen's kappa.")

    def handle(self, *args, **options):
        dataset = Dataset.objects.filter(slug=options["dataset"]).first()
        if dataset is None:
            raise CommandError(f"no dataset with slug {options['dataset']!r}")
        params = QueryDict(mutable=True)
        for name in ("source", "label", "date_from", "date_to"):
            params[name] = options[name]
        params.setlist("reviewer", options["reviewer"])
        form = ReportFilterForm(params, reviewers=selectors.reviewer_names(dataset=dataset), labels=dataset.get_taxonomy().labels)
        if not form.is_valid():
            raise CommandError(f"invalid filters: {form.error_text()}")
        try:
            report_options = ReportOptions.from_settings(n_resamples=options["resamples"], seed=options["seed"],
                                                         min_shared=options["min_shared"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        report = agreement_report(dataset=dataset, filters=form.filters(), options=report_options)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        elif options["csv"]:
            self.stdout.write(report_csv(report), ending="")
        else:
            self._summary(report)

    def _summary(self, report: dict) -> None:
        counts = report["counts"]
        self.stdout.write(f"{report['dataset']['slug']}: {counts['images']} images, {counts['multi_reviewed_images']} "
                          f"reviewed twice or more, reviewers {', '.join(counts['reviewers']) or 'none'}")
        for section, statistic, a, b, value, low, high, n, note in report_rows(report):
            if section in ("confusion", "per_class") or statistic.startswith("reliability_"):
                continue
            who = f" {a}" + (f" vs {b}" if b else "") if a else ""
            if value == "":
                shown = f"undefined ({note})"
            elif low == "":
                shown = f"{value:.3f}"
            else:
                shown = f"{value:.3f} [{low:.3f}, {high:.3f}]"
            self.stdout.write(f"  {section:<10} {statistic}{who}: {shown}  n={n}")
