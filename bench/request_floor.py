"""The least an API request costs this stack: the floor under ``next`` and ``submit``
(docs/review-at-scale.md, "Where a submit's time goes").

One process calls Django's WSGI handler directly, on the database that ``bench/review_api.py
--keep-db`` leaves (``--db``). Every request is a reviewer's ``POST`` with a token and a small
JSON body to a bare view: a ``RoleAPI`` for reviewers that reads the body and answers ``{}``.
So each request has the token's statement, the role check and DRF, and nothing of the review.

Two modes run in alternated blocks, so that the machine's drift falls on both:

- ``all``: the project's middleware;
- ``none``: only the bench's middleware, which reports each request's CPU
  (``bench/server_cpu.py``).

The figures are µs of CPU per request: the worker's Python, and the PostgreSQL backend serving
the connection.

    python bench/request_floor.py --db bench_hot --requests 2000 --blocks 3
"""

from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("all", "none")
URLCONF = "bench_request_floor_urls"
PATH = "/api/bench-floor/"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="bench_hot", help="database left by bench/review_api.py --keep-db")
    p.add_argument("--pg", default=os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--requests", type=int, default=2000, help="requests per block")
    p.add_argument("--blocks", type=int, default=3, help="blocks of each mode")
    return p.parse_args()


def _urlconf() -> str:
    """The project's URLs with the bare view in front, as a module Django can import by name."""
    from django.urls import path

    from annotations.api_json import json_answer
    from core.vocabulary import REVIEWER
    from emoverse_site.urls import urlpatterns
    from review.apis import RoleAPI

    class BareAPI(RoleAPI):
        required_roles = (REVIEWER,)

        def post(self, request):
            request.data  # noqa: B018 -- parsed as any API view's body is
            return json_answer(request, b"{}")

    module = types.ModuleType(URLCONF)
    module.urlpatterns = [path(PATH.strip("/") + "/", BareAPI.as_view()), *urlpatterns]
    sys.modules[URLCONF] = module
    return URLCONF


def main() -> int:
    args = parse_args()
    os.environ.update({"DATABASE_URL": f"{args.pg}/{args.db}", "DJANGO_SETTINGS_MODULE": "bench.settings_review",
                       "DEBUG": "0", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    from bench.review_api import reviewer_tokens
    from bench.review_inprocess import add_costs, wsgi_post

    token = reviewer_tokens()[0]
    urlconf = _urlconf()
    apps = {"all": WSGIHandler()}
    with override_settings(MIDDLEWARE=["bench.server_cpu.ServerCPUMiddleware"]):
        apps["none"] = WSGIHandler()  # the handler reads MIDDLEWARE once, when made
    body = b'{"dataset": "bench"}'

    def post(app) -> dict:
        status, out, headers = wsgi_post(app, PATH, body, token)
        if status != 200:
            raise SystemExit(f"the bare view answered {status}: {out[:300]!r}")
        return headers

    keys = ("py", "pg", "q")
    results = {mode: dict.fromkeys(keys, 0) for mode in MODES}
    with override_settings(ROOT_URLCONF=urlconf):
        for mode in MODES:  # warm-up: imports, the connection, the prepared statement
            for _ in range(100):
                post(apps[mode])
        for _ in range(args.blocks):
            for mode in MODES:
                totals = results[mode]
                for _ in range(args.requests):
                    add_costs(totals, "", post(apps[mode]))
    count = args.requests * args.blocks
    print(f"{args.blocks} alternated blocks of {args.requests} requests per mode, database {args.db}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'middleware':>10} | {'Python':>8} | {'PostgreSQL':>10} | {'statements':>10}   "
          f"(µs of CPU per request, mean; {len(settings.MIDDLEWARE)} middleware in the project)")
    for mode, t in results.items():
        print(f"{mode:>10} | {t['py'] / count:8,.0f} | {t['pg'] / count:10,.0f} | {t['q'] / count:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
