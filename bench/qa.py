"""Benchmark of the QA pair import and exports: pairs per second, CPU and peak memory.

Creates a dataset of ``--images`` image rows (default 125,000, the rows only: the QA
import never opens an image file), writes ``--pairs`` QA pair lines (default 1.2M, spread
evenly over the images, every category, dimension and question type, the answer options
shuffled) as docs/qa-jsonl.md describes, then runs the real commands, each in its own
child process:

1. ``manage.py import_qa FILE --dataset bench --approved``;
2. ``manage.py export_dataset --dataset bench --format qa-jsonl``;
3. ``manage.py export_dataset --dataset bench --format qa-parquet``.

For each it prints wall seconds, pairs per wall second, the child's CPU seconds (user +
system) and CPU microseconds per pair, and the child's peak RSS. The database server's
own CPU is not in the child's. Peak RSS that does not grow with ``--pairs`` is the check
that import and export stream.

    python bench/qa.py --pg postgres://postgres@127.0.0.1:5432            # 1.2M pairs
    python bench/qa.py --pg postgres://postgres@127.0.0.1:5432 --pairs 100000 --images 10000

A database ``--db`` is created on the server and dropped at the end (``--keep`` keeps it);
the JSONL file and export folders live in a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.defaults import DEFAULT_CATEGORIES, DEFAULT_DIMENSIONS  # noqa: E402 (plain data, no Django)

EMOTIONS = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=1_200_000)
    p.add_argument("--images", type=int, default=125_000)
    p.add_argument("--pg", required=True, help="PostgreSQL server URL without a database name")
    p.add_argument("--db", default="emoverse_bench_qa", help="database created and dropped on that server")
    p.add_argument("--batch-size", type=int, default=5000)
    p.add_argument("--keep", action="store_true", help="keep the database at the end")
    p.add_argument("--formats", nargs="+", default=["qa-jsonl", "qa-parquet"], choices=["qa-jsonl", "qa-parquet"],
                   help="export formats to time")
    p.add_argument("--reuse", action="store_true",
                   help="time the exports only, on the database a --keep run left (its pairs are all accepted)")
    return p.parse_args()


def write_jsonl(path: Path, pairs: int, images: int) -> None:
    """``pairs`` lines over ``images`` images; distinct questions per image, all types and axes."""
    rng = random.Random(0)
    categories = [(key, types) for key, _, _, types in DEFAULT_CATEGORIES]
    dimensions = [key for key, _, _, _ in DEFAULT_DIMENSIONS]
    with open(path, "wb") as out:
        buf = []
        for i in range(pairs):
            image = i % images
            category, types = categories[i % len(categories)]
            dimension = dimensions[(i // len(categories)) % len(dimensions)]
            kind = types[(i // 25) % len(types)]
            emotion = EMOTIONS[i % 8]
            line = {"image": f"img/{image:07d}.jpg", "category": category, "dimension": dimension, "type": kind,
                    "question": f"Question {i // images} about image {image}: does the {dimension} evoke {emotion}?"}
            if kind == "multiple_choice":
                options = rng.sample(EMOTIONS, 4)
                line["options"], line["answer"] = options, rng.randrange(4)
            elif kind == "yes_no":
                line["answer"] = "yes" if rng.random() < 0.5 else "no"
            else:
                line["answer"] = f"The {dimension} with its muted colours evokes {emotion} in most viewers."
            line["rationale"] = "Grounded in the visible scene."
            line["model"], line["prompt_version"] = "gpt-4o", "qa_v1"
            buf.append(orjson.dumps(line))
            if len(buf) >= 10_000:
                out.write(b"\n".join(buf) + b"\n")
                buf.clear()
        if buf:
            out.write(b"\n".join(buf) + b"\n")


SEED = """
import django, sys
django.setup()
from django.db import connection
from annotations.models import Dataset
n = int(sys.argv[1])
dataset = Dataset.objects.create(slug="bench", name="bench")
with connection.cursor() as cur:
    cur.execute(
        "INSERT INTO annotations_image (dataset_id, file, thumbnail, sha256, original_name, width, height, source, "
        "status, priority, audit_draw, created_at, updated_at) "
        "SELECT %s, 'images/' || g || '.jpg', '', md5(g::text) || md5((g + 1)::text), "
        "'img/' || lpad(g::text, 7, '0') || '.jpg', 64, 48, 'web', 'new', 1.0, 0.5, now(), now() "
        "FROM generate_series(0, %s - 1) AS g", [dataset.pk, n])
print(dataset.pk)
"""


# Runs a management command, then prints the CPU seconds its PostgreSQL backend process used
# (read from /proc: the server runs on this machine), so the database's share is measured too.
COMMAND = """
import os, sys, django
django.setup()
from django.core.management import call_command
from django.db import connection
call_command(*sys.argv[1:])
with connection.cursor() as cur:
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
try:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    print("backend_cpu", (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
except OSError:
    print("backend_cpu nan")
"""


def run_command(env: dict, args: list[str]) -> tuple[float, float, float, float, str]:
    """:func:`run` of a management command, plus its database backend's CPU seconds."""
    wall, cpu, rss, output = run(env, ["-c", COMMAND, *args])
    lines = output.splitlines()
    backend = float(lines[-1].split()[1]) if lines and lines[-1].startswith("backend_cpu") else float("nan")
    return wall, cpu, rss, backend, "\n".join(lines[:-1])


def run(env: dict, args: list[str]) -> tuple[float, float, float, str]:
    """Wall seconds, child CPU seconds, child peak RSS (MiB) and output of ``python args``."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{output}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output.strip()


def psql(server: str, sql: str) -> None:
    subprocess.run(["psql", f"{server.rstrip('/')}/postgres", "-qc", sql], check=True)


def report(name: str, pairs: int, wall: float, cpu: float, rss: float, backend: float) -> None:
    """One result line. ``pairs/s (CPU)``: pairs per second of the command's own CPU and, after
    the slash, per second of its CPU plus its database backend's (the throughput on an
    otherwise idle machine with a core for each, and on a single core)."""
    print(f"{name:<18} {pairs:>9} pairs {wall:7.1f} s wall {pairs / wall:8.0f}/s wall | CPU {cpu:6.1f} s command "
          f"+ {backend:6.1f} s database: {pairs / cpu:8.0f} / {pairs / (cpu + backend):7.0f} pairs/s, "
          f"{cpu / pairs * 1e6:5.1f} + {backend / pairs * 1e6:5.1f} us/pair | peak RSS {rss:5.0f} MiB", flush=True)


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-qa-"))
    env = {**os.environ, "DATABASE_URL": f"{args.pg.rstrip('/')}/{args.db}", "DJANGO_SETTINGS_MODULE":
           "emoverse_site.settings", "MEDIA_ROOT": str(tmp / "media"), "EXPORT_ROOT": str(tmp / "exports"),
           "CELERY_TASK_ALWAYS_EAGER": "1"}
    if not args.reuse:
        psql(args.pg, f"DROP DATABASE IF EXISTS {args.db}")
        psql(args.pg, f"CREATE DATABASE {args.db}")
    try:
        if not args.reuse:
            import_and_time(env, args, tmp)
        for export_format in args.formats:
            wall, cpu, rss, backend, out = run_command(env, ["export_dataset", "--dataset", "bench", "--format",
                                                             export_format])
            print(out.splitlines()[-1])
            report(f"export {export_format}", args.pairs, wall, cpu, rss, backend)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep and not args.reuse:
            psql(args.pg, f"DROP DATABASE IF EXISTS {args.db}")


def import_and_time(env: dict, args: argparse.Namespace, tmp: Path) -> None:
    """Migrate, seed the image rows, write the JSONL file and time ``import_qa``."""
    run(env, ["manage.py", "migrate", "-v", "0"])
    wall, _, _, _ = run(env, ["-c", SEED, str(args.images)])
    print(f"seeded {args.images} image rows in {wall:.1f} s", flush=True)
    jsonl = tmp / "qa.jsonl"
    start = time.perf_counter()
    write_jsonl(jsonl, args.pairs, args.images)
    print(f"wrote {args.pairs} lines ({jsonl.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f} s",
          flush=True)
    wall, cpu, rss, backend, out = run_command(env, ["import_qa", str(jsonl), "--dataset", "bench", "--approved",
                                                     "--batch-size", str(args.batch_size)])
    print(out.splitlines()[-1])
    report("import_qa", args.pairs, wall, cpu, rss, backend)


if __name__ == "__main__":
    main()
