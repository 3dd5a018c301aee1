"""What one request costs the server, for ``bench/review_api.py``: a middleware (loaded only by
``bench/settings_review.py``) that answers with three headers.

- ``X-Bench-Py-CPU-us``: CPU time of the worker process while Django handled the request
  (``time.process_time_ns``; gunicorn's sync workers run one request at a time).
- ``X-Bench-Pg-CPU-us``: CPU time of the PostgreSQL backend serving the request's connection
  over the same span, read from ``/proc/<backend pid>/schedstat`` (nanoseconds on the CPU). The
  pid comes from the open connection (``psycopg``'s ``info.backend_pid``: no query). A
  connection opened during the request counts from its start.
- ``X-Bench-Queries``: statements the request ran (``connection.execute_wrapper``).
"""

from __future__ import annotations

import time

from django.db import connection

from bench.levels import process_cpu_ns


def backend_pid() -> int | None:
    raw = connection.connection
    if raw is None or getattr(raw, "closed", True):
        return None
    return raw.info.backend_pid


def backend_cpu_ns(pid: int | None) -> int:
    return 0 if pid is None else process_cpu_ns(pid)


class ServerCPUMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        queries = 0

        def count(execute, sql, params, many, context):
            nonlocal queries
            queries += 1
            return execute(sql, params, many, context)

        pid_before = backend_pid()
        pg_before = backend_cpu_ns(pid_before)
        py_before = time.process_time_ns()
        with connection.execute_wrapper(count):
            response = self.get_response(request)
        py = time.process_time_ns() - py_before
        pid_after = backend_pid()
        pg = backend_cpu_ns(pid_after) - (pg_before if pid_after == pid_before else 0)
        response["X-Bench-Py-CPU-us"] = str(py // 1000)
        response["X-Bench-Pg-CPU-us"] = str(max(pg, 0) // 1000)
        response["X-Bench-Queries"] = str(queries)
        return response
