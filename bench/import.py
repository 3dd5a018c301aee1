"""Benchmark of ``manage.py import_emoverse``: lines per second and peak memory.

Writes ``--lines`` EmoVerse JSONL lines (default 219,000) over ``--lines / 2``
distinct small PNG files (two model annotators per image, one B-A-S triplet with
boxes and a subject mask, a CES distribution; ``--des`` adds a 1024-d DES vector
to every line), then runs the real command in a child process against a fresh
database and reports wall time, lines/s and the child's peak RSS. It runs the
same file a second time, when every line is a duplicate. Peak RSS that does not
grow with ``--lines`` is the check that the import streams.

    python bench/import.py                       # 219K lines, temporary SQLite database
    python bench/import.py --lines 10000
    python bench/import.py --lines 20000 --pg postgres://postgres@127.0.0.1:5432

With ``--pg`` a database ``--db`` is created on that server and dropped at the end.
Everything else lives in a temporary folder that is removed at the end.

Besides wall time it prints the CPU time of the import (its process and its file
workers) and the number of SQL statements it sent. Tasks the import queues (the phrase
embedding after it) go to ``--broker`` (default an in-memory broker nobody consumes), as
in a deployment where a worker runs them, instead of running in the importing process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repository's `core` package

from core.masks import encode_mask
from core.vocabulary import EMOTIONS

ANNOTATORS = ("gpt-4o", "gemini-2.5-pro")
WIDTH, HEIGHT = 32, 24


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=219_000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--des", action="store_true", help="add a 1024-d DES vector to every line (~20 KB per line)")
    p.add_argument("--pg", default="", help="PostgreSQL server URL without database name (default: a temporary SQLite file)")
    p.add_argument("--db", default="emoverse_bench_import", help="database created and dropped with --pg")
    p.add_argument("--no-rerun", action="store_true", help="skip the second (all duplicates) run")
    p.add_argument("--broker", default="memory://", help="CELERY_BROKER_URL of the import ('' runs its tasks in-process)")
    p.add_argument("--workers", type=int, default=0, help="EMOVERSE_IMPORT_WORKERS (0: one per CPU)")
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # internal: run the command, count queries
    return p.parse_args()


def child(command_args: list[str]) -> None:
    """Run ``import_emoverse`` in this process; print the SQL statements it sent (``COPY``
    counted apart) and, on a PostgreSQL server on this machine, its backend's CPU time."""
    import django
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    queries, copies = [0], [0]
    backend = _backend_pid(connection)
    real_copy = psycopg.Cursor.copy

    def count(execute, sql, params, many, context):
        queries[0] += 1
        return execute(sql, params, many, context)

    def count_copy(self, *args, **kwargs):
        copies[0] += 1
        return real_copy(self, *args, **kwargs)

    psycopg.Cursor.copy = count_copy
    with connection.execute_wrapper(count):
        try:
            call_command("import_emoverse", *command_args)
        finally:
            print(f"queries: {queries[0]} statements and {copies[0]} COPY")
            if backend is not None:
                print(f"backend CPU: {_cpu_seconds(backend):.2f} s")


def _backend_pid(connection) -> int | None:
    """The PostgreSQL backend's process id when its /proc entry is readable here, else None."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_images(folder: Path, count: int) -> None:
    """``count`` distinct PNGs: one random picture with the image number written into its first pixels."""
    base = np.random.default_rng(0).integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    for i in range(count):
        pixels = base.copy()
        pixels[0, :4, 0] = np.frombuffer(i.to_bytes(4, "big"), dtype=np.uint8)
        sub = folder / f"{i // 1000:04d}"
        sub.mkdir(exist_ok=True)
        PILImage.fromarray(pixels, "RGB").save(sub / f"{i:07d}.png", format="PNG", compress_level=1)


def write_jsonl(path: Path, lines: int, with_des: bool) -> None:
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[6:18, 8:24] = 1
    rle = encode_mask(mask)
    rng = np.random.default_rng(1)
    with open(path, "w", encoding="utf-8") as out:
        for n in range(lines):
            image, annotator = n // 2, ANNOTATORS[n % 2]
            label = EMOTIONS[(image + n % 2) % len(EMOTIONS)]
            confidence = 0.4 + 0.5 * rng.random()
            rest = (1 - confidence) / 7
            line = {
                "image": f"{image // 1000:04d}/{image:07d}.png",
                "source": "emoset",
                "triplets": [{
                    "background": {"phrase": "stormy sea", "box": [0, 0, WIDTH, HEIGHT // 2]},
                    "attribute": {"phrase": "dark, churning"},
                    "subject": {"phrase": "small boat", "box": [8, 6, 24, 18], "mask": rle},
                }],
                "ces": {"label": label, "confidence": confidence,
                        "distribution": {e: (confidence if e == label else rest) for e in EMOTIONS}},
                "rationale": "The dark waves around a tiny boat evoke fear.",
                "annotator": {"kind": "model", "name": annotator, "prompt_version": "annotate-v1"},
            }
            if with_des:
                line["des"] = np.round(rng.standard_normal(1024), 5).tolist()
            out.write(json.dumps(line) + "\n")


def run_import(env: dict, jsonl: Path, images: Path, batch_size: int) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (with its workers), peak RSS (MiB) and output of one ``import_emoverse`` child process."""
    cmd = [sys.executable, __file__, "--child", str(jsonl), "--images-dir", str(images),
           "--dataset", "bench-import", "--user", "bench", "--batch-size", str(batch_size), "--show-errors", "5"]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"import failed ({child.returncode}):\n{output}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, output.strip()


def _with_backend(cpu: float, output: str, lines: int) -> str:
    """The PostgreSQL backend's CPU (from the child's output) and lines per CPU-second of all of it."""
    found = re.search(r"^backend CPU: ([0-9.]+) s$", output, re.MULTILINE)
    if found is None:
        return f", {lines / cpu:,.0f} lines per CPU-second"
    backend = float(found.group(1))
    return f"; PostgreSQL backend {backend:.1f} s; {lines / (cpu + backend):,.0f} lines per CPU-second (all three)"


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def psql(server: str, sql: str) -> None:
    subprocess.run(["psql", f"{server}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True)


def main() -> None:
    args = parse_args()
    if args.child is not None:
        child(args.child)
        return
    tmp = Path(tempfile.mkdtemp(prefix="emoverse-bench-import-"))
    env = {**os.environ, "EMOVERSE_VAR_DIR": str(tmp / "var"), "MEDIA_ROOT": str(tmp / "media"),
           "DJANGO_SETTINGS_MODULE": "emoverse_site.settings", "LOG_LEVEL": "WARNING",
           "CELERY_BROKER_URL": args.broker, "EMOVERSE_IMPORT_WORKERS": str(args.workers)}
    if args.pg:
        env["DATABASE_URL"] = f"{args.pg}/{args.db}"
        psql(args.pg, f"DROP DATABASE IF EXISTS {args.db}")
        psql(args.pg, f"CREATE DATABASE {args.db}")
    else:
        env.pop("DATABASE_URL", None)
    try:
        images, jsonl = tmp / "images", tmp / "bench.jsonl"
        images.mkdir()
        n_images = (args.lines + 1) // 2
        t = time.perf_counter()
        write_images(images, n_images)
        write_jsonl(jsonl, args.lines, args.des)
        size = jsonl.stat().st_size
        print(f"wrote {n_images:,} PNGs and {args.lines:,} lines ({size / 2**20:.1f} MiB) in {time.perf_counter() - t:.1f} s")
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        database = "PostgreSQL" if args.pg else "SQLite"
        print(f"load average before: {_loadavg()}")
        wall, cpu, rss, output = run_import(env, jsonl, images, args.batch_size)
        print(output)
        print(f"first import ({database}, batch {args.batch_size}): {args.lines:,} lines in {wall:.1f} s = "
              f"{args.lines / wall:,.0f} lines/s, {n_images / wall:,.0f} new images/s; CPU {cpu:.1f} s "
              f"({cpu / args.lines * 1e6:,.0f} µs/line, import process and file workers){_with_backend(cpu, output, args.lines)}; "
              f"peak RSS {rss:.0f} MiB; load average {_loadavg()}")
        if args.lines < 219_000:
            print(f"  at that rate 219,000 lines take {219_000 / (args.lines / wall) / 60:.1f} min")
        if not args.no_rerun:
            wall, cpu, rss, output = run_import(env, jsonl, images, args.batch_size)
            print(output)
            print(f"re-import (every line a duplicate): {args.lines / wall:,.0f} lines/s; CPU {cpu:.1f} s "
                  f"({cpu / args.lines * 1e6:,.0f} µs/line){_with_backend(cpu, output, args.lines)}; peak RSS {rss:.0f} MiB; "
                  f"load average {_loadavg()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if args.pg:
            psql(args.pg, f"DROP DATABASE IF EXISTS {args.db}")


if __name__ == "__main__":
    main()
