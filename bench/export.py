"""Benchmark of dataset export: images per second and peak memory for each format.

Builds a dataset of ``--images`` approved images (default 219,000), each with an
approved final annotation of two B-A-S triplets (six elements: four boxes, two
RLE masks), a CES label and distribution, a 1024-float DES vector and a
rationale, in a dedicated PostgreSQL database that it creates and drops
(``--sqlite``: a SQLite file in a temporary folder instead). Rows are written
with COPY on PostgreSQL (``bulk_create`` on SQLite); every image row points at one tiny PNG.

Then each format is exported by the real service (``exports.services``,
``exports.runs``) in a fresh child process, which reports wall and CPU time, images per second, the
peak RSS during the export (sampled from ``/proc/self/statm`` every 20 ms) and its
growth over the RSS before the export, and the output size. (``process_peak_rss_mb``,
from ``resource.getrusage``, includes the high-water mark the child inherits from
the parent that built the data, so it is not the export's own.) With ``--tracemalloc`` the child also reports the peak of
Python allocations (slower).

    python bench/export.py                         # 219K images on PostgreSQL
    python bench/export.py --images 20000 --sqlite
    python bench/export.py --reuse                 # build once, keep; later runs reuse the database

The queries of each export are counted (``queries``: every statement the export
sent, progress saves included).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from core.vocabulary import EMOTIONS

SOURCES = ["emoset", "emoart", "flickr30k", "web", "aigc"]
WIDTH, HEIGHT = 64, 48
SLUG = "bench-export"
FORMATS = ("emoverse-jsonl", "coco", "parquet")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=219_000)
    p.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats to export")
    p.add_argument("--images-mode", default="none", choices=["none", "copy", "link", "url"], help="the export's images option")
    p.add_argument("--sqlite", action="store_true", help="SQLite file instead of PostgreSQL")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"),
                   help="PostgreSQL server URL without database name")
    p.add_argument("--db", default="emoverse_bench_export", help="PostgreSQL database to create and drop")
    p.add_argument("--keep", action="store_true", help="keep the database and the work folder")
    p.add_argument("--reuse", action="store_true",
                   help="use the database --db as it is when it already holds the benchmark dataset of --images images "
                        "(built and kept by an earlier run); build it otherwise, and keep it")
    p.add_argument("--workers", type=int, default=None,
                   help="EMOVERSE_EXPORT_WORKERS for the export (default: the setting's default, the CPU count up to 4; "
                        "0: encode in the export's own process)")
    p.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations in the export (slower)")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: export one format in this process
    return p.parse_args()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler(threading.Thread):
    """The highest resident set size seen while it runs (sampled every 20 ms).

    ``ru_maxrss`` is the peak of the whole process, which start-up may already
    hold; sampling gives the export's own peak.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = current_rss_mb()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, current_rss_mb())

    def stop(self) -> float:
        self._done.set()
        self.join()
        return max(self.peak, current_rss_mb())


class BackendCpu(threading.Thread):
    """CPU seconds of the PostgreSQL backends serving ``database`` (the export's and its workers'),
    read from ``/proc/<pid>/stat`` every 0.2 s: a backend that ends between two reads loses at most
    its last 0.2 s."""

    def __init__(self, database: str) -> None:
        super().__init__(daemon=True)
        self._tag = f" {database} ".encode()
        self._start: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._done = threading.Event()
        self._read(first=True)

    def _read(self, first: bool = False) -> None:
        for pid in (p for p in os.listdir("/proc") if p.isdigit()):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    cmdline = handle.read()
                if not cmdline.startswith(b"postgres: ") or self._tag not in cmdline.replace(b"\0", b" "):
                    continue
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks = int(fields[11]) + int(fields[12])
            if first:
                self._start[int(pid)] = ticks
            self._last[int(pid)] = ticks

    def run(self) -> None:
        while not self._done.wait(0.2):
            self._read()

    def stop(self) -> float:
        self._done.set()
        self.join()
        self._read()
        ticks = sum(last - self._start.get(pid, 0) for pid, last in self._last.items())
        return ticks / os.sysconf("SC_CLK_TCK")


def setup_django(database_url: str, work: Path) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["MEDIA_ROOT"] = str(work / "media")
    os.environ["EXPORT_ROOT"] = str(work / "exports")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emoverse_site.settings")
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()


# --- data ------------------------------------------------------------------------------------


def masks() -> list[str]:
    import numpy as np

    from core.masks import encode_mask

    out = []
    for k in range(8):
        m = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
        m[4 + k: 30 + k, 6 + 2 * k: 40 + 2 * k] = 1
        m[10 + k: 14 + k, 2:60] = 1
        out.append(encode_mask(m)["counts"])
    return out


def write_png() -> str:
    """The one tiny PNG every image row points at, in this run's media folder."""
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    buf = io.BytesIO()
    PILImage.new("RGB", (WIDTH, HEIGHT), (40, 60, 90)).save(buf, format="PNG")
    return default_storage.save("images/bench.png", io.BytesIO(buf.getvalue()))


def build(n_images: int, chunk: int = 20_000) -> float:
    """The benchmark dataset, written with COPY (``bulk_create`` took an hour for 219K images on a loaded machine).

    Ids are assigned here from the tables' current maxima, and the identity sequences moved past them.
    """
    import uuid

    import numpy as np
    import orjson
    from django.db import connection, transaction
    from django.utils import timezone

    from annotations.models import Dataset

    started = time.perf_counter()
    file_name = write_png()
    dataset = Dataset.objects.create(slug=SLUG, name="Export benchmark")
    rng = np.random.default_rng(0)
    rles = masks()
    now = timezone.now()
    tables = ("annotations_image", "annotations_annotation", "annotations_triplet", "annotations_element")
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(f"SELECT (SELECT coalesce(max(id), 0) FROM {t})" for t in tables))
        image_id, annotation_id, triplet_id, element_id = (row[0] for row in cursor.fetchall())
    distributions = [orjson.dumps({e: (0.65 if j == k else 0.05) for j, e in enumerate(EMOTIONS)}).decode()
                     for k in range(len(EMOTIONS))]
    background = ("background", "stormy sky over the sea", "accepted", 0, 0, WIDTH, HEIGHT / 2, 0.8, None, None, None, None)
    attribute = ("attribute", "dark, churning", "accepted", None, None, None, None, None, None, None, None, None)
    for start in range(0, n_images, chunk):
        n = min(chunk, n_images - start)
        labels = rng.integers(0, 8, n)
        agreement = rng.random(n)
        des = rng.standard_normal((n, 1024)).astype("<f4")
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor
            with raw.copy("COPY annotations_image (id, dataset_id, file, thumbnail, sha256, original_name, width, height, "
                          "source, status, priority, label, confidence, agreement, created_at, updated_at, audit_draw) "
                          "FROM STDIN") as copy:
                for i in range(n):
                    k = start + i
                    copy.write_row((image_id + 1 + k, dataset.pk, file_name, "", f"{k:064x}", f"img/{k:06d}.png", WIDTH,
                                    HEIGHT, SOURCES[k % 5], "approved", 1.0, EMOTIONS[labels[i]], 0.7,
                                    float(agreement[i]), now, now, 0.5))
            with raw.copy("COPY annotations_annotation (id, image_id, version, kind, author_name, is_current, decision, "
                          "decision_reason, ces_label, ces_confidence, ces_distribution, des, rationale, prompt_version, "
                          "pipeline_version, raw_output, extra, created_at) FROM STDIN") as copy:
                for i in range(n):
                    k = start + i
                    copy.write_row((annotation_id + 1 + k, image_id + 1 + k, 1, "import", "import", True, "approved", "",
                                    EMOTIONS[labels[i]], 0.65, distributions[labels[i]], des[i].tobytes(),
                                    "The dark clouds over the empty road evoke a quiet fear.", "", "", "", "{}", now))
            with raw.copy("COPY annotations_triplet (id, annotation_id, index, key) FROM STDIN") as copy:
                for i in range(n):
                    for t in range(2):
                        copy.write_row((triplet_id + 1 + 2 * (start + i) + t, annotation_id + 1 + start + i, t, uuid.uuid4()))
            with raw.copy("COPY annotations_element (id, triplet_id, role, phrase, status, x0, y0, x1, y1, box_score, "
                          "mask_counts, mask_height, mask_width, mask_score) FROM STDIN") as copy:
                for j in range(2 * n):
                    t = 2 * start + j
                    subject = ("subject", "a small fishing boat", "edited", 6, 4, 44, 38, 0.9, rles[t % 8], HEIGHT, WIDTH, 0.95)
                    for r, values in enumerate((background, attribute, subject)):
                        copy.write_row((element_id + 1 + 3 * t + r, triplet_id + 1 + t, *values))
        print(f"\r  built {start + n:,} / {n_images:,} images", end="", flush=True)
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("ANALYZE")
    print()
    return time.perf_counter() - started


def build_orm(n_images: int, chunk: int = 5000) -> float:
    """The benchmark dataset through ``bulk_create`` (SQLite)."""
    import numpy as np

    from annotations.models import Annotation, Dataset, Element, Image, Triplet

    started = time.perf_counter()
    file_name = write_png()
    dataset = Dataset.objects.create(slug=SLUG, name="Export benchmark")
    rng = np.random.default_rng(0)
    rles = masks()
    for start in range(0, n_images, chunk):
        n = min(chunk, n_images - start)
        labels = rng.integers(0, 8, n)
        images = Image.objects.bulk_create([
            Image(dataset=dataset, file=file_name, sha256=f"{start + i:064x}", original_name=f"img/{start + i:06d}.png",
                  width=WIDTH, height=HEIGHT, source=SOURCES[(start + i) % 5], status="approved",
                  label=EMOTIONS[labels[i]], confidence=0.7, agreement=float(rng.random()))
            for i in range(n)
        ])
        des = rng.standard_normal((n, 1024)).astype("<f4")
        annotations = Annotation.objects.bulk_create([
            Annotation(image=image, version=1, kind="import", author_name="import", decision="approved",
                       ces_label=EMOTIONS[labels[i]], ces_confidence=0.65,
                       ces_distribution={e: (0.65 if j == labels[i] else 0.05) for j, e in enumerate(EMOTIONS)},
                       des=des[i].tobytes(), rationale="The dark clouds over the empty road evoke a quiet fear.")
            for i, image in enumerate(images)
        ])
        triplets = Triplet.objects.bulk_create([Triplet(annotation=a, index=t) for a in annotations for t in range(2)])
        elements = []
        for k, triplet in enumerate(triplets):
            elements += [
                Element(triplet=triplet, role="background", phrase="stormy sky over the sea", status="accepted",
                        x0=0, y0=0, x1=WIDTH, y1=HEIGHT / 2, box_score=0.8),
                Element(triplet=triplet, role="attribute", phrase="dark, churning", status="accepted"),
                Element(triplet=triplet, role="subject", phrase="a small fishing boat", status="edited",
                        x0=6, y0=4, x1=44, y1=38, box_score=0.9, mask_counts=rles[k % 8], mask_height=HEIGHT,
                        mask_width=WIDTH, mask_score=0.95),
            ]
        Element.objects.bulk_create(elements)
        print(f"\r  built {start + n:,} / {n_images:,} images", end="", flush=True)
    print()
    return time.perf_counter() - started


# --- one export (child process) ------------------------------------------------------------


def child(export_format: str, images_mode: str, trace: bool, workers: int | None) -> None:
    import tracemalloc

    from django.conf import settings

    from annotations.models import Dataset
    from exports import runs, selectors, services
    from exports.filters import ExportFilters

    if workers is not None:
        settings.EMOVERSE_EXPORT_WORKERS = workers
    dataset = Dataset.objects.get(slug=SLUG)
    options = {"images": images_mode}
    snapshot = services.export_create(dataset=dataset, export_format=export_format, options=options)
    selectors.export_images(dataset=dataset, filters=ExportFilters()).count()  # warm the connection
    before = current_rss_mb()
    if trace:
        tracemalloc.start()
    from django.db import connection

    queries = [0]

    def count(execute, sql, params, many, context):
        queries[0] += 1
        return execute(sql, params, many, context)

    sampler = RssSampler()
    sampler.start()
    backends = None if connection.vendor != "postgresql" else BackendCpu(connection.settings_dict["NAME"])
    if backends is not None:
        backends.start()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    cpu, times = time.process_time(), os.times()
    with connection.execute_wrapper(count):
        snapshot = runs.export_run(snapshot_id=snapshot.pk)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    workers_cpu = os.times().children_user + os.times().children_system - times.children_user - times.children_system
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    pg_cpu = backends.stop() if backends is not None else 0.0
    peak = sampler.stop()
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if trace else None
    if snapshot.status != "complete":
        raise SystemExit(f"{export_format}: {snapshot.error}")
    size = sum(f["bytes"] for f in snapshot.manifest["files"])
    print(json.dumps({
        "format": export_format, "images": snapshot.manifest["counts"]["images"], "seconds": round(seconds, 1),
        "images_per_s": round(snapshot.manifest["counts"]["images"] / seconds), "cpu_seconds": round(cpu, 1),
        "workers_cpu_seconds": round(workers_cpu, 1), "postgres_cpu_seconds": round(pg_cpu, 1),
        "images_per_cpu_s": round(snapshot.manifest["counts"]["images"] / max(cpu + workers_cpu + pg_cpu, 1e-9)),
        "load_before": round(load_before, 1), "load_after": round(os.getloadavg()[0], 1),
        "workers_peak_rss_mb": round(workers_rss, 1),
        "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1), "rss_growth_mb": round(peak - before, 1),
        "process_peak_rss_mb": round(rss_mb(), 1), "queries": queries[0],
        "tracemalloc_peak_mb": None if traced is None else round(traced, 1), "output_mb": round(size / 2**20, 1),
    }))
    shutil.rmtree(selectors.final_dir(snapshot))


# --- main ----------------------------------------------------------------------------------


def database_exists(pg: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def built_images() -> int:
    """How many images the kept benchmark dataset holds (0: none)."""
    from annotations.models import Image

    return Image.objects.filter(dataset__slug=SLUG).count()


def admin_sql(pg: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def main() -> None:
    args = parse_args()
    if args.child:
        setup_django(os.environ["BENCH_DATABASE_URL"], Path(os.environ["BENCH_WORK"]))
        child(args.child, args.images_mode, args.tracemalloc, args.workers)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    database_url = f"sqlite:///{work / 'bench.sqlite3'}" if args.sqlite else f"{args.pg}/{args.db}"
    reuse = args.reuse and not args.sqlite and database_exists(args.pg, args.db)
    if not args.sqlite and not reuse:
        admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{args.db}"')
        admin_sql(args.pg, f'CREATE DATABASE "{args.db}"')
    keep = args.keep or args.reuse
    try:
        setup_django(database_url, work)
        from django.core.management import call_command
        from django.db import connections

        call_command("migrate", verbosity=0)
        built = reuse and built_images() == args.images
        if built:
            print(f"Reusing {args.images:,} images in {args.db}")
            write_png()
        else:
            if reuse:
                raise SystemExit(f"{args.db} holds another dataset size; drop it or name another --db")
            print(f"Building {args.images:,} images on {'SQLite' if args.sqlite else 'PostgreSQL'}…")
            print(f"  built in {(build_orm if args.sqlite else build)(args.images):.0f} s")
        connections.close_all()
        env = {**os.environ, "BENCH_DATABASE_URL": database_url, "BENCH_WORK": str(work)}
        results = []
        for export_format in args.formats.split(","):
            command = [sys.executable, __file__, "--child", export_format, "--images-mode", args.images_mode]
            if args.tracemalloc:
                command.append("--tracemalloc")
            if args.workers is not None:
                command += ["--workers", str(args.workers)]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(f"{export_format} failed:\n{out.stderr[-4000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]))
        print(f"\n{'format':<16}{'images':>9}{'seconds':>9}{'images/s':>10}{'CPU s':>8}{'workers':>8}{'pg':>6}"
              f"{'img/CPU-s':>10}{'load':>6}{'peak RSS':>10}{'workers RSS':>12}{'output MB':>11}")
        for r in results:
            print(f"{r['format']:<16}{r['images']:>9,}{r['seconds']:>9}{r['images_per_s']:>10,}{r['cpu_seconds']:>8}"
                  f"{r['workers_cpu_seconds']:>8}{r['postgres_cpu_seconds']:>6}{r['images_per_cpu_s']:>10,}"
                  f"{r['load_before']:>6}{r['peak_rss_mb']:>10}{r['workers_peak_rss_mb']:>12}{r['output_mb']:>11}")
    finally:
        if not keep:
            from django.db import connections

            connections.close_all()
            if not args.sqlite:
                admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{args.db}"')
            shutil.rmtree(work, ignore_errors=True)
        else:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            print(f"kept: {database_url}" + (f", {work}" if args.keep else ""))


if __name__ == "__main__":
    main()
