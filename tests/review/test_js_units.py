"""The review page's pure ES modules under ``node --test``: static/review/review_model.js
(the work model and submit request), static/review/review_keys.js (the keys),
static/review/review_edits.js (the undoable edits) and the editor's DOM-free modules
under static/review/editor/ (history, viewport, geometry, painting)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).parent / "js"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (20+) on PATH")
@pytest.mark.parametrize(("script", "n_tests"), [
    ("test_review_model.mjs", 11), ("test_review_keys.mjs", 11), ("test_review_edits.mjs", 5), ("test_editor.mjs", 9),
    ("test_overlay_colours.mjs", 3),
])
def test_js_module(script, n_tests):
    result = subprocess.run(["node", "--test", str(JS_TESTS / script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and f"# pass {n_tests}" in result.stdout
