"""Benchmark of the review API: next-item and submit latency and throughput under load.

Builds a dataset of ``--images`` images (default 219,000) in review, each with a
pipeline annotation (one B-A-S triplet, boxes, a subject mask, a CES label), in
a dedicated PostgreSQL database that it creates and drops; starts gunicorn on a
free port of 127.0.0.1 against it; then runs 1, 8 and 32 concurrent reviewers
(threads, one keep-alive HTTP connection and API token each) that loop
``POST /api/review/next/`` → ``POST /api/review/leases/<id>/submit/`` for
``--seconds`` per level, and prints p50/p95 latencies and throughput.
Everything it starts is stopped at the end.

    python bench/review_api.py                      # 219K images
    python bench/review_api.py --images 20000 --seconds 10
    python bench/review_api.py --broker redis://127.0.0.1:6379/9   # queue the submits' tasks, as in production

Each reviewer decides every element explicitly, as the review page sends it: accepts most,
rejects the attribute on every fifth item, edits the subject box on every other item and the
background phrase on every seventh (``answer_for``); the run ends with the counts of element
decisions by action and of the reviewed elements by status.

Rows are written with ``INSERT … SELECT generate_series`` (no image file per
row: every row points at one small PNG in a temporary media folder). Client
threads run on the same machine as the server and the database, so the figures
are for the whole stack on this machine.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.vocabulary import EMOTIONS

WIDTH, HEIGHT = 64, 48
SLUG = "bench"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=219_000)
    p.add_argument("--levels", default="1,8,32", help="concurrent reviewers per run, comma-separated")
    p.add_argument("--seconds", type=float, default=20.0, help="duration of each level")
    p.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=2, help="threads per gunicorn worker")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"),
                   help="PostgreSQL server URL without database name")
    p.add_argument("--db", default="emoverse_bench", help="database to create and drop")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    p.add_argument("--broker", default=os.environ.get("BENCH_BROKER", ""),
                   help="Redis URL (a database of its own: it is flushed at the end) to queue the tasks a submit "
                        "sends (phrase embeddings) as production does; without it the phrase embedder is off, so "
                        "no model loads in the web process (Celery runs eagerly there)")
    return p.parse_args()


# --- database ------------------------------------------------------------------------------

def admin_sql(pg: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (WIDTH, HEIGHT), (40, 60, 90)).save(buf, format="PNG")
    return buf.getvalue()


def subject_mask() -> dict:
    import numpy as np

    from core.masks import encode_mask

    m = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    m[12:24, 16:32] = 1
    return encode_mask(m)


def populate(n_images: int, n_reviewers: int) -> tuple[int, list[str]]:
    """Create the dataset, its images and pipeline annotations, and reviewer tokens. Returns (dataset id, tokens)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection, transaction
    from rest_framework.authtoken.models import Token

    from annotations.models import Dataset

    dataset = Dataset.objects.create(slug=SLUG, name="Benchmark")
    mask = subject_mask()
    labels = ", ".join(
        f"({i}, '{e}', '{json.dumps({x: (0.72 if x == e else 0.04) for x in EMOTIONS})}')" for i, e in enumerate(EMOTIONS)
    )
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            """INSERT INTO annotations_image (dataset_id, file, thumbnail, sha256, original_name, width, height, source,
                   status, priority, label, confidence, agreement, created_at, updated_at, audit_draw)
               SELECT %s, 'bench/one.png', '', md5(i::text) || md5((i + 1)::text), 'bench/' || i || '.png', %s, %s, 'web',
                   'in_review', random(), NULL, NULL, NULL, now() - (i || ' seconds')::interval, now(), random()
               FROM generate_series(1, %s) AS i""",
            [dataset.pk, WIDTH, HEIGHT, n_images],
        )
        cur.execute(
            f"""INSERT INTO annotations_annotation (image_id, version, parent_id, kind, author_name, author_user_id, is_current,
                   decision, decision_reason, ces_label, ces_confidence, ces_distribution, ces_raw_distribution, des, rationale,
                   prompt_version, pipeline_version, raw_output, critic, extra, import_run_id, created_at)
               SELECT im.id, 1, NULL, 'model', 'pipeline', NULL, true, '', '', l.label, 0.72, l.dist::jsonb, NULL, NULL,
                   'The dark waves around a tiny boat evoke fear.', 'v1', 'bench', '', NULL, '{{}}'::jsonb, NULL, now()
               FROM annotations_image im JOIN (VALUES {labels}) AS l(n, label, dist) ON l.n = im.id %% 8
               WHERE im.dataset_id = %s""",
            [dataset.pk],
        )
        cur.execute(
            """INSERT INTO annotations_triplet (annotation_id, index, key)
               SELECT a.id, 0, gen_random_uuid() FROM annotations_annotation a JOIN annotations_image im ON im.id = a.image_id
               WHERE im.dataset_id = %s""",
            [dataset.pk],
        )
        cur.execute(
            """INSERT INTO annotations_element (triplet_id, role, phrase, status, x0, y0, x1, y1, box_score, mask_counts,
                   mask_height, mask_width, mask_score)
               SELECT t.id, e.role, e.phrase, 'pending', e.x0, e.y0, e.x1, e.y1, e.box_score, e.counts, e.h, e.w, e.mask_score
               FROM annotations_triplet t JOIN annotations_annotation a ON a.id = t.annotation_id
               JOIN annotations_image im ON im.id = a.image_id
               CROSS JOIN (VALUES
                   ('background', 'stormy sea', 0.0, 0.0, 64.0, 24.0, 0.8, NULL, NULL::int, NULL::int, NULL::float),
                   ('attribute', 'dark, churning', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
                   ('subject', 'small boat', 16.0, 12.0, 32.0, 24.0, 0.8, %s, %s, %s, 0.9)
               ) AS e(role, phrase, x0, y0, x1, y1, box_score, counts, h, w, mask_score)
               WHERE im.dataset_id = %s""",
            [mask["counts"], HEIGHT, WIDTH, dataset.pk],
        )
        cur.execute("ANALYZE")
    group, _ = Group.objects.get_or_create(name="reviewer")
    tokens = []
    for i in range(n_reviewers):
        user = get_user_model().objects.create_user(username=f"bench{i:02d}")
        user.groups.add(group)
        tokens.append(Token.objects.create(user=user).key)
    return dataset.pk, tokens


# --- server ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict, port: int, workers: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "emoverse_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--threads", str(threads), "--log-level", "warning", "--timeout", "120"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError("gunicorn did not answer within 60 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- load --------------------------------------------------------------------------------------

def answer_for(item: dict, n: int) -> tuple[dict, list[dict]]:
    """The reviewer's answer and element decisions, as the review page sends them: every element
    decided explicitly (A on most); every other item gets another label and a nudged subject box
    (edit_box), every fifth the attribute rejected (R), every seventh the background rephrased."""
    triplets, decisions = [], []
    for t in item["base"]["triplets"]:
        out = {"key": t["key"]}
        for role in ("background", "attribute", "subject"):
            if role in t:
                out[role] = {k: v for k, v in t[role].items() if k in ("phrase", "box", "mask")} | {"status": "accepted"}
        triplets.append(out)

    def decide(role: str, action: str, before=None, after=None) -> None:
        decisions.append({"triplet_key": triplets[0]["key"], "role": role, "action": action, "before": before,
                          "after": after, "time_ms": 400 + 100 * len(decisions)})

    label = item["base"]["ces"]["label"]
    first = triplets[0]
    if n % 2:
        label = EMOTIONS[(EMOTIONS.index(label) + 1) % 8]
        if "subject" in first:
            before = first["subject"].get("box")
            first["subject"]["box"] = [14, 12, 32, 26]
            first["subject"]["status"] = "edited"
            decide("subject", "edit_box", before, first["subject"]["box"])
    if n % 5 == 0 and "attribute" in first:
        first["attribute"]["status"] = "rejected"
        decide("attribute", "reject")
    if n % 7 == 0 and "background" in first:
        before = first["background"]["phrase"]
        first["background"].update(phrase="rough open water", status="edited")
        decide("background", "edit_phrase", before, "rough open water")
    decided = {d["role"] for d in decisions}
    for t in triplets:
        for role in ("background", "attribute", "subject"):
            if role in t and (t is not first or role not in decided):
                decisions.append({"triplet_key": t["key"], "role": role, "action": "accept", "time_ms": 300})
    answer = {"triplets": triplets, "ces": {"label": label}, "rationale": item["base"]["rationale"]}
    return answer, decisions


class Reviewer(threading.Thread):
    def __init__(self, port: int, token: str, deadline: float):
        super().__init__(daemon=True)
        self.port, self.token, self.deadline = port, token, deadline
        self.next_ms: list[float] = []
        self.submit_ms: list[float] = []
        self.errors: list[str] = []

    def post(self, conn, path: str, body: dict) -> tuple[int, bytes]:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", "Authorization": f"Token {self.token}"})
        response = conn.getresponse()
        return response.status, response.read()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        n = 0
        while time.perf_counter() < self.deadline:
            t0 = time.perf_counter()
            status, body = self.post(conn, "/api/review/next/", {"dataset": SLUG})
            t1 = time.perf_counter()
            if status != 200:
                self.errors.append(f"next {status} {body[:200]!r}")
                continue
            self.next_ms.append((t1 - t0) * 1000)
            item = json.loads(body)
            answer, decisions = answer_for(item, n)
            submission = {"expected_version": item["version"], "decision": "approved", "annotation": answer,
                          "element_decisions": decisions, "time_spent_ms": 1000}
            t2 = time.perf_counter()
            status, body = self.post(conn, f"/api/review/leases/{item['lease']['id']}/submit/", submission)
            t3 = time.perf_counter()
            if status != 201:
                self.errors.append(f"submit {status} {body[:200]!r}")
                continue
            self.submit_ms.append((t3 - t2) * 1000)
            n += 1
        conn.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run_level(port: int, tokens: list[str], seconds: float) -> dict:
    deadline = time.perf_counter() + seconds
    threads = [Reviewer(port, token, deadline) for token in tokens]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    nxt = [v for t in threads for v in t.next_ms]
    sub = [v for t in threads for v in t.submit_ms]
    errors = [e for t in threads for e in t.errors]
    return {
        "reviewers": len(tokens), "next_p50": percentile(nxt, 50), "next_p95": percentile(nxt, 95),
        "submit_p50": percentile(sub, 50), "submit_p95": percentile(sub, 95), "items_s": len(sub) / elapsed,
        "requests_s": (len(nxt) + len(sub)) / elapsed, "items": len(sub), "errors": errors,
    }


def main() -> int:
    args = parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    db_url = f"{args.pg}/{args.db}"
    media = Path(tempfile.mkdtemp(prefix="emoverse-bench-"))
    (media / "bench").mkdir()
    (media / "static").mkdir()
    (media / "bench" / "one.png").write_bytes(png_bytes())
    env = {**os.environ, "DATABASE_URL": db_url, "MEDIA_ROOT": str(media), "DEBUG": "0", "LOG_LEVEL": "WARNING",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SETTINGS_MODULE": "emoverse_site.settings",
           "EMOVERSE_VAR_DIR": str(media), "STATIC_ROOT": str(media / "static")}
    if args.broker:
        env |= {"CELERY_BROKER_URL": args.broker, "CELERY_RESULT_BACKEND": args.broker}
    else:
        (media / "ml.json").write_text(json.dumps({"embedder": None}))
        env["EMOVERSE_ML_CONFIG"] = str(media / "ml.json")
    os.environ.update(env)
    admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
    admin_sql(args.pg, f'CREATE DATABASE "{args.db}"')
    proc = None
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        t1 = time.perf_counter()
        _, tokens = populate(args.images, max(levels))
        t2 = time.perf_counter()
        connections.close_all()
        print(f"database {args.db}: migrated in {t1 - t0:.1f} s; {args.images:,} images with annotations "
              f"(1 triplet, 3 elements, 1 mask each) written in {t2 - t1:.1f} s")
        port = free_port()
        proc = start_gunicorn(env, port, args.workers, args.threads)
        print(f"gunicorn: {args.workers} workers x {args.threads} threads on 127.0.0.1:{port}; {os.cpu_count()} CPUs; "
              f"{args.seconds:.0f} s per level; tasks {'queued on ' + args.broker if args.broker else 'eager, embedder off'}\n")
        run_level(port, tokens[:1], 2.0)  # warm-up: imports, connections
        header = f"{'reviewers':>9} | {'next p50':>9} | {'next p95':>9} | {'submit p50':>10} | {'submit p95':>10} | {'items/s':>8} | {'req/s':>7} | {'items':>6} | errors"
        print(header)
        print("-" * len(header))
        for level in levels:
            r = run_level(port, tokens[:level], args.seconds)
            print(f"{r['reviewers']:>9} | {r['next_p50']:>6.1f} ms | {r['next_p95']:>6.1f} ms | {r['submit_p50']:>7.1f} ms | "
                  f"{r['submit_p95']:>7.1f} ms | {r['items_s']:>8.1f} | {r['requests_s']:>7.1f} | {r['items']:>6} | {len(r['errors'])}")
            for e in r["errors"][:3]:
                print(f"          error: {e}")
        from django.db.models import Count

        from annotations.models import AnnotationKind, Element
        from review.models import Disagreement, ElementDecision, ReviewSubmission

        print(f"\nafter the run: {ReviewSubmission.objects.count():,} submissions, {Disagreement.objects.count():,} disagreement rows")
        actions = dict(ElementDecision.objects.values_list("action").annotate(n=Count("id")).order_by())
        statuses = dict(Element.objects.filter(triplet__annotation__kind=AnnotationKind.HUMAN)
                        .values_list("status").annotate(n=Count("id")).order_by())
        print(f"element decisions: {', '.join(f'{k} {v:,}' for k, v in sorted(actions.items()))}; "
              f"reviewed elements: {', '.join(f'{k} {v:,}' for k, v in sorted(statuses.items()))}")
        connections.close_all()
    finally:
        if proc is not None:
            stop(proc)
        if not args.keep_db:
            admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        if args.broker:
            import redis

            redis.Redis.from_url(args.broker).flushdb()  # the queued tasks no worker took
        shutil.rmtree(media, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
