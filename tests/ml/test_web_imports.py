"""The web process never imports torch or transformers (they live in worker backends)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import importlib, importlib.util, json, sys
import django
django.setup()
from django.apps import apps
import emoverse_site.urls  # noqa
import ml.urls, ml.tasks, ml.services, ml.config, ml.stages.registry, ml.stages.pipeline, ml.stages.check  # noqa
loaded = []
for app in apps.get_app_configs():
    for module in ("views", "apis", "urls", "api_urls", "admin", "services", "selectors"):
        name = f"{app.name}.{module}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
            loaded.append(name)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "torchvision", "segment_anything"))
print(json.dumps({"loaded": loaded, "heavy": heavy}))
"""


def test_urls_views_and_tasks_do_not_import_torch(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "emoverse_site.settings", "EMOVERSE_VAR_DIR": str(tmp_path)}
    env.pop("EMOVERSE_ML_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "ml.views" in report["loaded"] and "annotations.views" in report["loaded"]
    assert report["heavy"] == []


ROUTES_SCRIPT = """
import json, sys
import django
django.setup()
from ml import services
from ml.config import get_registry
routes = services._routes(get_registry().require_complete())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "torchvision", "segment_anything"))
print(json.dumps({"annotators": routes.annotators, "critic": routes.critic, "heavy": heavy}))
"""


def test_a_local_qwen_goes_to_the_gpu_queue_without_importing_torch_in_the_web_process(tmp_path):
    """``QwenVLAnnotator`` declares ``default_queue = "gpu"``: an entry without ``queue``
    is routed to the GPU workers, and reading that does not load the model or torch."""
    qwen = {"backend": "ml.stages.backends.qwen_vl.QwenVLAnnotator", "options": {"model_path": "/models/qwen2.5-vl-7b"}}
    config = {
        "annotators": [
            {"name": "gpt-4o", "backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator", "options": {"model": "gpt-4o"}},
            {"name": "qwen-local", **qwen},
        ],
        "critic": {"backend": "ml.stages.backends.qwen_vl.QwenVLCritic", "options": qwen["options"]},
        "grounder": {"backend": "ml.stages.backends.grounding_dino.GroundingDinoGrounder"},
        "segmenter": {"backend": "ml.stages.backends.sam_hf.HFSamSegmenter"},
    }
    config_path = tmp_path / "ml.json"
    config_path.write_text(json.dumps(config))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "emoverse_site.settings", "EMOVERSE_VAR_DIR": str(tmp_path),
           "EMOVERSE_ML_CONFIG": str(config_path)}
    done = subprocess.run([sys.executable, "-c", ROUTES_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["annotators"] == [["gpt-4o", "io"], ["qwen-local", "gpu"]]
    assert report["critic"] == "gpu"
    assert report["heavy"] == []
