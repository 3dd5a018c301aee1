"""End to end: a real Redis broker, real ``celery worker`` processes, PostgreSQL.

``preannotate`` (a subprocess) sends one canvas per image to Redis; a worker runs
them against the fake OpenAI-compatible server (in this process) and the
configured vision backends. The first worker is SIGKILLed mid-task; a second one
picks up the unacknowledged work. Every image must end in review with exactly one
run and one merged annotation.

Run with ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/<test database> pytest -m e2e``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from django.db import connection
from django.utils import timezone

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, Element, ImageStatus
from ml.models import PipelineRun, RunStatus
from tests.factories import DatasetFactory, ImageFactory
from demo.chat_server import ChatServer, auto_reply
from tests.ml.stage_fakes import api_pipeline_config

# Under pytest-xdist one worker runs these one after the other: each starts Celery workers of its own.
pytestmark = [pytest.mark.e2e, pytest.mark.ml, pytest.mark.xdist_group("e2e")]

ROOT = Path(__file__).resolve().parents[2]
N_IMAGES = 4


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def _worker_env(config_path, settings, broker: str, **extra: str) -> dict[str, str]:
    """The environment of a worker or command process: this test's database, Redis, config."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "emoverse_site.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "EMOVERSE_ML_CONFIG": str(config_path),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


class HoldAfter:
    """Answers like a good model (``auto_reply``), but holds every answer after the first
    ``n`` until :meth:`release`: while one is held, a worker is in the middle of a task."""

    def __init__(self, n: int):
        self.n, self.count = n, 0
        self.holding = threading.Event()  # an answer is being held
        self.released = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, body):
        with self._lock:
            self.count += 1
            hold = self.count > self.n
        if hold and not self.released.is_set():
            self.holding.set()
            self.released.wait()
        return auto_reply(body)

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def services_up(redis_url) -> str:
    """PostgreSQL, and a Redis database of this test process's own as the broker (its URL)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/emoverse")
    redis.Redis.from_url(redis_url).flushdb()
    yield redis_url
    redis.Redis.from_url(redis_url).flushdb()


@pytest.fixture
def fake_server():
    server = ChatServer().start()
    yield server
    server.stop()


def _config(server: ChatServer, key_env: str, models: dict[str, Path]) -> dict:
    cpu = {"device": "cpu"}
    # Tiny random-initialised models of the real architectures, loaded from folders by the workers.
    return api_pipeline_config(
        server.base_url, key_env, version="e2e-v1", timeout=10, gpu_batch_size=4, retry_backoff_s=0.5,
        classifier={"name": "emovit-tiny", "backend": "ml.stages.backends.hf_classifier.HFEmotionClassifier",
                    "options": {"model_path": str(models["classifier"]), **cpu}},
        grounder={"backend": "ml.stages.backends.grounding_dino.GroundingDinoGrounder",
                  "options": {"model_path": str(models["grounder"]), "box_threshold": 0.0, "text_threshold": 0.0, **cpu}},
        segmenter={"backend": "ml.stages.backends.sam_hf.HFSamSegmenter", "options": {"model_path": str(models["segmenter"]), **cpu}},
        des={"backend": "ml.stages.backends.des_encoder.VisionDesEncoder", "options": {"model_path": str(models["des"]), **cpu}},
    )


class Worker:
    def __init__(self, env: dict[str, str], name: str, log: Path, extra: tuple[str, ...] = (), concurrency: int = 2):
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "emoverse_site", "worker", "-Q", "refine,io,gpu", "-c", str(concurrency),
             "--pool", "prefork", "--loglevel", "INFO", "-n", f"{name}@%h", "--without-gossip", "--without-mingle",
             *extra],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children), as a crash would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


def _wait(predicate, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture
def tiny_models(tiny_grounding_dino_dir, tiny_sam_hf_dir, tiny_classifier_dir, tiny_des_vit_dir) -> dict[str, Path]:
    return {"grounder": tiny_grounding_dino_dir, "segmenter": tiny_sam_hf_dir, "classifier": tiny_classifier_dir, "des": tiny_des_vit_dir}


def test_killed_worker_loses_nothing(services_up, transactional_db, fake_server, tiny_models, settings, tmp_path):
    dataset = DatasetFactory(slug="e2e")
    for i in range(N_IMAGES):
        ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=500 + i)
    config_path = tmp_path / "ml.json"
    config_path.write_text(json.dumps(_config(fake_server, "E2E_OPENAI_KEY", tiny_models)))
    # A killed worker's unacknowledged tasks become visible after 4 s, and workers look for them every
    # second: with kombu's default sweep (about every 100 s) a second worker that started within 4 s
    # of the kill found nothing at its start-up sweep and waited for the next one.
    env = _worker_env(config_path, settings, services_up, CELERY_VISIBILITY_TIMEOUT="4",
                      CELERY_UNACKED_RESTORE_SECONDS="1", E2E_OPENAI_KEY="sk-e2e")
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log"]
    fake_server.responder = held = HoldAfter(3)
    first = Worker(env, "first", logs[0])
    second = None
    try:
        sent = subprocess.run(
            [sys.executable, "manage.py", "preannotate", "--dataset", "e2e"], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120,
        )
        assert sent.returncode == 0, sent.stderr
        assert f"Queued {N_IMAGES} image(s)" in sent.stdout

        # Kill the first worker in the middle of the work: while the model's answer to one
        # of its tasks is held.
        _wait(held.holding.is_set, 90, "the first worker to wait for a model's answer", logs)
        first.kill()
        held.release()
        unfinished = PipelineRun.objects.exclude(status=RunStatus.DONE).count()
        assert unfinished > 0, "the first worker finished everything before it was killed"

        # One pool process: it imports torch and loads the tiny models once, where two would both do it
        # at the same time (most of this test's time on a busy machine); redelivered copies of a task
        # still running (the 4 s timeout) then wait for it instead of loading everything again beside it.
        second = Worker(env, "second", logs[1], concurrency=1)
        _wait(
            lambda: PipelineRun.objects.filter(status__in=[RunStatus.DONE, RunStatus.FAILED]).count() == N_IMAGES,
            180, "every run to finish", logs,
        )
    finally:
        held.release()
        first.stop()
        if second is not None:
            second.stop()

    runs = list(PipelineRun.objects.select_related("image"))
    assert len(runs) == N_IMAGES
    assert {r.status for r in runs} == {RunStatus.DONE}, [(r.pk, r.failed_stage, r.error) for r in runs]
    for run in runs:
        assert run.image.status == ImageStatus.IN_REVIEW
        merged = Annotation.objects.filter(image=run.image, author_name=PIPELINE_AUTHOR)
        assert merged.count() == 1  # exactly one result, even for re-delivered tasks
        assert merged.get().pk == run.annotation_id
        assert Annotation.objects.filter(image=run.image).count() == 3  # two annotators + the merged one
        assert merged.get().triplets.count() == 2
        assert len(bytes(merged.get().des)) == 4096
        assert merged.get().extra["calibration"]["classifier"] is not None
        assert Element.objects.filter(triplet__annotation=merged.get(), mask_counts__isnull=False).exists()
    # What the killed worker had received but not finished was delivered again and done.
    lost = _received_not_succeeded(logs[0].read_text())
    assert lost, "the first worker had nothing in flight when it was killed"
    assert lost <= _succeeded(logs[1].read_text())


def _pool_children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def test_a_pool_child_killed_in_the_gpu_batch_loses_nothing(services_up, transactional_db, fake_server, settings, tmp_path):
    """SIGKILL the pool process that runs the GPU batch: ``reject_on_worker_lost`` sends
    the message again at once, and the redelivered task takes back its own claim (the
    claim's lease, 16 minutes, is far longer than this test may wait)."""
    dataset = DatasetFactory(slug="e2e-gpu")
    for i in range(N_IMAGES):
        ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=600 + i)
    started, release = tmp_path / "batch-started", tmp_path / "batch-release"
    config = api_pipeline_config(fake_server.base_url, "E2E_OPENAI_KEY", version="e2e-gpu-v1", timeout=10,
                                 gpu_batch_size=N_IMAGES,
                                 grounder={"backend": "tests.ml.stage_fakes.WaitingGrounder",
                                           "options": {"started": str(started), "release": str(release)}})
    config_path = tmp_path / "ml.json"
    config_path.write_text(json.dumps(config))
    env = _worker_env(config_path, settings, services_up, E2E_OPENAI_KEY="sk-e2e")
    env.pop("CELERY_VISIBILITY_TIMEOUT", None)  # the default hour: only reject_on_worker_lost redelivers
    env.pop("CELERY_UNACKED_RESTORE_SECONDS", None)
    log = tmp_path / "worker.log"
    worker = Worker(env, "gpu-kill", log)
    try:
        sent = subprocess.run(
            [sys.executable, "manage.py", "preannotate", "--dataset", "e2e-gpu"], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120,
        )
        assert sent.returncode == 0, sent.stderr
        _wait(started.exists, 120, "a GPU batch to start", [log])
        assert PipelineRun.objects.exclude(gpu_claim="").exists()
        children = _pool_children(worker.proc.pid)
        assert children, "no pool processes"
        for child in children:
            os.kill(child, signal.SIGKILL)
        release.touch()  # the batch delivered again goes through
        _wait(
            lambda: PipelineRun.objects.filter(status__in=[RunStatus.DONE, RunStatus.FAILED]).count() == N_IMAGES,
            90, "every run to finish after the kill", [log],
        )
    finally:
        worker.stop()

    text = log.read_text()
    assert "SIGKILL" in text or "signal 9" in text, text[-3000:]
    runs = list(PipelineRun.objects.all())
    assert {r.status for r in runs} == {RunStatus.DONE}, [(r.pk, r.failed_stage, r.error) for r in runs]
    for run in runs:
        assert Annotation.objects.filter(image_id=run.image_id, author_name=PIPELINE_AUTHOR).count() == 1


_TASK_LINE = re.compile(r"Task ml\.tasks\.\w+\[([0-9a-f-]+)\] (received|succeeded)")


def _received_not_succeeded(log: str) -> set[str]:
    received = {m.group(1) for m in _TASK_LINE.finditer(log) if m.group(2) == "received"}
    return received - _succeeded(log)


def _succeeded(log: str) -> set[str]:
    return {m.group(1) for m in _TASK_LINE.finditer(log) if m.group(2) == "succeeded"}




def test_celery_beat_sends_runs_whose_message_was_lost_again(services_up, transactional_db, fake_server, settings, tmp_path):
    """Runs queued an hour ago whose messages never reached a worker (a broker lost them):
    nobody presses Retry; the beat's periodic sweep sends them again and they finish."""
    dataset = DatasetFactory(slug="e2e-beat")
    for i in range(2):
        image = ImageFactory(dataset=dataset, status=ImageStatus.PREANNOTATING, seed=650 + i)
        PipelineRun.objects.create(image=image, pipeline_version="e2e-beat-v1", enqueued=1)
    PipelineRun.objects.update(updated_at=timezone.now() - dt.timedelta(hours=1))
    config = api_pipeline_config(fake_server.base_url, "E2E_OPENAI_KEY", version="e2e-beat-v1", timeout=10)
    config_path = tmp_path / "ml.json"
    config_path.write_text(json.dumps(config))
    env = _worker_env(config_path, settings, services_up, E2E_OPENAI_KEY="sk-e2e", EMOVERSE_STALE_SWEEP_SECONDS="2")
    log = tmp_path / "worker.log"
    worker = Worker(env, "beat", log, extra=("--beat", "--schedule", str(tmp_path / "beat-schedule")))
    try:
        _wait(lambda: PipelineRun.objects.filter(status=RunStatus.DONE).count() == 2, 120,
              "the sweep to send the lost runs again", [log])
    finally:
        worker.stop()

    assert "Sending due task sweep-stale-pipeline-runs (ml.periodic.sweep_stale_runs)" in log.read_text()
    for run in PipelineRun.objects.select_related("image"):
        assert run.enqueued == 2 and run.image.status == ImageStatus.IN_REVIEW
        assert Annotation.objects.filter(image_id=run.image_id, author_name=PIPELINE_AUTHOR, is_current=True).count() == 1


def test_click_to_refine_through_the_api_and_a_real_gpu_worker(
    services_up, transactional_db, tiny_sam_hf_dir, reviewer, api_client, settings, tmp_path, monkeypatch
):
    """The review page's click-to-refine: the web process sends the prompt to the ``gpu``
    queue and waits; a real worker answers from the tiny SAM, reusing the embedding."""
    from celery import Celery

    from review import queue, refine

    config = {"segmenter": {"backend": "ml.stages.backends.sam_hf.HFSamSegmenter",
                            "options": {"model_path": str(tiny_sam_hf_dir), "device": "cpu"}}}
    config_path = tmp_path / "ml.json"
    config_path.write_text(json.dumps(config))
    image = ImageFactory(width=64, height=48, status=ImageStatus.IN_REVIEW)
    assert queue.lease_next(dataset=image.dataset, reviewer=reviewer).image_id == image.pk  # refine needs the lease
    env = _worker_env(config_path, settings, services_up)
    # This (web) process: a broker and result backend, a segmenter named in the configuration.
    settings.EMOVERSE_ML = config
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_RESULT_BACKEND = services_up
    settings.EMOVERSE_REFINE_TIMEOUT_S = 120  # the first answer waits for the worker to start
    monkeypatch.setattr(refine, "celery_app", Celery("refine-e2e", broker=services_up, backend=services_up,
                                                       set_as_current=False))
    api_client.force_authenticate(reviewer)
    log = tmp_path / "gpu-worker.log"
    worker = Worker(env, "gpu", log)
    try:
        first = api_client.post("/api/review/refine/", {"image_id": image.pk, "box": [4, 4, 40, 30], "points": [[20, 16]],
                                                        "labels": [1]}, format="json")
        second = api_client.post("/api/review/refine/", {"image_id": image.pk, "points": [[20, 16], [50, 40]],
                                                         "labels": [1, 0]}, format="json")
    finally:
        worker.stop()
    assert first.status_code == 200, (first.content, log.read_text()[-3000:])
    assert second.status_code == 200, (second.content, log.read_text()[-3000:])
    for answer in (first.json(), second.json()):
        assert answer["mask"] is None or answer["mask"]["size"] == [48, 64]
        assert 0.0 <= answer["score"] <= 1.0
    assert first.json()["mask"] is not None
    assert len(_succeeded(log.read_text())) == 2
