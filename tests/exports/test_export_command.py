"""``manage.py export_dataset``: who ran it, the auto-accepted opt-in, images by URL refused on local storage."""

from __future__ import annotations

import getpass
import io
import json

import pytest
from django.core.management import CommandError, call_command

from exports.models import ExportSnapshot
from tests.exports.export_scenes import add_auto_accepted, build_scene, fast_passwords  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.django_db


def export(*args: str) -> tuple[ExportSnapshot, str]:
    out = io.StringIO()
    call_command("export_dataset", "--dataset", "demo", "--format", "emoverse-jsonl", *args, stdout=out)
    return ExportSnapshot.objects.latest("id"), out.getvalue()


def test_without_user_the_os_account_is_recorded_as_run_by(monkeypatch):
    build_scene()
    monkeypatch.setattr(getpass, "getuser", lambda: "ops-bot")
    snapshot, _ = export()
    assert snapshot.run_by == "ops-bot" and snapshot.created_by is None
    assert snapshot.manifest["run_by"] == "ops-bot" and snapshot.manifest["created_by"] is None


def test_with_user_both_are_recorded(admin_user):
    build_scene()
    snapshot, _ = export("--user", admin_user.username)
    assert snapshot.manifest["created_by"]["username"] == admin_user.username == snapshot.manifest["run_by"]


def test_include_auto_accepted_is_an_explicit_flag(tmp_path):
    scene = build_scene()
    auto = add_auto_accepted(scene.dataset)
    default, output = export()
    assert "1 auto-accepted only" in output and default.manifest["counts"]["images"] == 3
    included, output = export("--include-auto-accepted", "--out", str(tmp_path / "out"))
    assert "(1 machine-accepted)" in output and included.filters["include_auto_accepted"] is True
    names = {json.loads(line)["image"] for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()}
    assert auto.original_name in names and len(names) == 4


def test_images_by_url_on_local_storage_is_a_clear_error():
    build_scene()
    with pytest.raises(CommandError, match="images=url needs a storage that serves public URLs"):
        export("--images", "url")
    assert not ExportSnapshot.objects.exists()
