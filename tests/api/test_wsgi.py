"""The WSGI entry point: what it loaded before the first request is out of the garbage
collector's way (``emoverse_site/wsgi.py``), and the application still answers and collects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import gc, io, json, sys
from emoverse_site.wsgi import application
frozen = gc.get_freeze_count()
views_loaded = "review.apis" in sys.modules and "annotations.views" in sys.modules
status = []
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/accounts/login/", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
           "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "http"}
body = b"".join(application(environ, lambda s, h: status.append(s)))
print(json.dumps({"frozen": frozen, "views_loaded": views_loaded, "status": status[0], "collected": gc.collect()}))
"""


def test_the_wsgi_application_freezes_what_it_loaded_and_still_collects_request_cycles(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "emoverse_site.settings", "EMOVERSE_VAR_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "ALLOWED_HOSTS": "localhost"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["views_loaded"]  # the URLconf was imported before freezing, not on the first request
    assert report["frozen"] > 50_000  # modules, classes, URL patterns: never walked by a collection again
    assert report["status"].startswith("200")
    assert report["collected"] > 0  # the request's reference cycles are still found and freed
