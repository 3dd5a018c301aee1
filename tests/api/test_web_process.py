"""What the web process does once at its start (``emoverse_site.startup``), as gunicorn loads the
application (``emoverse_site.wsgi``): checked in a fresh interpreter, where nothing is loaded yet
and nothing is frozen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import gc, json, sys
import emoverse_site.wsgi
frozen = gc.get_freeze_count()

class Node:
    pass

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after the start: still the collector's to free
del a, b
views = ("review.apis", "annotations.apis", "exports.apis", "rest_framework.views")
print(json.dumps({"frozen": frozen, "collected": gc.collect(), "views": sorted(m for m in views if m in sys.modules),
                  "transport": "kombu.transport.redis" in sys.modules,
                  "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))}))
"""


def _start(tmp_path: Path, broker: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "emoverse_site.settings", "EMOVERSE_VAR_DIR": str(tmp_path),
           "CELERY_BROKER_URL": broker}
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_wsgi_application_loads_the_views_and_the_broker_transport_before_its_first_request(tmp_path):
    done = _start(tmp_path, "redis://127.0.0.1:6379/15")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["views"] == ["annotations.apis", "exports.apis", "rest_framework.views", "review.apis"]
    assert report["transport"]
    assert report["heavy"] == []  # the views still leave torch to the workers


def test_what_the_start_loaded_is_out_of_the_collectors_passes_and_later_garbage_is_still_collected(tmp_path):
    done = _start(tmp_path, "redis://127.0.0.1:6379/15")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["frozen"] > 50_000  # Django, DRF, the models and the URL patterns
    assert report["collected"] >= 2  # the two objects of the cycle made after the start


@pytest.mark.parametrize("broker", ["nosuch://127.0.0.1/0", "redis://127.0.0.1:notaport/0", "redis://[::1/0"])
def test_a_broker_url_kombu_cannot_read_does_not_stop_the_web_process(tmp_path, broker):
    """The transport is loaded at the start now: a scheme kombu does not know, or a URL it cannot
    parse, is logged there, and each send meets it as before, rather than the web process failing
    to start."""
    done = _start(tmp_path, broker)
    assert done.returncode == 0, done.stderr
    assert "the Celery broker's transport could not be loaded" in done.stderr
    assert "review.apis" in json.loads(done.stdout.strip().splitlines()[-1])["views"]
