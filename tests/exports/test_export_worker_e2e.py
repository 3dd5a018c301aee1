"""End to end: an export sent to a real ``celery worker`` (prefork pool, Redis, PostgreSQL)
encodes its chunks in forked processes from inside the pool's child and writes exactly what the
in-process Django path writes. The pool's children are daemon processes: this is where a
process pool inside a task would fail if it could not start there.

Run with ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/<test database> pytest -m e2e``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings

from kombu import Connection

from exports import services
from exports.tasks import export_snapshot
from tests.exports.test_export_fast_path import content, dataset, export  # noqa: F401 - fixture
from tests.ml.test_worker_e2e import _database_url

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e"), pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker(redis_url, settings, tmp_path):
    from emoverse_site.celery import app

    eager, app.conf.task_always_eager = app.conf.task_always_eager, False
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "emoverse_site.settings", "DATABASE_URL": _database_url(),
           "CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url, "MEDIA_ROOT": str(settings.MEDIA_ROOT),
           "EXPORT_ROOT": str(settings.EXPORT_ROOT), "EMOVERSE_EXPORT_WORKERS": "2",
           "EMOVERSE_EXPORT_PARALLEL_MIN": "1", "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "emoverse_site", "worker", "-Q", "io", "-c", "1",
                             "--pool", "prefork", "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield SimpleNamespace(log=tmp_path / "worker.log", redis_url=redis_url)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    app.conf.task_always_eager = eager


@pytest.mark.parametrize("export_format", ["emoverse-jsonl", "coco", "parquet"])
def test_an_export_in_a_prefork_worker_uses_forked_encoders_and_writes_what_the_django_path_writes(
        dataset, worker, export_format, on_postgres):  # noqa: F811 - dataset: the fixture imported above
    expected = content(export(dataset, export_format, fast=False), export_format)
    snapshot = services.export_create(dataset=dataset, export_format=export_format)
    # Sent on a connection of its own: this process's Celery app may already hold a producer
    # for another broker (an earlier test's), which a changed broker_url does not replace.
    with Connection(worker.redis_url) as conn:
        export_snapshot.apply_async(args=[snapshot.pk], connection=conn)  # routed to the io queue
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        snapshot.refresh_from_db()
        if snapshot.status in ("complete", "failed"):
            break
        time.sleep(0.5)
    assert snapshot.status == "complete", (snapshot.status, snapshot.error, worker.log.read_text()[-3000:])
    result = {"manifest": snapshot.manifest, "folder": Path(settings.EXPORT_ROOT) / snapshot.path}
    got = content(result, export_format)
    if export_format == "parquet":  # row groups follow the chunk size, which the in-process run makes tiny
        got, expected = got[0], expected[0]
    assert got == expected
