"""The report's ratings and QA sections at EEmoDB scale (no database): rows → statistics.

    python bench/agreement_ratings_qa.py [--images 25000 --raters 40 --per-image 3 --pairs 1200000 --resamples 1000]

Ratings: ``--images`` images on one 0-10 scale, each rated by ``--per-image`` of
``--raters`` people (a fixed panel of three rates the first 2 % of images, so the ICC's
complete block is that panel) and by one model. QA: ``--pairs`` reviewed pairs over the
default five categories x five dimensions, as the selector streams them. Prints the
process CPU time of each section (``time.process_time``).
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

from agreement.qa_report import qa_section
from agreement.ratings import ratings_section
from agreement.results import ReportOptions
from agreement.selectors import QaReviewRow, RatingRow, ScaleInfo

CATEGORIES = ("perception", "attribution", "intensity", "counterfactual", "reasoning")
DIMENSIONS = ("scene", "subject", "atmosphere", "expression", "holistic")


def rating_rows(images: int, raters: int, per_image: int, seed: int = 0) -> list[RatingRow]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(1, 9, images)
    offsets = rng.normal(0, 0.7, raters)
    out = []
    for i in range(images):
        who = range(3) if i < images // 50 else rng.choice(raters, per_image, replace=False)
        for r in who:
            value = float(np.clip(np.round(truth[i] + offsets[r] + rng.normal(0, 1.2)), 0, 10))
            out.append(RatingRow(1, i, "human", f"rater-{r}", value))
        out.append(RatingRow(1, i, "model", "gpt-4o", float(np.clip(np.round(truth[i] + rng.normal(0, 1.5)), 0, 10))))
    return out


def qa_rows(pairs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    status = rng.choice(["accepted", "edited", "rejected"], pairs, p=[0.7, 0.15, 0.15])
    cats, dims = rng.integers(0, 5, pairs), rng.integers(0, 5, pairs)
    flip, critic = rng.random(pairs) < 0.2, rng.integers(0, 4, pairs)
    options = ["awe", "fear", "joy", "anger"]
    for i in range(pairs):
        s = str(status[i])
        human = 1 if not flip[i] or s == "accepted" else 2
        yield QaReviewRow(
            CATEGORIES[cats[i]],
            DIMENSIONS[dims[i]],
            s,
            "wrong_answer" if s == "rejected" else "",
            "multiple_choice",
            options,
            human,
            "",
            "model",
            "gpt-4o",
            "multiple_choice",
            options,
            1,
            "",
            str(critic[i]),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=25_000)
    parser.add_argument("--raters", type=int, default=40)
    parser.add_argument("--per-image", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=1_200_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    options = ReportOptions(n_resamples=args.resamples)
    ratings = rating_rows(args.images, args.raters, args.per_image)
    start = time.process_time()
    section = ratings_section([ScaleInfo(1, "intensity", "Intensity", 0.0, 10.0)], ratings, options)
    cpu = time.process_time() - start
    scale = section["scales"][0]
    icc = scale["icc"]["forms"]["ICC2"]
    print(
        f"ratings: {len(ratings)} ratings, {args.images} images, {args.raters} raters: {cpu:.2f} s CPU "
        f"(alpha with {args.resamples} resamples x 2 levels)"
    )
    print(
        f"  ICC(A,1) {icc['value']:.3f} [{icc['low']:.3f}, {icc['high']:.3f}] on {scale['icc']['n']} images x "
        f"{len(scale['icc']['raters'])} raters; alpha interval {scale['krippendorff_alpha_interval']['value']:.3f}, "
        f"ordinal {scale['krippendorff_alpha_ordinal']['value']:.3f}"
    )
    start = time.process_time()
    qa = qa_section(qa_rows(args.pairs), status_counts={}, categories={}, dimensions={}, confidence=0.95)
    cpu = time.process_time() - start
    print(
        f"qa: {args.pairs} reviewed pairs: {cpu:.2f} s CPU, {1e6 * cpu / args.pairs:.2f} us per pair "
        f"(row generation included); acceptance {qa['overall']['acceptance']['value']:.3f}, "
        f"model accuracy {qa['overall']['model_accuracy']['value']:.3f}, {len(qa['by_cell'])} cells"
    )


if __name__ == "__main__":
    main()
