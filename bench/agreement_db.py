"""The agreement report end to end on a throwaway SQLite database (streaming included).

    python bench/agreement_db.py [--items 20000 --reviewers 5 --overlap 0.1 --resamples 1000]

Creates a temporary database (``EMOVERSE_VAR_DIR`` in a temp folder, migrated), fills it
with bulk inserts (this is a benchmark, not the import path): per item two model
answers; an ``--overlap`` share reviewed by all reviewers, the rest by one; every
review with one triplet (three elements, boxes, a mask on the subject). Prints the
time to stream the rows and to build the full report, and the number of queries.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["EMOVERSE_VAR_DIR"] = tempfile.mkdtemp(prefix="agreement-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emoverse_site.settings")
os.environ.pop("DATABASE_URL", None)

import django

django.setup()

import numpy as np
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from agreement import selectors
from agreement.report import agreement_report
from agreement.results import ReportOptions
from agreement.selectors import ReportFilters
from annotations.models import Annotation, Dataset, Element, Image, Triplet
from core.masks import encode_mask
from core.vocabulary import EMOTIONS

W, H = 64, 48


def _mask(box) -> str:
    m = np.zeros((H, W), dtype=np.uint8)
    m[box[1]:box[3], box[0]:box[2]] = 1
    return encode_mask(m)["counts"]


@transaction.atomic
def fill(items: int, reviewers: int, overlap: float, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    dataset = Dataset.objects.create(slug="bench", name="bench")
    Image.objects.bulk_create(
        [Image(dataset=dataset, file=f"b/{i}.png", sha256=f"{i:064d}", original_name=f"{i}.png", width=W, height=H)
         for i in range(items)], batch_size=2000)
    image_ids = list(Image.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True))
    truth = rng.integers(0, 8, items)
    multi = rng.random(items) < overlap
    annotations, reviews = [], []
    for i, image_id in enumerate(image_ids):
        version = 1
        for m in range(2):
            label = truth[i] if rng.random() < 0.7 else rng.integers(0, 8)
            annotations.append(Annotation(image_id=image_id, version=version, kind="model", author_name=f"model-{m}",
                                          ces_label=EMOTIONS[label], ces_confidence=0.9))
            version += 1
        for r in (range(reviewers) if multi[i] else [int(rng.integers(0, reviewers))]):
            if multi[i] and rng.random() < 0.2:
                continue
            label = truth[i] if rng.random() < 0.8 else rng.integers(0, 8)
            annotations.append(Annotation(image_id=image_id, version=version, kind="human", author_name=f"reviewer-{r}",
                                          ces_label=EMOTIONS[label], ces_confidence=float(rng.random()), decision="approved"))
            reviews.append((len(annotations) - 1, bool(multi[i])))
            version += 1
    Annotation.objects.bulk_create(annotations, batch_size=2000)
    keys = {}
    triplets = []
    for index, is_multi in reviews:
        if is_multi:
            a = annotations[index]
            key = keys.setdefault(a.image_id, uuid.uuid4())
            triplets.append(Triplet(annotation=a, index=0, key=key))
    Triplet.objects.bulk_create(triplets, batch_size=2000)
    elements = []
    for t in triplets:
        dx = int(rng.integers(0, 4))
        box = (16 + dx, 12, 32 + dx, 24)
        elements += [
            Element(triplet=t, role="background", phrase="stormy sea", status="accepted", x0=0, y0=0, x1=W, y1=H // 2),
            Element(triplet=t, role="attribute", phrase="dark", status="rejected" if rng.random() < 0.1 else "accepted"),
            Element(triplet=t, role="subject", phrase="small boat", status="edited", x0=box[0], y0=box[1], x1=box[2],
                    y1=box[3], mask_counts=_mask(box), mask_height=H, mask_width=W),
        ]
    Element.objects.bulk_create(elements, batch_size=2000)
    return dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--reviewers", type=int, default=5)
    parser.add_argument("--overlap", type=float, default=0.1)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    t = time.perf_counter()
    dataset = fill(args.items, args.reviewers, args.overlap)
    print(f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}; filled {args.items} items in {time.perf_counter() - t:.1f} s: "
          f"{Annotation.objects.count()} annotations, {Element.objects.count()} elements")
    filters = ReportFilters()
    t = time.perf_counter()
    n_labels = sum(1 for _ in selectors.label_rows(dataset=dataset, filters=filters))
    t_labels = time.perf_counter() - t
    t = time.perf_counter()
    n_elements = sum(1 for _ in selectors.human_element_rows(dataset=dataset, filters=filters))
    t_elements = time.perf_counter() - t
    print(f"stream label rows    {t_labels:6.2f} s ({n_labels} rows)")
    print(f"stream element rows  {t_elements:6.2f} s ({n_elements} rows)")
    with CaptureQueriesContext(connection) as queries:
        t = time.perf_counter()
        report = agreement_report(dataset=dataset, options=ReportOptions(n_resamples=args.resamples))
        elapsed = time.perf_counter() - t
    alpha = report["labels"]["krippendorff_alpha"]
    print(f"full report          {elapsed:6.2f} s, {len(queries.captured_queries)} queries; "
          f"alpha {alpha['value']:.4f} [{alpha['low']:.4f}, {alpha['high']:.4f}] on {alpha['n']} items; "
          f"box IoU mean {report['elements']['box_iou']['mean']:.3f} over {report['elements']['box_iou']['count']} pairs")


if __name__ == "__main__":
    main()
