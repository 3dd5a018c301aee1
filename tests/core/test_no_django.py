"""core is plain Python: importing every module of it loads neither Django nor any app."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import core

ROOT = Path(__file__).resolve().parents[2]
APPS = ("django", "rest_framework", "annotations", "review", "agreement", "ml", "exports", "emoverse_site")
SCRIPT = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def test_core_imports_no_django_and_no_app():
    modules = [f"core.{m.name}" for m in pkgutil.iter_modules(core.__path__)]
    assert {"core.masks", "core.boxes", "core.pixels", "core.priority", "core.vocabulary"} <= set(modules)
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(modules=modules)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "core" in loaded and "pycocotools" in loaded
    assert loaded.isdisjoint(APPS)
