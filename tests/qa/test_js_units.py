"""The rating page's pure functions under ``node --test`` (static/qa/rate.js)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).parent / "js"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (20+) on PATH")
def test_rate_keys():
    result = subprocess.run(
        ["node", "--test", str(JS_TESTS / "test_rate.mjs")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and "# pass 3" in result.stdout
