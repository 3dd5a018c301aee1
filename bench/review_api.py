"""Benchmark of the review API: what ``next`` and ``submit`` cost the server, and their latency.

Builds a dataset of ``--images`` images (default 219,000; 1,000,000 works too) in review,
each with a pipeline annotation (one B-A-S triplet, boxes, a subject mask, a CES label),
in a PostgreSQL template database (``<db>_tpl_<images>_<builder hash>``) that later runs
reuse; each run copies it (``CREATE DATABASE … TEMPLATE``, seconds) into ``--db``, applies
the migrations newer than the template, and drops that copy at the end. Starts gunicorn (``--workers 2`` sync workers by default, as in
issue 16) on a free port of 127.0.0.1 against it with ``bench/settings_review.py``, whose
middleware reports each request's CPU and queries; warms up with ``--warmup`` seconds of reviews
by the largest level's reviewers and runs ``ANALYZE`` (what autovacuum, which a deployment
runs, does as the review tables grow; without it PostgreSQL keeps plans made on the empty
tables, which scan them whole: ``--no-warmup-analyze`` measures that); then runs 1 and 8
concurrent reviewers (threads, one keep-alive HTTP connection and API token each) that loop
``POST /api/review/next/`` → ``POST /api/review/leases/<id>/submit/`` for ``--seconds``
per level. Printed per level and endpoint:

- server CPU per request: the worker's Python (``time.process_time``) plus the PostgreSQL
  backend's CPU (``/proc/<pid>/schedstat`` of the connection's backend), mean and p50;
- queries per request (max);
- p50/p95 latency (wall, seen by the client), throughput;
- the whole server's CPU per request over the level, from ``/proc``: gunicorn (master and
  workers, HTTP parsing and WSGI included) plus every PostgreSQL backend of the database;
- the load average, since the machine may be shared.

    python bench/review_api.py                      # 219K images
    python bench/review_api.py --images 1000000
    python bench/review_api.py --images 20000 --seconds 10

Rows are written with ``INSERT … SELECT generate_series`` (no image file per row: every row
points at one small PNG in a temporary media folder). Client threads run on the same
machine as the server and the database, so latencies are for the whole stack here.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.levels import Sample, free_port, measure_level, stop, wait_serving
from core.vocabulary import EMOTIONS

WIDTH, HEIGHT = 64, 48
SLUG = "bench"
REVIEWERS = 32  # in the template: enough for any level up to 32


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=219_000)
    p.add_argument("--levels", default="1,8", help="concurrent reviewers per run, comma-separated")
    p.add_argument("--seconds", type=float, default=20.0, help="duration of each level")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (1: sync workers)")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"),
                   help="PostgreSQL server URL without database name")
    p.add_argument("--db", default="emoverse_bench", help="database to create and drop")
    p.add_argument("--broker", default=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/15"),
                   help="Celery broker of the server (as in production: the phrase embedding each submit asks for is "
                        "queued, not run in the web process); its io and gpu queues are emptied at the end")
    p.add_argument("--warmup", type=float, default=10.0,
                   help="seconds of next + submit before measuring, with the largest level's reviewers")
    p.add_argument("--no-warmup-analyze", dest="warmup_analyze", action="store_false",
                   help="measure without the ANALYZE after the warm-up (the plans PostgreSQL made on empty review tables)")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    p.add_argument("--rebuild", action="store_true", help="build the template database again even if present")
    p.add_argument("--populate", type=int, help=argparse.SUPPRESS)  # internal: fill DATABASE_URL's database
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


def populate(n_images: int) -> None:
    """Create the dataset, its images and pipeline annotations, and :data:`REVIEWERS` reviewers with tokens."""
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
                   status, priority, audit_draw, label, confidence, agreement, created_at, updated_at)
               SELECT %s, 'bench/one.png', '', md5(i::text) || md5((i + 1)::text), 'bench/' || i || '.png', %s, %s, 'web',
                   'in_review', random(), random(), NULL, NULL, NULL, now() - (i || ' seconds')::interval, now()
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
    group, _ = Group.objects.get_or_create(name="reviewer")
    for i in range(REVIEWERS):
        user = get_user_model().objects.create_user(username=f"bench{i:02d}")
        user.groups.add(group)
        Token.objects.create(user=user)
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE")  # statistics and the visibility map, as a live database has them


def template_name(db: str, n_images: int) -> str:
    """The template database for ``n_images``, named after this file's data builder (a change of it
    builds a new one). Migrations added since it was built are applied to each copy."""
    digest = hashlib.sha256(inspect.getsource(populate).encode())
    return f"{db}_tpl_{n_images}_{digest.hexdigest()[:10]}"


def database_exists(pg: str, name: str) -> bool:
    import psycopg

    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def build_template(pg: str, name: str, n_images: int, env: dict) -> float:
    """Migrate and fill ``name`` in a child process (its connections end with it). Returns seconds."""
    admin_sql(pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_sql(pg, f'CREATE DATABASE "{name}"')
    t0 = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--populate", str(n_images)], cwd=ROOT,
                           env={**env, "DATABASE_URL": f"{pg}/{name}"})
    if child.returncode:
        admin_sql(pg, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        raise RuntimeError(f"building {name} failed ({child.returncode})")
    return time.perf_counter() - t0


def reviewer_tokens() -> list[str]:
    """The reviewers' tokens, renewed (a template may be older than the tokens' lifetime)."""
    from rest_framework.authtoken.models import Token

    from django.utils import timezone

    Token.objects.update(created=timezone.now())
    return list(Token.objects.filter(user__username__startswith="bench").order_by("user__username").values_list("key", flat=True))


# --- server ------------------------------------------------------------------------------------

def start_gunicorn(env: dict, port: int, workers: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "emoverse_site.wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--threads", str(threads), "--log-level", "warning", "--timeout", "120"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    return wait_serving(proc, port, "/accounts/login/", seconds=60)


def server_pids(gunicorn: subprocess.Popen, pg: str, db: str) -> list[int]:
    """gunicorn's master and workers, and the PostgreSQL backends connected to ``db``."""
    import psutil
    import psycopg

    pids = [gunicorn.pid, *(c.pid for c in psutil.Process(gunicorn.pid).children(recursive=True))]
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        pids += [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [db])]
    return pids


def purge_queues(broker: str) -> None:
    """Drop the tasks the run queued (phrase embeddings of the submitted reviews)."""
    import redis

    redis.Redis.from_url(broker).delete("io", "gpu")


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
        self.next: list[Sample] = []
        self.submit: list[Sample] = []
        self.errors: list[str] = []

    def post(self, conn, path: str, body: dict) -> tuple[int, bytes, Sample]:
        t0 = time.perf_counter()
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", "Authorization": f"Token {self.token}"})
        response = conn.getresponse()
        data = response.read()
        return response.status, data, Sample((time.perf_counter() - t0) * 1000, response.headers)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        n = 0
        while time.perf_counter() < self.deadline:
            status, body, sample = self.post(conn, "/api/review/next/", {"dataset": SLUG})
            if status != 200:
                self.errors.append(f"next {status} {body[:200]!r}")
                continue
            self.next.append(sample)
            item = json.loads(body)
            answer, decisions = answer_for(item, n)
            submission = {"expected_version": item["version"], "decision": "approved", "annotation": answer,
                          "element_decisions": decisions, "time_spent_ms": 1000}
            status, body, sample = self.post(conn, f"/api/review/leases/{item['lease']['id']}/submit/", submission)
            if status != 201:
                self.errors.append(f"submit {status} {body[:200]!r}")
                continue
            self.submit.append(sample)
            n += 1
        conn.close()


def run_level(port: int, tokens: list[str], seconds: float, pids: list[int]) -> dict:
    deadline = time.perf_counter() + seconds
    return {"reviewers": len(tokens), **measure_level([Reviewer(port, token, deadline) for token in tokens], pids)}


def print_level(r: dict) -> None:
    for name in ("next", "submit"):
        s = r[name]
        print(f"{r['reviewers']:>9} | {name:<6} | {s['cpu_mean']:>6.2f} ms | {s['cpu_p50']:>6.2f} ms | {s['py_mean']:>6.2f} ms | "
              f"{s['pg_mean']:>6.2f} ms | {s['queries']:>7} | {s['p50']:>6.1f} ms | {s['p95']:>6.1f} ms | {s['n']:>6}")
    print(f"{'':>9}   {r['items_s']:.1f} items/s; whole server (gunicorn + PostgreSQL backends) "
          f"{r['server_ms_per_request']:.2f} ms CPU per request; load average {r['load'][0]:.2f}; "
          f"{len(r['errors'])} errors")
    for e in r["errors"][:3]:
        print(f"          error: {e}")


def main() -> int:
    args = parse_args()
    if args.populate:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        populate(args.populate)
        return 0
    levels = [int(v) for v in args.levels.split(",")]
    if max(levels) > REVIEWERS:
        raise SystemExit(f"at most {REVIEWERS} concurrent reviewers")
    db_url = f"{args.pg}/{args.db}"
    media = Path(tempfile.mkdtemp(prefix="emoverse-bench-"))
    (media / "bench").mkdir()
    (media / "static").mkdir()
    (media / "bench" / "one.png").write_bytes(png_bytes())
    env = {**os.environ, "DATABASE_URL": db_url, "MEDIA_ROOT": str(media), "DEBUG": "0", "LOG_LEVEL": "WARNING",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SETTINGS_MODULE": "emoverse_site.settings",
           "EMOVERSE_VAR_DIR": str(media), "STATIC_ROOT": str(media / "static"), "CELERY_BROKER_URL": args.broker}
    template = template_name(args.db, args.images)
    if args.rebuild or not database_exists(args.pg, template):
        built = build_template(args.pg, template, args.images, env)
        print(f"template {template}: migrated and {args.images:,} images with annotations (1 triplet, 3 elements, "
              f"1 mask each) written in {built:.1f} s")
    else:
        print(f"template {template}: reused")
    os.environ.update(env)
    admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
    t0 = time.perf_counter()
    admin_sql(args.pg, f'CREATE DATABASE "{args.db}" TEMPLATE "{template}"')
    print(f"database {args.db}: copied from the template in {time.perf_counter() - t0:.1f} s")
    proc = None
    try:
        import django

        django.setup()
        from django.db import connections

        from django.core.management import call_command

        call_command("migrate", verbosity=0)  # migrations newer than the template (--rebuild if it is from another branch)
        tokens = reviewer_tokens()
        from review.models import Disagreement, ReviewSubmission

        connections.close_all()
        # Building the template and copying it leave hundreds of MB to write back (PostgreSQL's
        # buffers, the kernel's page cache): written out now, not by the checkpointer and the
        # kernel while a level runs (a run right after a build measured 20 % more CPU per request).
        t0 = time.perf_counter()
        admin_sql(args.pg, "CHECKPOINT")
        os.sync()
        print(f"checkpoint and sync before measuring: {time.perf_counter() - t0:.1f} s")
        port = free_port()
        proc = start_gunicorn({**env, "DJANGO_SETTINGS_MODULE": "bench.settings_review"}, port, args.workers, args.threads)
        kind = "sync" if args.threads == 1 else f"{args.threads} threads"
        print(f"gunicorn: {args.workers} workers ({kind}) on 127.0.0.1:{port}; {os.cpu_count()} CPUs; "
              f"{args.seconds:.0f} s per level; load average before {os.getloadavg()[0]:.2f}\n")
        # Warm-up: imports, connections, and a review history. The template's review tables are
        # empty, and PostgreSQL keeps the plans it makes for them per connection (the PL/pgSQL
        # functions' statements, the foreign-key checks): made on empty tables, they scan them
        # whole, and each scan grows with the run. A server with autovacuum on (as
        # docs/review-at-scale.md requires) analyzes those tables as they grow, which replaces
        # the plans; this one may have it off, so the bench analyzes once after the history.
        run_level(port, tokens[:max(levels)], args.warmup, [])
        if args.warmup_analyze:
            t0 = time.perf_counter()
            with connections["default"].cursor() as cursor:
                cursor.execute("ANALYZE")
            seconds, reviews = time.perf_counter() - t0, ReviewSubmission.objects.count()
            connections.close_all()  # before server_pids(): no connection of this process counts as the server's
            print(f"warm-up: {reviews:,} reviews in {args.warmup:.0f} s, then ANALYZE ({seconds:.1f} s)")
        pids = server_pids(proc, args.pg, args.db)
        print("server CPU per request = worker Python + PostgreSQL backend (mean, p50); queries: most in one request;\n"
              "latency seen by the client")
        header = (f"{'reviewers':>9} | {'call':<6} | {'CPU mean':>9} | {'CPU p50':>9} | {'Python':>9} | {'Postgres':>9} | "
                  f"{'queries':>7} | {'p50':>9} | {'p95':>9} | {'calls':>6}")
        print(header)
        print("-" * len(header))
        for level in levels:
            print_level(run_level(port, tokens[:level], args.seconds, pids))
        print(f"\nafter the run: {ReviewSubmission.objects.count():,} submissions, {Disagreement.objects.count():,} disagreement rows")
        connections.close_all()
    finally:
        if proc is not None:
            stop(proc)
        if not args.keep_db:
            admin_sql(args.pg, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        shutil.rmtree(media, ignore_errors=True)
        purge_queues(args.broker)
    return 0


if __name__ == "__main__":
    sys.exit(main())
