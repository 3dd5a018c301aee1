"""A bad ``EMOVERSE_ML_CONFIG`` (missing file, malformed JSON, wrong shape) says what to fix:
no traceback from every ``manage.py`` command, a system check error, a clear pipeline message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks

from emoverse_site.settings import _read_ml_config
from ml.config import get_registry, reset_registry
from ml.stages.types import BackendNotConfigured


@pytest.fixture
def bad_file(tmp_path):
    def write(text: str):
        path = tmp_path / "ml.json"
        path.write_text(text)
        return str(path)

    return write


def test_a_missing_file_is_a_system_check_error_not_a_traceback(settings, tmp_path):
    missing = tmp_path / "nowhere" / "ml.json"
    env = {**os.environ, "EMOVERSE_ML_CONFIG": str(missing), "DJANGO_SETTINGS_MODULE": "emoverse_site.settings"}
    out = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert "ml.E001" in out.stderr and f"{str(missing)!r}, which does not exist" in out.stderr
    assert "unset EMOVERSE_ML_CONFIG" in out.stderr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"annotators": [', "is not valid JSON: Expecting value at line 1 column 17"),
        ("[1, 2]", "must hold a JSON object, not list"),
        ("", "is not valid JSON"),
    ],
)
def test_unreadable_files_say_what_is_wrong(bad_file, text, says):
    path = bad_file(text)
    config, problem = _read_ml_config(path)
    assert config == {} and says in problem and repr(path) in problem


def test_the_check_and_the_registry_report_the_problem(settings):
    settings.EMOVERSE_ML_CONFIG = "/etc/emoverse/ml.json"
    settings.EMOVERSE_ML_CONFIG_ERROR = "EMOVERSE_ML_CONFIG file '/etc/emoverse/ml.json' is not valid JSON: x"
    settings.EMOVERSE_ML = {}
    reset_registry()
    errors = [e for e in run_checks() if e.id.startswith("ml.")]
    assert [e.id for e in errors] == ["ml.E001"] and "is not valid JSON" in errors[0].msg
    with pytest.raises(BackendNotConfigured, match="is not valid JSON: x. Fix the file or unset EMOVERSE_ML_CONFIG"):
        get_registry().require_complete()


def test_malformed_entries_of_a_readable_file_are_check_errors(settings):
    settings.EMOVERSE_ML_CONFIG = "/etc/emoverse/ml.json"
    settings.EMOVERSE_ML_CONFIG_ERROR = ""
    settings.EMOVERSE_ML = {
        "gpu_batch_size": 0,
        "annotators": [{"backend": "x.Y", "options": {}}],
        "segmenter": {"backend": "ml.stages.backends.sam_hf.HFSamSegmenter", "options": []},
    }
    reset_registry()
    messages = [e.msg for e in run_checks() if e.id == "ml.E002"]
    assert len(messages) == 3
    assert any("gpu_batch_size'] must be an integer >= 1, got 0" in m for m in messages)
    assert any("needs a 'name'" in m for m in messages)
    assert any("['options'] must be an object" in m for m in messages)


def test_a_partial_file_is_not_an_error(settings):
    settings.EMOVERSE_ML_CONFIG = "/etc/emoverse/ml.json"
    settings.EMOVERSE_ML_CONFIG_ERROR = ""
    settings.EMOVERSE_ML = {"segmenter": {"backend": "ml.stages.backends.sam_hf.HFSamSegmenter", "options": {}}}
    reset_registry()
    assert [e for e in run_checks() if e.id.startswith("ml.")] == []
