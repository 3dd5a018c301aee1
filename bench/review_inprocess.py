"""The review hot path in one process, two ways alternated: what a change costs per request
without gunicorn, the client and the machine's drift between runs in the figures.

The project's WSGI application (``emoverse_site.wsgi``, as gunicorn loads it, with what it
prepares once: ``emoverse_site.startup``) is called directly (``bench/settings_review.py``: its
middleware reports each request's CPU, the worker's Python and the PostgreSQL backend's), one reviewer
looping ``next`` → ``submit`` on one connection, as ``bench/review_api.py`` does over HTTP. The
modes run in alternated blocks of ``--pairs`` pairs, ``--blocks`` times each, so that a slower
minute of the machine falls on both:

- ``prepared``: the hot statements prepared (``annotations.prepared``, the default);
- ``client``: nothing prepared, as with ``DB_POOL_MODE=transaction`` (the connection's
  ``prepare_threshold`` set to None between blocks).

Needs Redis for the Celery broker (``--broker``) and the database ``bench/review_api.py --keep-db`` leaves (``--db``, default ``bench_hot``:
``python bench/review_api.py --db bench_hot --keep-db``); each run claims and submits items of
its queue.

    python bench/review_inprocess.py --db bench_hot --pairs 200 --blocks 8
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("prepared", "client")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="bench_hot", help="database left by bench/review_api.py --keep-db")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--broker", default=os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/15"),
                   help="Celery broker: the phrase embeddings submits ask for are queued (as in production), "
                        "not run in this process; its io and gpu queues are emptied at the end")
    p.add_argument("--pairs", type=int, default=200, help="next + submit pairs per block")
    p.add_argument("--blocks", type=int, default=8, help="blocks of each mode")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    return p.parse_args()


def wsgi_post(app, path: str, data: bytes, token: str) -> tuple[int, bytes, dict]:
    """A JSON ``POST`` with the token, as a client sends it, straight to the WSGI ``app``: its
    status, body and headers."""
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(data), "wsgi.url_scheme": "http",
               "wsgi.errors": sys.stderr, "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(data)),
               "HTTP_AUTHORIZATION": f"Token {token}", "REMOTE_ADDR": "127.0.0.1"}
    answer: dict = {}
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answer.update(
        status=int(status[:3]), headers=dict(headers))))
    return answer["status"], body, answer["headers"]


def add_costs(totals: dict, prefix: str, headers: dict) -> None:
    """Add one request's server figures, as ``bench.levels.Sample`` reads them from its headers, to
    ``totals`` (keys ``<prefix>py``, ``<prefix>pg``, ``<prefix>q``: µs of Python, µs of PostgreSQL,
    statements)."""
    from bench.levels import Sample

    sample = Sample(0.0, headers)
    totals[prefix + "py"] += sample.py_us
    totals[prefix + "pg"] += sample.pg_us
    totals[prefix + "q"] += sample.queries


def main() -> int:
    args = parse_args()
    modes = args.modes.split(",")
    if not set(modes) <= set(MODES):
        raise SystemExit(f"modes are {', '.join(MODES)}")
    os.environ.update({"DATABASE_URL": f"{args.pg}/{args.db}", "DJANGO_SETTINGS_MODULE": "bench.settings_review",
                       "DEBUG": "0", "LOG_LEVEL": "WARNING", "CELERY_BROKER_URL": args.broker})
    from emoverse_site.wsgi import application as app
    from django.db import connection

    from bench.review_api import SLUG, answer_for, purge_queues, reviewer_tokens

    token = reviewer_tokens()[0]

    def post(path: str, body: dict) -> tuple[int, bytes, dict]:
        return wsgi_post(app, path, json.dumps(body).encode(), token)

    def pair(n: int, totals: dict) -> None:
        status, body, headers = post("/api/review/next/", {"dataset": SLUG})
        if status != 200:
            raise SystemExit(f"next answered {status}: {body[:300]!r}")
        add_costs(totals, "next_", headers)
        item = json.loads(body)
        answer, decisions = answer_for(item, n)
        status, body, headers = post(f"/api/review/leases/{item['lease']['id']}/submit/", {
            "expected_version": item["version"], "decision": "approved", "annotation": answer,
            "element_decisions": decisions, "time_spent_ms": 1000})
        if status != 201:
            raise SystemExit(f"submit answered {status}: {body[:300]!r}")
        add_costs(totals, "sub_", headers)

    keys = ("next_py", "next_pg", "next_q", "sub_py", "sub_pg", "sub_q")
    connection.ensure_connection()
    threshold = connection.connection.prepare_threshold
    n = 0
    with connection.cursor() as cursor:  # the review tables' statistics as they are now (bench/review_api.py's warm-up)
        cursor.execute("ANALYZE")
    for _ in range(20):  # warm-up: imports, the connection, the prepared statements
        pair(n, dict.fromkeys(keys, 0))
        n += 1
    results = {mode: dict.fromkeys(keys, 0) for mode in modes}
    for _ in range(args.blocks):
        for mode in modes:
            connection.ensure_connection()
            connection.connection.prepare_threshold = threshold if mode == "prepared" else None
            for _ in range(args.pairs):
                pair(n, results[mode])
                n += 1
    purge_queues(args.broker)
    count = args.pairs * args.blocks
    print(f"{args.blocks} alternated blocks of {args.pairs} next + submit pairs per mode, database {args.db}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'mode':>9} | {'next: Python':>12} | {'PostgreSQL':>10} | {'statements':>10} | "
          f"{'submit: Python':>14} | {'PostgreSQL':>10} | {'statements':>10}   (µs of CPU per request, mean)")
    for mode, t in results.items():
        print(f"{mode:>9} | {t['next_py'] / count:12,.0f} | {t['next_pg'] / count:10,.0f} | {t['next_q'] / count:10.2f} | "
              f"{t['sub_py'] / count:14,.0f} | {t['sub_pg'] / count:10,.0f} | {t['sub_q'] / count:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
