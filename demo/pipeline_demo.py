"""The pipeline demo: the real pre-annotation machinery, running, on the demo photographs.

``bash scripts/pipeline_demo.sh`` (or ``python -m demo.pipeline_demo``) does, on one machine:

1. builds tiny random-initialised models of the real architectures (Grounding DINO, SAM,
   a sentence-transformers phrase embedder, a DES encoder) into ``var/pipeline-demo/models``;
2. starts the local OpenAI-compatible chat server (:mod:`demo.chat_server`, canned
   answers after a simulated latency) for the two annotators and the critic;
3. writes the pipeline configuration (``var/pipeline-demo/ml.json``) naming all of them;
4. picks a broker: Redis when one answers (``DEMO_REDIS_URL``, default
   ``redis://127.0.0.1:6379/0``), else Celery's filesystem transport (queues as files in
   ``var/pipeline-demo/broker``: the same worker, queues and tasks, without a server);
5. migrates the database (``DATABASE_URL``, default a SQLite file of its own), loads the
   demo users and dataset, and puts the photographs, without annotations, in the dataset
   ``pipeline-demo``;
6. starts real Celery workers (``io`` with a thread pool; ``refine,gpu`` with one process,
   click-to-refine first, as a GPU worker in production) and the
   web app (gunicorn), sends every image of ``pipeline-demo`` through the pipeline, and
   prints the progress that the pipeline page shows.

Everything it starts is stopped on Ctrl-C (or, with ``--once``, when every run finished).
It demonstrates the machinery (queues, retries, batching, concurrency, progress, tokens and
cost), not model quality: the answers are canned and the vision models are random.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from demo.chat_server import ChatServer

ROOT = Path(__file__).resolve().parents[1]
DATASET = "pipeline-demo"
DATASET_NAME = "Pipeline demo: tiny random models and canned answers"
PIPELINE_VERSION = "demo-machinery-v1"
NOTICE = (
    "Demonstration of the pipeline's machinery, not of model quality: the annotators and the critic "
    "are a local server with canned answers, and Grounding DINO, SAM, the phrase embedder and the "
    "DES encoder have random weights. Boxes, masks and labels are meaningless."
)
BANNER = "=" * 78


def say(text: str) -> None:
    print(text, flush=True)


# --- models and configuration ------------------------------------------------------------


def build_models(folder: Path) -> dict[str, Path]:
    """The tiny models, built once (a second start reuses them)."""
    from demo import tiny_models

    builders = {
        "grounding-dino": tiny_models.build_tiny_grounding_dino,
        "sam": tiny_models.build_tiny_sam_hf,
        "phrase-embedder": tiny_models.build_tiny_sentence_embedder,
        "des": tiny_models.build_tiny_des_vit,
    }
    paths = {}
    for name, build in builders.items():
        path = folder / name
        if not (path / ".complete").is_file():
            say(f"   building tiny random {name} in {path}")
            path.mkdir(parents=True, exist_ok=True)
            build(path)
            (path / ".complete").write_text("built by demo.pipeline_demo\n")
        paths[name] = path
    return paths


def pipeline_config(chat_url: str, models: dict[str, Path], *, concurrency: int) -> dict:
    """The ``EMOVERSE_ML`` of the demo: every stage a real backend, on the CPU."""
    endpoint = {
        "base_url": chat_url,
        "api_key_env": None,
        "max_concurrency": concurrency,
        "timeout": 30,
        "max_retries": 3,
        "backoff_base_s": 0.5,
        # Made-up prices, so the page has a cost to sum (the server reports 1200 + 150 tokens a call).
        "price_per_1k_prompt": 0.0025,
        "price_per_1k_completion": 0.01,
    }
    cpu = {"device": "cpu"}
    return {
        "pipeline_version": PIPELINE_VERSION,
        "notice": NOTICE,
        "gpu_batch_size": 4,
        "retry_backoff_s": 1,
        "annotators": [
            {"name": "canned-a", "backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator",
             "options": {"model": "fake-a", **endpoint}},
            {"name": "canned-b", "backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator",
             "options": {"model": "fake-b", **endpoint}},
        ],
        "critic": {"name": "canned-critic", "backend": "ml.stages.backends.openai_critic.OpenAICritic",
                   "options": {"model": "fake-critic", **endpoint}},
        "grounder": {"backend": "ml.stages.backends.grounding_dino.GroundingDinoGrounder",
                     "options": {"model_path": str(models["grounding-dino"]), "box_threshold": 0.0,
                                 "text_threshold": 0.0, "batch_size": 4, **cpu}},
        "segmenter": {"backend": "ml.stages.backends.sam_hf.HFSamSegmenter",
                      "options": {"model_path": str(models["sam"]), "batch_size": 4, **cpu}},
        "des": {"backend": "ml.stages.backends.des_encoder.VisionDesEncoder",
                "options": {"model_path": str(models["des"]), **cpu}},
        "embedder": {"backend": "ml.stages.backends.sentence_embedder.SentenceEmbedder", "options": cpu},
    }


# --- broker ------------------------------------------------------------------------------------


def redis_answers(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except Exception:
        return False


def broker_env(work: Path, redis_url: str) -> tuple[dict[str, str], str]:
    """The broker's environment and a sentence saying which one it is."""
    if redis_answers(redis_url):
        return ({"CELERY_BROKER_URL": redis_url, "CELERY_RESULT_BACKEND": redis_url},
                f"Redis at {redis_url}")
    broker, results = work / "broker", work / "results"
    results.mkdir(parents=True, exist_ok=True)
    return (
        {"CELERY_BROKER_URL": "filesystem://", "CELERY_BROKER_FOLDER": str(broker),
         "CELERY_RESULT_BACKEND": f"file://{results}"},
        f"no Redis answers at {redis_url}, so Celery's filesystem transport: the same worker, queues and "
        f"tasks, with the queues as files in {broker} (one machine only; start Redis, or set DEMO_REDIS_URL, "
        "for the real broker)",
    )


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Processes:
    """The children this demo started; :meth:`stop` ends each one's process group."""

    logs: Path
    children: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append((name, proc))
        say(f"   started {name} (pid {proc.pid}, log {self.logs / f'{name}.log'})")
        return proc

    def dead(self) -> list[str]:
        return [name for name, proc in self.children if proc.poll() is not None]

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(self.children):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def worker_args(name: str, queues: str, pool: str, concurrency: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "emoverse_site", "worker", "-Q", queues, "-P", pool,
            "-c", str(concurrency), "-n", f"demo-{name}@%h", "--loglevel", "INFO", "--without-gossip",
            "--without-mingle", "--without-heartbeat", *extra]


def wait_ready(logs: Path, names: list[str], procs: Processes, timeout: float = 180) -> None:
    """Until every worker's log says it is ready (its queues consumed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all("ready." in (logs / f"{n}.log").read_text(errors="replace") for n in names):
            return
        if procs.dead():
            raise RuntimeError(f"{', '.join(procs.dead())} stopped; see its log in {logs}")
        time.sleep(0.5)
    raise RuntimeError(f"the workers were not ready after {timeout:.0f}s; see {logs}")


# --- the run -----------------------------------------------------------------------------------


def prepare_database(images: int) -> None:
    """Migrate, load the demo users and dataset, and put the photographs in ``pipeline-demo``."""
    import django
    from django.core.management import call_command

    django.setup()
    from annotations.image_services import image_ingest
    from annotations.services import dataset_get_or_create
    from demo.scenes import SCENES
    from demo.services import bundled_photo

    call_command("migrate", "--noinput", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    call_command("demo", verbosity=0, stdout=open(os.devnull, "w"))
    dataset, _ = dataset_get_or_create(slug=DATASET, name=DATASET_NAME)
    for scene in SCENES[:images]:
        image_ingest(dataset=dataset, path_or_bytes=bundled_photo(scene.file), original_name=scene.file)


def progress_line() -> tuple[str, bool]:
    """What the pipeline page shows, in one line; and whether every run has finished."""
    from annotations.models import Dataset
    from ml.config import get_registry
    from ml.selectors import dataset_progress
    from ml.services import pipeline_stage_names

    dataset = Dataset.objects.get(slug=DATASET)
    progress = dataset_progress(dataset=dataset, pipeline_version=PIPELINE_VERSION,
                                stage_names=pipeline_stage_names(get_registry()))
    stages = " ".join(f"{s.stage}={s.done}/{s.total}" for s in progress.stages if s.total)
    runs = progress.runs
    line = (f"runs: queued {runs.get('queued', 0)} running {runs.get('running', 0)} done {runs.get('done', 0)} "
            f"failed {runs.get('failed', 0)} | {stages} | {progress.prompt_tokens + progress.completion_tokens} "
            f"tokens, ${progress.cost_usd:.4f}")
    finished = progress.total_runs > 0 and not progress.active
    return line, finished


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # Ctrl-C or SIGTERM: everything the demo started is stopped (``finally`` below)


def run(argv: list[str] | None = None) -> int:
    # Installed explicitly: a shell that starts the demo in the background ignores SIGINT for it.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description="The pipeline demo (see the module docstring).")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--images", type=int, default=11, help="how many demo photographs to pre-annotate (1-11)")
    parser.add_argument("--latency", type=float, default=1.5, help="seconds each canned chat answer takes")
    parser.add_argument("--concurrency", type=int, default=16, help="chat calls in flight per endpoint")
    parser.add_argument("--once", action="store_true", help="stop everything when every run has finished")
    parser.add_argument("--no-web", action="store_true", help="do not start the web app")
    parser.add_argument("--timeout", type=float, default=900, help="with --once: give up after this many seconds")
    args = parser.parse_args(argv)

    var = Path(os.environ.get("EMOVERSE_VAR_DIR", ROOT / "var"))
    work = var / "pipeline-demo"
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    say(BANNER)
    say("PIPELINE DEMO: the real pipeline code, workers and queues, with tiny RANDOM models and")
    say("CANNED chat answers. It demonstrates the machinery, NOT model quality.")
    say(BANNER)
    say("1. tiny models of the real architectures")
    models = build_models(work / "models")

    chat = ChatServer(delay_s=args.latency).start()
    procs = Processes(logs)
    try:
        say(f"2. local OpenAI-compatible chat server at {chat.base_url} (canned answers, {args.latency}s each)")
        config_path = work / "ml.json"
        config_path.write_text(json.dumps(pipeline_config(chat.base_url, models, concurrency=args.concurrency), indent=2))
        say(f"3. pipeline configuration: {config_path}")
        broker, which = broker_env(work, os.environ.get("DEMO_REDIS_URL", "redis://127.0.0.1:6379/0"))
        say(f"4. broker: {which}")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "emoverse_site.settings",
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{work / 'emoverse.sqlite3'}",
            "EMOVERSE_ML_CONFIG": str(config_path),
            "EMOVERSE_PHRASE_EMBEDDING_MODEL": str(models["phrase-embedder"]),
            "TOKENIZERS_PARALLELISM": "false",
            **broker,
        }
        os.environ.update(env)
        say(f"5. database {env['DATABASE_URL']}: migrating, demo users, dataset {DATASET!r}")
        prepare_database(max(1, min(args.images, 11)))

        say(f"6. Celery workers (logs in {logs}) and the web app")
        procs.start("worker-io", worker_args("io", "io", "threads", 2 * args.concurrency), env)
        # As a GPU worker in production: a reviewer's click-to-refine (queue "refine") before the
        # next bulk batch, one message at a time.
        procs.start("worker-gpu", worker_args("gpu", "refine,gpu", "prefork", 1, "--prefetch-multiplier", "1"), env)
        if not args.no_web:
            procs.start("web", [sys.executable, "-m", "gunicorn", "emoverse_site.wsgi", "--bind",
                                f"{args.host}:{args.port}", "--workers", "2", "--threads", "4",
                                "--log-level", "warning"], env)
        wait_ready(logs, ["worker-io", "worker-gpu"], procs)

        from django.core.management import call_command

        call_command("preannotate", "--dataset", DATASET, "--force")
        if not args.no_web:
            say(BANNER)
            say(f"Watch it: http://{args.host}:{args.port}/pipeline/{DATASET}/  (log in as admin / admin-demo)")
            say(f"The results then wait in the review queue: http://{args.host}:{args.port}/  (reviewer / review-demo-1)")
            say("Ctrl-C stops the workers, the web app and the chat server." if not args.once else "")
            say(BANNER)
        return watch(procs, once=args.once, timeout=args.timeout, chat=chat)
    except KeyboardInterrupt:
        return 0
    finally:
        say("stopping what the demo started")
        procs.stop()
        chat.stop()


def watch(procs: Processes, *, once: bool, timeout: float, chat: ChatServer) -> int:
    """Print the progress every 2 s; with ``once``, return when every run has finished (0: all done)."""
    deadline = time.monotonic() + timeout
    last, reported = "", False
    while True:
        if procs.dead():
            say(f"{', '.join(procs.dead())} stopped unexpectedly; see its log")
            return 1
        line, finished = progress_line()
        if line != last:
            say(f"   {time.strftime('%H:%M:%S')} {line} | chat calls in flight at most {chat.max_in_flight}")
            last = line
        if finished and not reported:
            reported = True
            failed = "failed 0" not in line
            say("   every run has finished" + (" (some failed: see the pipeline page)" if failed else ""))
            if once:
                return 1 if failed else 0
        if once and time.monotonic() > deadline:
            say("   gave up waiting for the runs")
            return 1
        time.sleep(2)


if __name__ == "__main__":
    sys.exit(run())
