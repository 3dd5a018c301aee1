"""Agreement statistics at dataset scale, checked against the `krippendorff` package.

    python bench/agreement.py [--items 219000 --raters 5 --missing 0.2 --categories 8]

Synthetic CES labels: each item has a true category; a reviewer gives it with
probability ``--accuracy`` and a uniform random category otherwise; a ``--missing``
share of ratings is absent (NaN). Confidence scores (interval level) are the item's
true score plus reviewer noise, rounded to 0.1 for the comparison (the package holds a
units x values x values array: 0.01 steps would need ~18 GB at 219K items) and left
continuous for a timing of ours alone. Prints values, the difference from the reference
(must be <= 1e-9, else MISMATCH and exit status 1) and timings (best of ``--repeat``).
Fleiss' kappa runs on the complete items; its reference is
``1 - (1 - alpha) * T / (T - 1)`` from the package's nominal alpha on those items
(T = number of ratings), which is exact on complete data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's `agreement` package, not this file

import krippendorff
import numpy as np

from agreement.statistics import (
    counts_table,
    fleiss_kappa,
    krippendorff_alpha,
    krippendorff_alpha_ci,
)

TOLERANCE = 1e-9


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=219_000)
    parser.add_argument("--raters", type=int, default=5)
    parser.add_argument("--missing", type=float, default=0.2, help="share of absent ratings")
    parser.add_argument("--categories", type=int, default=8)
    parser.add_argument("--accuracy", type=float, default=0.6, help="chance a reviewer gives the true label")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def synthetic_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """``(raters, items)`` category codes and continuous confidence scores, NaN where missing."""
    rng = np.random.default_rng(args.seed)
    shape = (args.raters, args.items)
    truth = rng.integers(0, args.categories, args.items)
    noise = rng.integers(0, args.categories, shape)
    labels = np.where(rng.random(shape) < args.accuracy, truth, noise).astype(np.float64)
    scores = np.clip(rng.beta(5, 2, args.items) + rng.normal(0, 0.1, shape), 0, 1)
    missing = rng.random(shape) < args.missing
    labels[missing] = np.nan
    scores[missing] = np.nan
    return labels, scores


def best_time(fn: Callable[[], float], repeat: int) -> tuple[float, float]:
    """``(value, seconds)``: the function's value and its fastest of ``repeat`` runs."""
    times, value = [], 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return value, min(times)


def main() -> int:
    args = parse_args()
    labels, scores = synthetic_data(args)
    coarse = np.round(scores, 1)
    complete = labels[:, ~np.isnan(labels).any(axis=0)]
    print(f"{args.items:,} items x {args.raters} raters, {args.missing:.0%} missing, {args.categories} categories; "
          f"{complete.shape[1]:,} complete items; best of {args.repeat}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (timings scale with it)\n")

    rows, failed = [], False

    def compare(name: str, ours: Callable[[], float], reference: Callable[[], float] | None) -> None:
        nonlocal failed
        value, t_ours = best_time(ours, args.repeat)
        ref, t_ref = best_time(reference, args.repeat) if reference else (np.nan, np.nan)
        diff = abs(value - ref)
        failed |= reference is not None and not diff <= TOLERANCE
        rows.append((name, value, ref, diff, t_ours, t_ref))

    def package(data: np.ndarray, level: str) -> float:
        return krippendorff.alpha(reliability_data=data, level_of_measurement=level)

    total = complete.size
    compare("alpha nominal", lambda: krippendorff_alpha(labels, "nominal"), lambda: package(labels, "nominal"))
    compare("alpha interval (0.1)", lambda: krippendorff_alpha(coarse, "interval"), lambda: package(coarse, "interval"))
    compare("alpha interval (float)", lambda: krippendorff_alpha(scores, "interval"), None)
    compare("fleiss kappa (complete)", lambda: fleiss_kappa(counts_table(complete)[0]),
            lambda: 1 - (1 - package(complete, "nominal")) * total / (total - 1))

    print(f"{'statistic':<26}{'ours':>14}{'reference':>14}{'|diff|':>11}{'ours s':>9}{'package s':>11}{'speed-up':>10}")
    for name, value, ref, diff, t_ours, t_ref in rows:
        flag = "   <-- MISMATCH" if diff > TOLERANCE else ""
        if np.isnan(ref):  # no reference run: ours only
            print(f"{name:<26}{value:>14.9f}{'n/a':>14}{'':>11}{t_ours:>9.3f}{'n/a':>11}")
            continue
        times = f"{t_ours:>9.3f}{t_ref:>11.3f}{t_ref / t_ours:>9.1f}x"
        print(f"{name:<26}{value:>14.9f}{ref:>14.9f}{diff:>11.1e}{times}{flag}")

    print(f"\nbootstrap, {args.resamples} resamples of items (seed {args.seed}):")
    print(f"{'statistic':<26}{'estimate':>10}{'95% low':>10}{'95% high':>10}{'seconds':>9}{'ms/resample':>13}")
    for level, data in (("nominal", labels), ("interval", scores), ("ordinal", labels)):
        start = time.perf_counter()
        ci = krippendorff_alpha_ci(data, level, n_resamples=args.resamples, seed=args.seed)
        seconds = time.perf_counter() - start
        print(f"{'alpha ' + level:<26}{ci.estimate:>10.4f}{ci.low:>10.4f}{ci.high:>10.4f}{seconds:>9.2f}"
              f"{1000 * seconds / args.resamples:>13.2f}")

    if failed:
        print(f"\nMISMATCH: a value differs from its reference by more than {TOLERANCE}", file=sys.stderr)
        return 1
    print(f"\nall values equal the reference within {TOLERANCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
