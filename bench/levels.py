"""What ``bench/review_api.py`` and ``bench/label_studio.py`` share: their gunicorn's port,
start and stop, the CPU of server processes from ``/proc``, and the figures of a load level
(client threads collecting ``next``/``submit`` samples, summarised per endpoint)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import statistics
import subprocess
import threading
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def wait_serving(proc: subprocess.Popen, port: int, path: str, *, seconds: float, why_exited=lambda: "") -> subprocess.Popen:
    """``proc`` once ``GET path`` on ``port`` answers 200; stopped and an error after ``seconds``
    or when it exits (``why_exited()`` adds its log)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {proc.returncode}{why_exited()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"gunicorn did not answer within {seconds:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def process_cpu_ns(pid: int) -> int:
    """CPU time of one process so far (``/proc/<pid>/schedstat``), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0

class Sample:
    """One request: latency seen by the client, and the server's own figures (headers)."""

    __slots__ = ("ms", "py_us", "pg_us", "queries")

    def __init__(self, ms: float, headers) -> None:
        self.ms = ms
        self.py_us = int(headers.get("X-Bench-Py-CPU-us", 0))
        self.pg_us = int(headers.get("X-Bench-Pg-CPU-us", 0))
        self.queries = int(headers.get("X-Bench-Queries", 0))

def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summary(samples: list[Sample]) -> dict:
    cpu = [(s.py_us + s.pg_us) / 1000 for s in samples]
    return {
        "n": len(samples),
        "cpu_mean": statistics.fmean(cpu) if cpu else float("nan"),
        "cpu_p50": percentile(cpu, 50),
        "py_mean": statistics.fmean(s.py_us / 1000 for s in samples) if samples else float("nan"),
        "pg_mean": statistics.fmean(s.pg_us / 1000 for s in samples) if samples else float("nan"),
        "queries": max((s.queries for s in samples), default=0),
        "p50": percentile([s.ms for s in samples], 50),
        "p95": percentile([s.ms for s in samples], 95),
    }

def measure_level(threads: list[threading.Thread], pids: list[int]) -> dict:
    """Run the client threads (each collecting ``next``/``submit`` samples and ``errors``) to their
    deadline; their figures, and the CPU the processes ``pids`` spent per request meanwhile."""
    cpu_before = sum(process_cpu_ns(pid) for pid in pids)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu = sum(process_cpu_ns(pid) for pid in pids) - cpu_before
    nxt = [v for t in threads for v in t.next]
    sub = [v for t in threads for v in t.submit]
    return {
        "next": summary(nxt), "submit": summary(sub), "items_s": len(sub) / elapsed,
        "server_ms_per_request": cpu / 1e6 / max(len(nxt) + len(sub), 1), "items": len(sub),
        "errors": [e for t in threads for e in t.errors], "load": os.getloadavg(),
    }
