"""static/review/review_model.js (the review page's work model and submit request), under node --test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "js" / "test_review_model.mjs"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (20+) on PATH")
def test_review_model_js():
    result = subprocess.run(["node", "--test", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and "# pass 7" in result.stdout
