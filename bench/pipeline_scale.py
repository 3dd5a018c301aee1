"""The pre-annotation pipeline at scale: simulated images through the real tasks, queues,
database writes and sweep, with stage backends that only sleep (``bench/scale_backends.py``).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/emoverse_bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/3 \\
    python bench/pipeline_scale.py --images 200 --factor 0.02 --api-concurrency 24

Real ``celery worker`` processes on Redis: one ``io`` worker (thread pool of
``--api-concurrency``: the chat calls of both annotators and the critic) and ``--gpu-workers``
workers on ``-Q refine,gpu`` (solo pool, prefetch 1: one batch at a time, like a GPU), the
real ``ml.tasks`` chain per image, PostgreSQL writes, and the real stuck-run sweep
(``services.sweep_stale_runs``) every ``--sweep-every`` seconds with a short grace, so it
judges every waiting run. Meanwhile a reviewer's click-to-refine is sent every
``--refine-every`` seconds to the ``refine`` queue and its round trip timed.

Per-image times (``--sam-s`` 0.12, ``--dino-s`` 0.12 for SAM-H and Grounding DINO-B on
one GPU, ``--chat-s`` 8 per chat call) are multiplied by ``--factor`` for the run here;
the projection for ``--project`` images (219K) uses the unscaled times plus the measured
orchestration cost. Printed: orchestration CPU per image (the workers' and Redis's
process CPU, not wall time), SQL statements per image (counted in every worker), runs
sent again or failed (must be 0), stage calls made twice, refine latency p50/p95 under
the bulk load, and projected wall times with 1, 4 and 16 GPU workers for several API
concurrencies. ``--images 219000`` runs the full size (hours; the image rows are
created in bulk first).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--factor", type=float, default=0.02, help="scale of every simulated model time for this run")
    p.add_argument("--gpu-factor", type=float, help="scale of the GPU times only (default: --factor)")
    p.add_argument("--sam-s", type=float, default=0.12, help="SAM-H seconds per image (GPU)")
    p.add_argument("--dino-s", type=float, default=0.12, help="Grounding DINO-B seconds per image (GPU)")
    p.add_argument("--chat-s", type=float, default=8.0, help="seconds per chat call (2 annotators + critic per image)")
    p.add_argument("--api-concurrency", type=int, default=24, help="chat calls in flight (io worker threads)")
    p.add_argument("--gpu-workers", type=int, default=1)
    p.add_argument("--gpu-batch", type=int, default=8)
    p.add_argument(
        "--refine-worker",
        action="store_true",
        help="also start a worker that serves only the refine queue (one per GPU machine in production)",
    )
    p.add_argument("--refine-every", type=float, default=0.5)
    p.add_argument("--sweep-every", type=float, default=3.0)
    p.add_argument("--project", type=int, default=219_000)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--keep", action="store_true", help="keep the dataset afterwards")
    return p.parse_args()


def configure(args: argparse.Namespace, workdir: Path) -> dict[str, str]:
    f = args.factor
    g = args.gpu_factor if args.gpu_factor is not None else f
    config = {
        "pipeline_version": f"scale-{int(time.time())}",
        "gpu_batch_size": args.gpu_batch,
        "embedder": None,
        "annotators": [
            {
                "name": name,
                "backend": "bench.scale_backends.SleepAnnotator",
                "queue": "io",
                "options": {"name": name, "seconds": args.chat_s * f, "peak": peak},
            }
            for name, peak in (("annotator-a", "awe"), ("annotator-b", "contentment"))
        ],
        "critic": {
            "name": "critic",
            "backend": "bench.scale_backends.SleepCritic",
            "queue": "io",
            "options": {"seconds": args.chat_s * f},
        },
        "grounder": {
            "backend": "bench.scale_backends.SleepGrounder",
            "options": {"seconds_per_image": args.dino_s * g},
        },
        "segmenter": {
            "backend": "bench.scale_backends.SleepSegmenter",
            "options": {"seconds_per_image": args.sam_s * g, "seconds_per_prompt": 0.004 * g},
        },
    }
    path = workdir / "ml.json"
    path.write_text(json.dumps(config))
    env = {
        "DJANGO_SETTINGS_MODULE": "emoverse_site.settings",
        "EMOVERSE_ML_CONFIG": str(path),
        "MEDIA_ROOT": str(workdir / "media"),
        "EMOVERSE_PIPELINE_STUCK_GRACE_S": "2",
        "CELERY_RESULT_BACKEND": os.environ["CELERY_BROKER_URL"],
        "BENCH_COUNT_QUERIES": "1",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    return env


def make_images(dataset, n: int) -> None:
    import hashlib
    import io
    import zlib

    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    from annotations.models import Image, ImageStatus

    rows = []
    for i in range(n):
        pixels = bytes((i * 7 + k) % 251 for k in range(64 * 48 * 3))
        buffer = io.BytesIO()
        PILImage.frombytes("RGB", (64, 48), pixels).save(buffer, format="PNG")
        data = buffer.getvalue() + zlib.crc32(str(i).encode()).to_bytes(4, "big")  # unique content per image
        sha = hashlib.sha256(data).hexdigest()
        name = default_storage.save(f"images/{dataset.pk}/{sha[:2]}/{sha}.png", ContentFile(data))
        rows.append(
            Image(
                dataset=dataset,
                file=name,
                sha256=sha,
                original_name=f"sim/{i:06d}.png",
                width=64,
                height=48,
                status=ImageStatus.NEW,
            )
        )
        if len(rows) == 2000:
            Image.objects.bulk_create(rows)
            rows = []
    Image.objects.bulk_create(rows)


def start_workers(args, env) -> list[subprocess.Popen]:
    base = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "emoverse_site",
        "worker",
        "-l",
        "warning",
        "-I",
        "bench.scale_backends",
        "--without-gossip",
        "--without-mingle",
        "--prefetch-multiplier",
        "1",
    ]
    full = {**os.environ, **env}
    log = open(Path(env["MEDIA_ROOT"]).parent / "workers.log", "ab")  # noqa: SIM115 - the workers' lifetime
    print(f"worker logs: {log.name}", flush=True)
    procs = [
        subprocess.Popen(
            [*base, "-Q", "io", "-P", "threads", "-c", str(args.api_concurrency), "-n", "io@bench"],
            env=full,
            cwd=ROOT,
            start_new_session=True,
            stdout=log,
            stderr=log,
        )
    ]
    for i in range(args.gpu_workers):
        procs.append(
            subprocess.Popen(
                [*base, "-Q", "refine,gpu", "-P", "solo", "-n", f"gpu{i}@bench"],
                env=full,
                cwd=ROOT,
                start_new_session=True,
                stdout=log,
                stderr=log,
            )
        )
    if args.refine_worker:
        procs.append(
            subprocess.Popen(
                [*base, "-Q", "refine", "-P", "solo", "-n", "refine@bench"],
                env=full,
                cwd=ROOT,
                start_new_session=True,
                stdout=log,
                stderr=log,
            )
        )
    return procs


def wait_ready(app, expected: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= expected:
            return
    raise SystemExit(f"the {expected} workers did not start within {timeout:.0f}s")


def cpu_seconds(procs: list[subprocess.Popen]) -> float:
    import psutil

    total = 0.0
    for proc in procs:
        try:
            parent = psutil.Process(proc.pid)
            for p in [parent, *parent.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def redis_cpu(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class Refiner(threading.Thread):
    """A reviewer clicking: one refine every ``every`` seconds on a rotating image; round trips."""

    def __init__(self, app, image_ids: list[int], every: float):
        super().__init__(daemon=True)
        self.app, self.image_ids, self.every = app, image_ids, every
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            image_id = self.image_ids[i % len(self.image_ids)]
            started = time.perf_counter()
            try:
                result = self.app.send_task(
                    "ml.tasks.gpu_refine_mask",
                    args=[image_id, [2.0, 2.0, 30.0, 20.0], [[10.0, 10.0]], [1]],
                    queue="refine",
                    expires=20,
                )
                result.get(timeout=20)
                self.latencies.append(time.perf_counter() - started)
            except Exception as exc:  # a timeout is a figure too
                self.failures.append(f"{type(exc).__name__}: {exc}")
            i += 1
            self.stop.wait(self.every)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    args = parse_args()
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        if not os.environ.get(name):
            raise SystemExit(f"set {name} (PostgreSQL and a Redis database of its own)")
    workdir = Path(tempfile.mkdtemp(prefix="pipeline-scale-"))
    env = configure(args, workdir)

    import django

    django.setup()
    import redis
    from celery import current_app
    from django.core.management import call_command
    from django.db import connection

    from annotations.models import Dataset
    from bench import scale_backends
    from ml import services
    from ml.models import PipelineRun, RunStatus, StageResult

    call_command("migrate", verbosity=0)
    client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    client.flushdb()
    dataset = Dataset.objects.create(slug=f"scale-{int(time.time())}", name="pipeline_scale simulated images")
    t = time.perf_counter()
    make_images(dataset, args.images)
    print(f"{args.images} simulated images created in {time.perf_counter() - t:.1f}s", flush=True)

    procs = start_workers(args, env)
    refiner = None
    try:
        wait_ready(current_app, 1 + args.gpu_workers + int(args.refine_worker))
        refine_ids = list(dataset.images.order_by("id").values_list("pk", flat=True)[:50])
        client.delete(scale_backends.BENCH_QUERY_KEY)
        own_queries = {"n": 0}

        def count(execute, sql, params, many, context):
            own_queries["n"] += 1
            return execute(sql, params, many, context)

        gpu_procs = procs[1 : 1 + args.gpu_workers]
        cpu0, redis0, bench0, gpu0 = cpu_seconds(procs), redis_cpu(client), time.process_time(), cpu_seconds(gpu_procs)
        started = time.perf_counter()
        refiner = Refiner(current_app, refine_ids, args.refine_every)
        refiner.start()
        with connection.execute_wrapper(count):
            result = services.enqueue_preannotation(dataset=dataset)
        enqueue_s = time.perf_counter() - started
        resent = gave_up = sweeps = 0
        sweep_queries = {"n": 0}

        def count_sweep(execute, sql, params, many, context):
            sweep_queries["n"] += 1
            return execute(sql, params, many, context)

        runs = PipelineRun.objects.filter(image__dataset=dataset)
        next_sweep = time.monotonic() + 1.0
        while True:  # the polling here is not counted: only the pipeline's own statements are
            finished = runs.filter(status__in=[RunStatus.DONE, RunStatus.FAILED]).count()
            if finished >= result.enqueued or time.perf_counter() - started > args.timeout:
                break
            if time.monotonic() >= next_sweep:
                with connection.execute_wrapper(count_sweep):
                    swept = services.sweep_stale_runs()
                resent, gave_up, sweeps = resent + swept.resent, gave_up + swept.gave_up, sweeps + 1
                next_sweep = time.monotonic() + args.sweep_every
            time.sleep(0.25)
        wall = time.perf_counter() - started
        refiner.stop.set()
        refiner.join(timeout=25)
        time.sleep(1.5)  # the workers' last counts reach Redis
        cpu = cpu_seconds(procs) - cpu0
        gpu_cpu = cpu_seconds(gpu_procs) - gpu0
        redis_s = redis_cpu(client) - redis0
        bench_s = time.process_time() - bench0
        worker_queries = int(client.get(scale_backends.BENCH_QUERY_KEY) or 0)
        n = args.images
        done = runs.filter(status=RunStatus.DONE).count()
        failed = runs.filter(status=RunStatus.FAILED).count()
        sent_again = sum(max(0, e - 1) for e in runs.values_list("enqueued", flat=True))
        twice = StageResult.objects.filter(run__in=runs, attempt__gt=1).count()
        batches = [
            r["batch_size"]
            for r in StageResult.objects.filter(run__in=runs, stage="save").values_list("output", flat=True)
            if r
        ]
        report(
            args,
            n=n,
            done=done,
            failed=failed,
            wall=wall,
            enqueue_s=enqueue_s,
            cpu=cpu,
            redis_s=redis_s,
            bench_s=bench_s,
            queries=worker_queries + own_queries["n"],
            resent=resent,
            gave_up=gave_up,
            sent_again=sent_again,
            twice=twice,
            sweeps=sweeps,
            refiner=refiner,
            sweep_queries=sweep_queries["n"],
            batch=sum(batches) / max(1, len(batches)),
            gpu_cpu=gpu_cpu,
        )
    finally:
        if refiner is not None:
            refiner.stop.set()
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if not args.keep:
            dataset.delete()
        client.flushdb()


def report(
    args,
    *,
    n,
    done,
    failed,
    wall,
    enqueue_s,
    cpu,
    redis_s,
    bench_s,
    queries,
    resent,
    gave_up,
    sent_again,
    twice,
    sweeps,
    refiner,
    sweep_queries,
    batch,
    gpu_cpu,
) -> None:
    f = args.factor
    g = args.gpu_factor if args.gpu_factor is not None else f
    per_image_cpu = (cpu + redis_s + bench_s) / n
    gpu_cpu_per_image = gpu_cpu / n  # on the GPU worker's own (serial) path
    lat = refiner.latencies
    print()
    print(
        f"images {n}: done {done}, failed {failed}; wall {wall:.1f}s ({n / wall:.1f} images/s) at factor {f} "
        f"(chat {args.chat_s * f:.3f}s/call, DINO {args.dino_s * g:.4f}s + SAM {args.sam_s * g:.4f}s per image), "
        f"{args.gpu_workers} GPU worker(s), {args.api_concurrency} chat calls in flight; enqueue {enqueue_s:.1f}s"
    )
    print(
        f"orchestration CPU per image: {per_image_cpu * 1000:.1f} ms (workers {cpu / n * 1000:.1f}, of which the "
        f"GPU worker {gpu_cpu_per_image * 1000:.1f}, "
        f"Redis {redis_s / n * 1000:.1f}, bench process: enqueue, sweeps, refine client, polling {bench_s / n * 1000:.1f}); process CPU, sleeps excluded"
    )
    print(
        f"SQL statements per image: {queries / n:.1f} (every worker and the enqueue; the refine clicks included; "
        f"mean GPU batch {batch:.1f} images); the sweep: {sweep_queries / max(1, sweeps):.0f} per sweep"
    )
    print(
        f"runs sent again: {sent_again} (sweep: {resent} re-sent, {gave_up} failed in {sweeps} sweeps); "
        f"runs failed: {failed}; stage calls made twice: {twice}"
    )
    print(
        f"refine under bulk load: {len(lat)} clicks, p50 {percentile(lat, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(lat, 0.95) * 1000:.0f} ms, max {max(lat, default=float('nan')) * 1000:.0f} ms; "
        f"{len(refiner.failures)} failed {refiner.failures[:2]}"
    )
    # The projection: unscaled model times plus the measured orchestration cost per image.
    gpu_s = args.dino_s + args.sam_s + gpu_cpu_per_image  # the GPU worker's orchestration is in its path
    print(
        f"\nprojected wall time for {args.project:,} images (GPU worker {gpu_s:.3f}s/image: models "
        f"{args.dino_s + args.sam_s:.2f}s + its orchestration {gpu_cpu_per_image * 1000:.0f} ms; all orchestration "
        f"{per_image_cpu * 1000:.0f} ms CPU/image; 3 chat calls of {args.chat_s:.0f}s per image):"
    )
    concurrencies = (64, 256, 1024)
    print("  GPU workers | " + " | ".join(f"{c} chat calls in flight" for c in concurrencies))
    for workers in (1, 4, 16):
        cells = []
        for c in concurrencies:
            gpu_rate = workers / gpu_s
            api_rate = c / (3 * args.chat_s)
            rate = min(gpu_rate, api_rate)
            cores = max(1.0, rate * per_image_cpu)
            hours = args.project / rate / 3600
            bound = "GPU" if gpu_rate <= api_rate else "API"
            cells.append(f"{hours:6.1f} h ({bound}-bound, {cores:.1f} CPU cores)")
        print(f"  {workers:11d} | " + " | ".join(cells))
    print(
        f"  SQL at that pace: {queries / n:.1f} statements/image -> {queries / n * min(16 / gpu_s, 1024 / (3 * args.chat_s)):.0f}/s "
        "for the fastest column"
    )


if __name__ == "__main__":
    main()
