"""The report's ratings and QA sections at EEmoDB scale (no database): rows → statistics.

    python bench/agreement_ratings_qa.py [--images 25000 --raters 40 --per-image 3 --pairs 1200000 --resamples 1000]
    python bench/agreement_ratings_qa.py --db 200000   # through the database named by DATABASE_URL

Ratings: ``--images`` images on one 0-10 scale, each rated by ``--per-image`` of
``--raters`` people (a fixed panel of three rates the first 2 % of images, so the ICC's
complete block is that panel) and by one model. QA: ``--pairs`` reviewed pairs over the
default five categories x five dimensions, as the selector streams them. Prints the
process CPU time of each section (``time.process_time``).

``--db N`` instead writes N generated pairs and their reviews (two versions each) into a
scratch dataset of the configured database (migrated), then times the report's QA
section as the report computes it: the selector's two streamed queries merged by key,
plus the statistics (process CPU and wall time; the database's own CPU is not in the
first). The scratch dataset is deleted afterwards.
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


def db_run(pairs: int, keep: bool = False) -> None:
    import uuid

    from django.db import connection, transaction

    from agreement.report import qa_section_of
    from agreement.selectors import ReportFilters
    from annotations.models import Dataset, Image
    from qa.models import QAPair
    from qa.selectors import qa_axes
    from qa.services import qa_config_install_defaults

    dataset = Dataset.objects.create(slug=f"bench-qa-{uuid.uuid4().hex[:8]}", name="bench qa")
    try:
        qa_config_install_defaults(dataset=dataset)
        axes = qa_axes(dataset_id=dataset.id)
        images = Image.objects.bulk_create(
            Image(
                dataset=dataset, file=f"bench/{i}.png", sha256=f"{i:064x}", original_name=f"{i}.png", width=8, height=8
            )
            for i in range(max(1, pairs // 10))
        )
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        batch = 20_000
        for offset in range(0, pairs, batch):
            rows = []
            for i, r in enumerate(qa_rows(min(batch, pairs - offset), seed=offset)):
                key, image = uuid.uuid4(), images[(offset + i) % len(images)]
                common = dict(
                    dataset=dataset,
                    image=image,
                    key=key,
                    category_id=axes.category_ids[r.category],
                    dimension_id=axes.dimension_ids[r.dimension],
                    question_type=r.question_type,
                    question=f"q{offset + i}",
                    options=r.options,
                    content_hash=f"{offset + i:064x}",
                    model_name="gpt-4o",
                    critic_answer=r.critic_answer,
                )
                rows.append(
                    QAPair(
                        version=1,
                        is_current=False,
                        answer_index=r.generated_answer_index,
                        author_kind="model",
                        author_name="gpt-4o",
                        status="pending",
                        **common,
                    )
                )
                rows.append(
                    QAPair(
                        version=2,
                        is_current=True,
                        answer_index=r.answer_index,
                        author_kind="human",
                        author_name="alice",
                        status=r.status,
                        reject_reason=r.reject_reason,
                        **common,
                    )
                )
            with transaction.atomic():
                QAPair.objects.bulk_create(rows, batch_size=5000)
        if connection.vendor == "postgresql":  # fresh statistics, as autovacuum would have them
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE qa_qapair")
        print(f"db: wrote {2 * pairs} pair versions in {time.perf_counter() - start:.1f} s wall")
        del rng
        wall, cpu = time.perf_counter(), time.process_time()
        qa = qa_section_of(dataset=dataset, filters=ReportFilters(), options=ReportOptions())
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"db qa section: {qa['counts']['reviewed']} reviewed pairs: {cpu:.2f} s CPU ({1e6 * cpu / pairs:.2f} us "
            f"per pair), {wall:.2f} s wall; acceptance {qa['overall']['acceptance']['value']:.3f}"
        )
    finally:
        if keep:
            print(f"kept dataset {dataset.slug}")
        else:
            with transaction.atomic():
                QAPair.objects.filter(dataset=dataset).delete()
                dataset.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=25_000)
    parser.add_argument("--raters", type=int, default=40)
    parser.add_argument("--per-image", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=1_200_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--db", type=int, default=0, help="write this many reviewed pairs and time the database path")
    parser.add_argument("--keep", action="store_true", help="with --db: keep the scratch dataset (to inspect plans)")
    args = parser.parse_args()
    if args.db:
        db_run(args.db, keep=args.keep)
        return
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
