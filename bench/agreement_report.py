"""The agreement report's compute at dataset scale (no database): rows → arrays → statistics.

    python bench/agreement_report.py [--items 219000 --reviewers 5 --overlap 0.1 --models 2 --resamples 1000]

Synthetic current annotations as the selectors stream them: every item has model
answers; an ``--overlap`` share of items is reviewed by all ``--reviewers`` (with 20 %
of those reviews missing), the rest by one reviewer. Prints the time of each step and
the label statistics, so the database streaming measured elsewhere can be added to it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emoverse_site.settings")

import django

django.setup()

import numpy as np

from agreement.report import LabelArrays, _models, label_section
from agreement.results import ReportOptions, alpha_result
from agreement.selectors import LabelRow
from core.vocabulary import EMOTIONS


def rows(items: int, reviewers: int, overlap: float, models: int, seed: int = 0) -> list[LabelRow]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 8, items)
    out = []
    multi = rng.random(items) < overlap
    for i in range(items):
        t = int(truth[i])
        for m in range(models):
            label = t if rng.random() < 0.7 else int(rng.integers(0, 8))
            out.append(LabelRow(i, "model", f"model-{m}", EMOTIONS[label], 0.9, "", 1 + m))
        who = range(reviewers) if multi[i] else [int(rng.integers(0, reviewers))]
        for r in who:
            if multi[i] and rng.random() < 0.2:
                continue
            label = t if rng.random() < 0.8 else int(rng.integers(0, 8))
            out.append(LabelRow(i, "human", f"reviewer-{r}", EMOTIONS[label], float(rng.random()), "approved", 10 + r))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=219_000)
    parser.add_argument("--reviewers", type=int, default=5)
    parser.add_argument("--overlap", type=float, default=0.1)
    parser.add_argument("--models", type=int, default=2)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    options = ReportOptions(n_resamples=args.resamples)
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; {args.items} items, {args.reviewers} reviewers, "
          f"overlap {args.overlap}, {args.models} models, {args.resamples} resamples")
    data = rows(args.items, args.reviewers, args.overlap, args.models)
    print(f"{len(data)} annotation rows")
    t = time.perf_counter()
    arrays = LabelArrays.from_rows(data)
    t_arrays = time.perf_counter() - t
    t = time.perf_counter()
    labels = label_section(arrays, options)
    t_labels = time.perf_counter() - t
    t = time.perf_counter()
    alpha_result(arrays.confidence, "interval", options)
    t_conf = time.perf_counter() - t
    t = time.perf_counter()
    _models(arrays, options)
    t_models = time.perf_counter() - t
    alpha, fleiss = labels["krippendorff_alpha"], labels["fleiss_kappa"]
    print(f"alpha {alpha['value']:.4f} [{alpha['low']:.4f}, {alpha['high']:.4f}] on {alpha['n']} items")
    print(f"fleiss {fleiss['value']:.4f} [{fleiss['low']:.4f}, {fleiss['high']:.4f}] on {fleiss['n']} items x {fleiss['raters']}")
    print(f"rows -> arrays          {t_arrays:7.2f} s")
    print(f"label section           {t_labels:7.2f} s  ({len(labels['pairwise_cohen_kappa'])} pairs, "
          f"{len(labels['confusion'])} confusion matrices)")
    print(f"confidence alpha (int.) {t_conf:7.2f} s")
    print(f"models vs reference     {t_models:7.2f} s")


if __name__ == "__main__":
    main()
