"""Label Studio on the bench of ``bench/review_api.py``: the same machine, server and load, for
the side-by-side table of issue 16 (``docs/review-at-scale.md``, "Side by side with Label Studio").

Needs Label Studio 1.23.2 and gunicorn in a virtual environment of their own (never the
project's), e.g.::

    python3 -m venv /work/lsvenv
    /work/lsvenv/bin/pip install label-studio==1.23.2 gunicorn

Runs offline, with everything in a temporary folder that is removed at the end:

1. a Label Studio data dir (``LABEL_STUDIO_BASE_DATA_DIR``, SQLite), migrated, with one
   organisation (legacy API tokens on) and one user and token per concurrent client;
   Sentry, analytics and the version check are off (its settings otherwise ask pypi.org for
   the latest version as they load), and its RQ connection points at
   ``--redis`` (only pinged: Label Studio Community runs its jobs in the request);
2. gunicorn with ``--workers`` (2) sync workers on a free port of 127.0.0.1 serving
   ``core.wsgi`` with Label Studio's settings plus ``bench/server_cpu.py``'s middleware (the
   one ``bench/review_api.py`` uses: each request's worker CPU, ``time.process_time``, which
   here includes SQLite, and its statements, in response headers);
3. a project with an image config (``RectangleLabels`` and single ``Choices`` over the 8 Mikels
   emotions) and ``--tasks`` (10,000) image tasks imported in one
   ``POST /api/projects/<id>/import`` of a JSON list (tasks/s; Label Studio does not open the
   images); each task points at its own URL on a local server that answers one 64×48 PNG;
4. per level of ``--levels`` (1 and 8) concurrent annotators (threads, one keep-alive
   connection and token each), ``--seconds`` of ``GET /api/projects/<id>/next/`` →
   ``POST /api/tasks/<id>/annotations/`` (a rectangle and a choice, as the editor sends them);
   printed per endpoint as by ``bench/review_api.py``: server CPU per request (mean, p50),
   statements (max), p50/p95 latency; and per level the whole server's CPU per request from
   ``/proc`` (gunicorn master and workers, ``/proc/<pid>/schedstat``: time on the CPU, what
   utime + stime count in ticks, in ns; SQLite runs in the workers), items/s and the load
   average;
5. the tasks the levels left unannotated get the same annotation written directly
   (``bulk_create``, as ``bench/export.py`` builds its dataset), then
   ``GET /api/projects/<id>/export?exportType=JSON`` and ``…COCO`` with
   ``download_resources=false`` (the converter takes the size from the result instead of
   downloading each image) over all ``--tasks`` tasks: items/s (tasks in the file; COCO's
   distinct images), items per server CPU-second, statements.

    /work/main/.venv/bin/python bench/label_studio.py
    /work/main/.venv/bin/python bench/label_studio.py --tasks 2000 --seconds 10 --json /tmp/ls.json

``--json PATH`` writes the figures for a later table. Clients run on the same machine as the
server, so latencies are for the whole stack here; on a loaded machine compare the CPU per
request, which depends far less on the load.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The Label Studio side of this file (``--child``) runs in Label Studio's venv, whose ``core``
# package is not ours: it imports nothing from the project.
CHILD = __name__ == "__main__" and "--child" in sys.argv
if not CHILD:
    sys.path.insert(0, str(ROOT))
    from bench.levels import Sample, free_port, measure_level, process_cpu_ns, stop, wait_serving
    from core.vocabulary import EMOTIONS

LS_VERSION = "1.23.2"
WIDTH, HEIGHT = 64, 48

# Modules written into the work folder (on PYTHONPATH) of every Label Studio process. The first
# runs before Django starts: it puts Label Studio's package on sys.path (as its ``label-studio``
# command does), puts the bench's middleware first (as ``bench/settings_review.py`` does) and
# points RQ at the bench's Redis database. Label Studio's own settings stay as they are.
LS_SETUP = """\
import pathlib
import sys

import label_studio

sys.path.insert(0, str(pathlib.Path(label_studio.__file__).parent))
from django.conf import settings

settings.MIDDLEWARE.insert(0, "bench_server_cpu.ServerCPUMiddleware")
for queue in settings.RQ_QUEUES.values():
    queue.update(HOST={host!r}, PORT={port}, DB={db})
"""
LS_WSGI = """\
import bench_ls_setup  # noqa: F401
from core.wsgi import application  # noqa: F401
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ls-venv", default="/work/lsvenv", help="virtual environment with label-studio and gunicorn")
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--levels", default="1,8", help="concurrent annotators per run, comma-separated")
    p.add_argument("--seconds", type=float, default=20.0, help="duration of each level")
    p.add_argument("--workers", type=int, default=2, help="gunicorn sync worker processes")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/10",
                   help="where Label Studio's RQ connection points (pinged once per process, never used)")
    p.add_argument("--json", type=Path, help="write the figures to this file as JSON")
    p.add_argument("--child", choices=("setup", "annotate"), help=argparse.SUPPRESS)  # internal: in Label Studio's venv
    p.add_argument("--users", type=int, default=1, help=argparse.SUPPRESS)
    return p.parse_args()


# --- inside Label Studio (its venv, DJANGO_SETTINGS_MODULE set by the bench) -------------------

def child_setup(n_users: int) -> None:
    """Migrate, create the organisation and ``n_users`` users; print their tokens as JSON."""
    import bench_ls_setup  # noqa: F401
    import django

    django.setup()
    from django.core.management import call_command
    from organizations.models import Organization
    from rest_framework.authtoken.models import Token
    from users.models import User

    call_command("migrate", verbosity=0, interactive=False)
    org, tokens = None, []
    for i in range(n_users):
        user = User.objects.create_user(email=f"bench{i:02d}@localhost", password=os.urandom(12).hex())
        if org is None:
            org = Organization.create_organization(created_by=user, title="Benchmark", legacy_api_tokens_enabled=True)
        else:
            org.add_user(user)
        user.active_organization = org
        user.save(update_fields=["active_organization"])
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    print(json.dumps(tokens))


def child_annotate() -> None:
    """Give every task without an annotation the result read from stdin; print how many."""
    import bench_ls_setup  # noqa: F401
    import django

    django.setup()
    from tasks.models import Annotation, Task
    from users.models import User

    result = json.load(sys.stdin)
    user = User.objects.order_by("id").first()
    todo = list(Task.objects.filter(annotations__isnull=True).values_list("id", "project_id"))
    Annotation.objects.bulk_create(
        [Annotation(task_id=t, project_id=p, completed_by=user, result=result, lead_time=2.0, result_count=len(result))
         for t, p in todo], batch_size=1000)
    ids = [t for t, _ in todo]
    for i in range(0, len(ids), 900):  # SQLite's limit on query parameters
        Task.objects.filter(id__in=ids[i:i + 900]).update(is_labeled=True, total_annotations=1)
    print(len(todo))


# --- the bench ---------------------------------------------------------------------------------

def label_config() -> str:
    labels = "".join(f'<Label value="{e}"/>' for e in EMOTIONS)
    choices = "".join(f'<Choice value="{e}"/>' for e in EMOTIONS)
    return (f'<View><Image name="image" value="$image"/>'
            f'<RectangleLabels name="box" toName="image">{labels}</RectangleLabels>'
            f'<Choices name="emotion" toName="image" choice="single" showInline="true">{choices}</Choices></View>')


def annotation_result(n: int) -> list[dict]:
    """What the editor sends for one box and one choice (the emotion turns with ``n``)."""
    emotion = EMOTIONS[n % len(EMOTIONS)]
    return [
        {"id": f"b{n}", "from_name": "box", "to_name": "image", "type": "rectanglelabels", "origin": "manual",
         "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0,
         "value": {"x": 25.0, "y": 25.0, "width": 25.0 + n % 5, "height": 25.0, "rotation": 0,
                   "rectanglelabels": [emotion]}},
        {"id": f"c{n}", "from_name": "emotion", "to_name": "image", "type": "choices", "origin": "manual",
         "original_width": WIDTH, "original_height": HEIGHT, "image_rotation": 0, "value": {"choices": [emotion]}},
    ]


def png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT), (40, 60, 90)).save(buf, format="PNG")
    return buf.getvalue()


def serve_image(port: int) -> http.server.ThreadingHTTPServer:
    """A local server that answers every GET with the one PNG (the tasks' image URLs)."""
    body = png_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def ls_environment(venv: Path, work: Path, redis_url: str) -> tuple[dict, Path]:
    """The environment of every Label Studio process, and its package folder; writes the
    settings module and the middleware into ``work``."""
    from urllib.parse import urlsplit

    python = venv / "bin" / "python"
    found = subprocess.run([str(python), "-P", "-c", "import label_studio, pathlib; "
                            "print(label_studio.__version__); print(pathlib.Path(label_studio.__file__).parent)"],
                           capture_output=True, text=True)
    if found.returncode:
        raise SystemExit(f"label_studio is not importable with {python}: {found.stderr.strip()[-500:]}")
    version, package = found.stdout.split()
    if version != LS_VERSION:
        print(f"warning: Label Studio {version}, not {LS_VERSION}")
    redis = urlsplit(redis_url)
    (work / "bench_ls_setup.py").write_text(LS_SETUP.format(
        host=redis.hostname or "127.0.0.1", port=redis.port or 6379, db=int((redis.path or "/0").strip("/") or 0)))
    (work / "bench_ls_wsgi.py").write_text(LS_WSGI)
    shutil.copy(ROOT / "bench" / "server_cpu.py", work / "bench_server_cpu.py")
    # server_cpu.py reads a backend's CPU through bench.levels (standard library only): the
    # work folder gets that one module as the package ``bench``, not the whole bench folder.
    (work / "bench").mkdir()
    (work / "bench" / "__init__.py").write_text("")
    shutil.copy(ROOT / "bench" / "levels.py", work / "bench" / "levels.py")
    data = work / "data"
    data.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work), "LANG": "C.UTF-8",
        "PYTHONPATH": str(work), "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
        "LABEL_STUDIO_BASE_DATA_DIR": str(data), "DJANGO_DB": "sqlite", "DEBUG": "false", "LOG_LEVEL": "WARNING",
        "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false", "LATEST_VERSION_CHECK": "false",
        "FEATURE_FLAGS_OFFLINE": "true", "JSON_LOG": "false", "DISABLE_SIGNUP_WITHOUT_LINK": "true",
    }
    return env, Path(package)


def run_child(python: Path, env: dict, work: Path, args: list[str], stdin: str | None = None) -> str:
    # -P: not the bench folder on sys.path (its modules are not Label Studio's)
    done = subprocess.run([str(python), "-P", __file__, "--child", *args], cwd=work, env=env, input=stdin,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"Label Studio {args[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def start_gunicorn(python: Path, env: dict, work: Path, port: int, workers: int) -> subprocess.Popen:
    cmd = [str(python), "-m", "gunicorn", "bench_ls_wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--log-level", "warning", "--timeout", "600"]
    with open(work / "gunicorn.log", "ab") as log:  # Label Studio's log (the COCO converter warns once per choice)
        proc = subprocess.Popen(cmd, cwd=work, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    return wait_serving(proc, port, "/health/", seconds=120, why_exited=lambda: f": {log_tail(work)}")


def log_tail(work: Path) -> str:
    try:
        return (work / "gunicorn.log").read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def gunicorn_pids(proc: subprocess.Popen) -> list[int]:
    import psutil

    return [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]


def call(conn: http.client.HTTPConnection, token: str, method: str, path: str, body=None) -> tuple[int, bytes, Sample]:
    headers = {"Authorization": f"Token {token}"}
    if body is not None:
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    t0 = time.perf_counter()
    conn.request(method, path, body, headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, Sample((time.perf_counter() - t0) * 1000, response.headers)


class Annotator(threading.Thread):
    """One annotator: next task, then its annotation, until the deadline."""

    def __init__(self, port: int, token: str, project: int, deadline: float):
        super().__init__(daemon=True)
        self.port, self.token, self.project, self.deadline = port, token, project, deadline
        self.next: list[Sample] = []
        self.submit: list[Sample] = []
        self.errors: list[str] = []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        n = 0
        while time.perf_counter() < self.deadline:
            status, body, sample = call(conn, self.token, "GET", f"/api/projects/{self.project}/next/")
            if status == 404:
                break  # no task left
            if status != 200:
                self.errors.append(f"next {status} {body[:200]!r}")
                continue
            self.next.append(sample)
            task = json.loads(body)
            started = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            annotation = {"result": annotation_result(n), "lead_time": 2.5, "project": str(self.project),
                          "draft_id": None, "parent_prediction": None, "parent_annotation": None, "started_at": started}
            status, body, sample = call(conn, self.token, "POST", f"/api/tasks/{task['id']}/annotations/?project={self.project}",
                                        annotation)
            if status != 201:
                self.errors.append(f"submit {status} {body[:200]!r}")
                continue
            self.submit.append(sample)
            n += 1
        conn.close()


def run_level(port: int, tokens: list[str], project: int, seconds: float, pids: list[int]) -> dict:
    deadline = time.perf_counter() + seconds
    threads = [Annotator(port, token, project, deadline) for token in tokens]
    return {"annotators": len(tokens), **measure_level(threads, pids)}


def print_level(r: dict) -> None:
    for name in ("next", "submit"):
        s = r[name]
        print(f"{r['annotators']:>10} | {name:<6} | {s['cpu_mean']:>6.2f} ms | {s['cpu_p50']:>6.2f} ms | "
              f"{s['queries']:>7} | {s['p50']:>6.1f} ms | {s['p95']:>6.1f} ms | {s['n']:>6}")
    print(f"{'':>10}   {r['items_s']:.1f} items/s; whole server (gunicorn, SQLite in-process) "
          f"{r['server_ms_per_request']:.2f} ms CPU per request; load average {r['load'][0]:.2f}; "
          f"{len(r['errors'])} errors")
    for e in r["errors"][:3]:
        print(f"           error: {e}")


def timed(port: int, token: str, method: str, path: str, pids: list[int], body=None) -> tuple[int, bytes, dict]:
    """One request with its wall time and the whole server's CPU over it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    cpu_before = sum(process_cpu_ns(pid) for pid in pids)
    status, data, sample = call(conn, token, method, path, body)
    cpu = sum(process_cpu_ns(pid) for pid in pids) - cpu_before
    conn.close()
    return status, data, {"seconds": sample.ms / 1000, "server_cpu_s": cpu / 1e9, "worker_cpu_s": sample.py_us / 1e6,
                          "queries": sample.queries, "load": os.getloadavg()[0]}


def import_tasks(port: int, token: str, project: int, n: int, image_port: int, pids: list[int]) -> dict:
    tasks = [{"image": f"http://127.0.0.1:{image_port}/images/{i:07d}.png"} for i in range(n)]
    status, data, figures = timed(port, token, "POST", f"/api/projects/{project}/import", pids, tasks)
    if status != 201:
        raise RuntimeError(f"import: {status} {data[:500]!r}")
    count = json.loads(data).get("task_count", n)
    return {**figures, "tasks": count, "per_s": count / figures["seconds"], "per_cpu_s": count / figures["server_cpu_s"]}


def count_exported(data: bytes, fmt: str) -> int:
    """Tasks in an export: the JSON list's length; COCO's distinct images (its converter writes
    one image entry per annotation, and a task may have two)."""
    if data[:2] == b"PK":  # a zip: the converter wrote more than one file
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            name = next(n for n in z.namelist() if n.endswith(".json"))
            data = z.read(name)
    parsed = json.loads(data)
    return len({im["file_name"] for im in parsed["images"]}) if fmt == "COCO" else len(parsed)


def export(port: int, token: str, project: int, fmt: str, pids: list[int]) -> dict:
    path = f"/api/projects/{project}/export?exportType={fmt}&download_resources=false"
    status, data, figures = timed(port, token, "GET", path, pids)
    if status != 200:
        raise RuntimeError(f"export {fmt}: {status} {data[:500]!r}")
    items = count_exported(data, fmt)
    return {**figures, "format": fmt, "items": items, "bytes": len(data), "per_s": items / figures["seconds"],
            "per_cpu_s": items / figures["server_cpu_s"]}


def print_once(name: str, unit: str, r: dict) -> None:
    print(f"{name:<12} {r.get('tasks', r.get('items')):>7,} {unit} in {r['seconds']:6.2f} s: {r['per_s']:8,.0f} {unit}/s; "
          f"server CPU {r['server_cpu_s']:6.2f} s ({r['per_cpu_s']:,.0f} {unit} per CPU-second; worker "
          f"{r['worker_cpu_s']:.2f} s, {r['queries']:,} statements); load average {r['load']:.2f}")


def bench(args: argparse.Namespace, work: Path) -> dict:
    venv = Path(args.ls_venv)
    python = venv / "bin" / "python"
    levels = [int(v) for v in args.levels.split(",")]
    env, package = ls_environment(venv, work, args.redis)
    t0 = time.perf_counter()
    tokens = json.loads(run_child(python, env, work, ["setup", "--users", str(max(levels))]))
    print(f"Label Studio {LS_VERSION} ({package}): migrated SQLite and {len(tokens)} users in "
          f"{time.perf_counter() - t0:.1f} s")
    image_server = serve_image(free_port())
    proc = None
    try:
        port = free_port()
        proc = start_gunicorn(python, env, work, port, args.workers)
        pids = gunicorn_pids(proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        status, data, _ = call(conn, tokens[0], "POST", "/api/projects/",
                               {"title": "Benchmark", "label_config": label_config()})
        if status != 201:
            raise RuntimeError(f"project: {status} {data[:500]!r}")
        project = json.loads(data)["id"]
        for _ in range(2 * args.workers):  # warm-up: imports, connections
            call(conn, tokens[0], "GET", f"/api/projects/{project}/")
        conn.close()
        print(f"gunicorn: {args.workers} sync workers on 127.0.0.1:{port}; {os.cpu_count()} CPUs; "
              f"{args.seconds:.0f} s per level; load average before {os.getloadavg()[0]:.2f}\n")
        imported = import_tasks(port, tokens[0], project, args.tasks, image_server.server_address[1], pids)
        print_once("import", "tasks", imported)
        print()
        os.sync()  # the import's writes go to disk now, not while a level runs (as bench/review_api.py does)
        run_level(port, tokens[:2], project, 3.0, pids)  # warm-up of next and submit
        print("server CPU per request = the worker's CPU (Python and SQLite, time.process_time) (mean, p50);\n"
              "queries: most in one request; latency seen by the client")
        header = (f"{'annotators':>10} | {'call':<6} | {'CPU mean':>9} | {'CPU p50':>9} | "
                  f"{'queries':>7} | {'p50':>9} | {'p95':>9} | {'calls':>6}")
        print(header)
        print("-" * len(header))
        results = []
        for level in levels:
            results.append(run_level(port, tokens[:level], project, args.seconds, pids))
            print_level(results[-1])
        if any(r["errors"] for r in results):
            raised = sorted({line for line in (work / "gunicorn.log").read_text(errors="replace").splitlines()
                             if re.match(r"[\w.]+(Error|Exception): ", line)})
            print("Label Studio's log names: " + ("; ".join(raised[:5]) or "no exception"))
        added = int(run_child(python, env, work, ["annotate"], json.dumps(annotation_result(0))))
        print(f"\n{added:,} tasks left unannotated by the levels annotated directly (bulk_create)")
        exports = [export(port, tokens[0], project, fmt, pids) for fmt in ("JSON", "COCO")]
        for r in exports:
            print_once(f"export {r['format']}", "items", r)
        logged = (work / "gunicorn.log").read_bytes().count(b"\n")
        print(f"Label Studio logged {logged:,} lines (level WARNING) in the run; the COCO converter warns once per "
              f"choices result it skips")
    finally:
        if proc is not None:
            stop(proc)
        image_server.shutdown()
        image_server.server_close()
    return {"label_studio": LS_VERSION, "tasks": args.tasks, "workers": args.workers, "seconds": args.seconds,
            "cpus": os.cpu_count(), "import": imported, "levels": results, "exports": exports}


def main() -> int:
    args = parse_args()
    if args.child == "setup":
        child_setup(args.users)
        return 0
    if args.child == "annotate":
        child_annotate()
        return 0
    work = Path(tempfile.mkdtemp(prefix="emoverse-ls-bench-"))
    try:
        figures = bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
