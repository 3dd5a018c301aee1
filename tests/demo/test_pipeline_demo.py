"""The pipeline demo's entry point, non-interactively: two photographs through real Celery
workers (on the filesystem transport, so no Redis is needed) with tiny random models and the
local chat server, until every run is done; then everything it started is stopped."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo.pipeline_demo import NOTICE, pipeline_config

pytestmark = [pytest.mark.e2e, pytest.mark.ml, pytest.mark.xdist_group("e2e")]
ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    """One folder for the module: the second demo reuses the tiny models the first one built."""
    return tmp_path_factory.mktemp("pipeline-demo-var")


def demo_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CELERY_", "EMOVERSE_")) and k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(EMOVERSE_VAR_DIR=str(var_dir), DEMO_REDIS_URL="redis://127.0.0.1:9/0",  # nothing answers there
               PYTHONPATH=str(ROOT))
    return env


def test_the_demo_runs_two_photographs_through_real_workers_and_stops_what_it_started(var_dir):
    tmp_path, env = var_dir, demo_env(var_dir)

    done = subprocess.run(
        [sys.executable, "-m", "demo.pipeline_demo", "--once", "--images", "2", "--no-web", "--latency", "0.2",
         "--timeout", "400"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    out = done.stdout + done.stderr

    assert done.returncode == 0, out[-4000:]
    assert "It demonstrates the machinery, NOT model quality." in out
    assert "broker: no Redis answers at redis://127.0.0.1:9/0, so Celery's filesystem transport" in out
    assert "every run has finished" in out and "stopping what the demo started" in out
    final = [line for line in out.splitlines() if "runs: " in line][-1]
    assert "done 2 failed 0" in final and "save=2/2" in final and "ground=2/2" in final

    work = tmp_path / "pipeline-demo"
    with sqlite3.connect(work / "emoverse.sqlite3") as db:
        runs = db.execute("select status, prompt_tokens, completion_tokens, cost_usd from ml_pipelinerun").fetchall()
        masks = db.execute("select count(*) from annotations_element where mask_counts is not null").fetchone()[0]
    assert [r[0] for r in runs] == ["done", "done"]
    assert all(r[1] == 3 * 1200 and r[2] == 3 * 150 and r[3] > 0 for r in runs)  # two annotators and the critic
    assert masks > 0  # SAM (random weights) drew masks for the boxes Grounding DINO (random weights) found
    for name in ("worker-io", "worker-gpu"):
        assert "ready." in (work / "logs" / f"{name}.log").read_text()
    pids = [int(p) for p in re.findall(r"started worker-\w+ \(pid (\d+)", out)]
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids)


def test_ctrl_c_stops_every_process_the_demo_started(var_dir):
    log = var_dir / "interrupted.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "demo.pipeline_demo", "--images", "1", "--no-web", "--latency", "5"],
            cwd=ROOT, env=demo_env(var_dir), stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 400
            while "runs: " not in log.read_text() and time.monotonic() < deadline and demo.poll() is None:
                time.sleep(0.5)
            assert "runs: " in log.read_text(), log.read_text()[-3000:]  # workers up, a run under way
            demo.send_signal(signal.SIGINT)  # Ctrl-C
            assert demo.wait(timeout=60) == 0
        finally:
            if demo.poll() is None:
                demo.kill()
    text = log.read_text()
    assert "stopping what the demo started" in text
    pids = [int(p) for p in re.findall(r"started worker-\w+ \(pid (\d+)", text)]
    assert len(pids) == 2 and not any(_alive(pid) for pid in pids)


def test_the_demo_configuration_is_labelled_and_names_real_backends(tmp_path):
    config = pipeline_config("http://127.0.0.1:1/v1", {k: tmp_path / k for k in
                                                      ("grounding-dino", "sam", "phrase-embedder", "des")},
                             concurrency=8)

    assert config["notice"] == NOTICE and "not of model quality" in NOTICE
    assert config["grounder"]["backend"] == "ml.stages.backends.grounding_dino.GroundingDinoGrounder"
    assert config["segmenter"]["backend"] == "ml.stages.backends.sam_hf.HFSamSegmenter"
    assert {a["options"]["max_concurrency"] for a in config["annotators"]} == {8}
