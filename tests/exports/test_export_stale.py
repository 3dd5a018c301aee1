"""A running export whose worker died: shown and restartable at once, marked failed by Celery beat, never by a GET."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from exports import periodic, runs, selectors, services
from exports.models import ExportSnapshot, ExportStatus
from tests.exports.export_scenes import build_scene, fast_passwords  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def stale(admin_user):
    """A snapshot left ``running`` by a worker that stopped reporting long ago, with its partial folder."""
    scene = build_scene()
    snapshot = services.export_create(dataset=scene.dataset, export_format="emoverse-jsonl", created_by=admin_user)
    attempt = runs._claim(snapshot.pk)
    long_ago = timezone.now() - selectors.stale_after() - timedelta(minutes=5)
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(heartbeat_at=long_ago)
    snapshot.refresh_from_db()
    assert attempt.folder.exists() and selectors.snapshot_is_stale(snapshot)
    return snapshot


def test_pages_and_apis_show_a_stale_export_without_writing(stale, admin_user, client, api_client):
    client.force_login(admin_user)
    page = client.get("/exports/").content
    assert b"Interrupted: no progress since" in page and f"/exports/{stale.pk}/restart/".encode() in page
    partial = client.get("/exports/", HTTP_HX_REQUEST="true").content
    assert b'hx-trigger="every 2s"' not in partial  # nothing left to follow
    api_client.force_authenticate(admin_user)
    listed = api_client.get("/api/exports/").data["results"]
    assert [(s["id"], s["status"], s["stale"]) for s in listed] == [(stale.pk, "running", True)]
    assert api_client.get(f"/api/exports/{stale.pk}/").data["stale"] is True
    unchanged = ExportSnapshot.objects.get(pk=stale.pk)
    assert (unchanged.status, unchanged.error, unchanged.heartbeat_at) == (ExportStatus.RUNNING, "", stale.heartbeat_at)
    assert selectors.partial_dir(unchanged).exists()


def test_a_live_export_is_not_stale_and_cannot_be_restarted(admin_user, api_client):
    scene = build_scene()
    snapshot = services.export_create(dataset=scene.dataset, export_format="parquet")
    runs._claim(snapshot.pk)
    api_client.force_authenticate(admin_user)
    assert api_client.get(f"/api/exports/{snapshot.pk}/").data["stale"] is False
    response = api_client.post(f"/api/exports/{snapshot.pk}/restart/")
    assert response.status_code == 403 and response.data["detail"] == "This export is still running."
    assert ExportSnapshot.objects.get(pk=snapshot.pk).status == ExportStatus.RUNNING


@pytest.mark.parametrize("via", ["page", "api"])
def test_a_stale_export_is_restarted_by_a_post_before_any_sweep(via, stale, admin_user, client, api_client,
                                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        if via == "page":
            client.force_login(admin_user)
            assert client.post(f"/exports/{stale.pk}/restart/").status_code == 302
        else:
            api_client.force_authenticate(admin_user)
            assert api_client.post(f"/api/exports/{stale.pk}/restart/").status_code == 200
    snapshot = ExportSnapshot.objects.get(pk=stale.pk)
    assert snapshot.status == ExportStatus.COMPLETE and snapshot.task_id and snapshot.manifest["counts"]["images"] == 3
    assert not selectors.partial_dir(stale).exists()  # the dead attempt's folder is gone


def test_the_periodic_task_marks_stale_exports_failed_and_removes_their_folders(stale):
    fresh = services.export_create(dataset=stale.dataset, export_format="parquet")
    runs._claim(fresh.pk)
    assert periodic.fail_stale_exports.apply().get() == {"failed": 1}
    snapshot = ExportSnapshot.objects.get(pk=stale.pk)
    assert snapshot.status == ExportStatus.FAILED and snapshot.error.startswith("Interrupted: no progress since")
    assert not selectors.partial_dir(stale).exists()
    assert ExportSnapshot.objects.get(pk=fresh.pk).status == ExportStatus.RUNNING
    assert periodic.fail_stale_exports.apply().get() == {"failed": 0}


def test_the_beat_schedule_runs_the_export_sweep(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["fail-stale-exports"]
    assert entry["schedule"] == settings.EMOVERSE_EXPORT_SWEEP_SECONDS
    # What a worker registers when it starts (in a fresh process: nothing imported by this test).
    code = ("from emoverse_site.celery import app; app.loader.import_default_modules(); "
            f"print({entry['task']!r} in app.tasks)")
    out = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out.stderr
