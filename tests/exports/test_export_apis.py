"""Exports over HTTP: admin-only API and page, progress, zip and file downloads, path traversal refused."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from exports import runs, selectors, services
from exports.models import ExportSnapshot, ExportStatus
from tests.exports.export_scenes import add_auto_accepted, build_scene, fast_passwords  # noqa: F401 - autouse fixture
from tests.factories import DatasetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene():
    return build_scene()


@pytest.fixture
def complete(scene, admin_user):
    snapshot = services.export_create(dataset=scene.dataset, export_format="emoverse-jsonl", options={"images": "copy"},
                                     created_by=admin_user)
    return runs.export_run(snapshot_id=snapshot.pk)


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- permissions ---------------------------------------------------------------------


def api_urls(pk: int) -> list[tuple[str, str]]:
    return [("get", "/api/exports/"), ("post", "/api/exports/"), ("get", f"/api/exports/{pk}/"),
            ("get", f"/api/exports/{pk}/download/"), ("get", f"/api/exports/{pk}/files/data.jsonl"),
            ("post", f"/api/exports/{pk}/restart/")]


def page_urls(pk: int) -> list[tuple[str, str]]:
    return [("get", "/exports/"), ("post", "/exports/start/"), ("get", f"/exports/{pk}/download.zip"),
            ("get", f"/exports/{pk}/files/data.jsonl"), ("post", f"/exports/{pk}/restart/")]


@pytest.mark.parametrize("role", ["reviewer", "researcher"])
def test_reviewers_and_researchers_get_403_everywhere(request, role, complete, api_client, client):
    user = request.getfixturevalue(role)
    api_client.force_authenticate(user)
    for method, url in api_urls(complete.pk):
        data = {"dataset": "demo", "format": "coco"} if method == "post" else None
        assert getattr(api_client, method)(url, data, format="json").status_code == 403, url
    client.force_login(user)
    for method, url in page_urls(complete.pk):
        assert getattr(client, method)(url).status_code == 403, url
    assert ExportSnapshot.objects.count() == 1


def test_anonymous_users_are_refused(complete, api_client, client):
    for method, url in api_urls(complete.pk):
        assert getattr(api_client, method)(url).status_code in (401, 403), url
    for method, url in page_urls(complete.pk):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


# --- API --------------------------------------------------------------------------------


def test_admin_starts_an_export_and_follows_its_progress(scene, admin_user, api_client, django_capture_on_commit_callbacks):
    api_client.force_authenticate(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/exports/", {"dataset": "demo", "format": "coco", "filters": {"source": ["emoset"]},
                                                     "options": {"categories": "role"}}, format="json")
    assert response.status_code == 201, response.content
    detail = api_client.get(f"/api/exports/{response.data['id']}/").data
    assert detail["status"] == "complete" and detail["percent"] == 100.0 and detail["done"] == detail["total"] == 3
    assert detail["created_by"] == admin_user.username and detail["task_id"]
    assert detail["manifest"]["counts"]["by_source"] == {"emoset": 2}
    assert [f["path"] for f in detail["files"]] == ["annotations.json", "manifest.json"]
    listed = api_client.get("/api/exports/").data["results"]
    assert [s["id"] for s in listed] == [detail["id"]]


def test_bad_requests_get_400_with_the_field(scene, admin_user, api_client):
    api_client.force_authenticate(admin_user)
    response = api_client.post("/api/exports/", {"dataset": "demo", "format": "parquet", "filters": {"label": "joy"}}, format="json")
    assert response.status_code == 400 and response.data["field"] == "label"
    response = api_client.post("/api/exports/", {"dataset": "nope", "format": "parquet"}, format="json")
    assert response.status_code == 400 and response.data["field"] == "dataset"
    assert not ExportSnapshot.objects.exists()


def test_api_include_auto_accepted_is_opt_in_and_recorded(scene, admin_user, api_client, django_capture_on_commit_callbacks):
    add_auto_accepted(scene.dataset)
    api_client.force_authenticate(admin_user)
    ids = []
    for filters in ({}, {"include_auto_accepted": True}):
        with django_capture_on_commit_callbacks(execute=True):
            response = api_client.post("/api/exports/", {"dataset": "demo", "format": "parquet", "filters": filters}, format="json")
        assert response.status_code == 201, response.content
        ids.append(response.data["id"])
    default, included = (api_client.get(f"/api/exports/{pk}/").data for pk in ids)
    assert default["filters"]["include_auto_accepted"] is False and default["manifest"]["counts"]["machine_accepted"] == 0
    assert default["manifest"]["counts"]["skipped_auto_accepted"] == 1
    assert included["filters"]["include_auto_accepted"] is True and included["manifest"]["counts"]["machine_accepted"] == 1
    assert included["manifest"]["counts"]["images"] == 4
    assert included["run_by"] == admin_user.username == included["manifest"]["run_by"]
    assert included["heartbeat_at"] is not None


def test_api_refuses_images_by_url_on_local_storage(scene, admin_user, api_client):
    api_client.force_authenticate(admin_user)
    response = api_client.post("/api/exports/", {"dataset": "demo", "format": "coco", "options": {"images": "url"}}, format="json")
    assert response.status_code == 400 and response.data["field"] == "images"
    assert "public URLs" in response.data["detail"] and not ExportSnapshot.objects.exists()


def test_zip_download_holds_every_file_of_the_snapshot(complete, admin_user, api_client):
    api_client.force_authenticate(admin_user)
    response = api_client.get(f"/api/exports/{complete.pk}/download/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    prefix = f"demo-v{complete.version:04d}-emoverse-jsonl/"
    names = set(archive.namelist())
    assert {prefix + "manifest.json", prefix + "data.jsonl", prefix + "images.sha256"} <= names
    assert len([n for n in names if n.startswith(prefix + "images/")]) == 3
    assert json.loads(archive.read(prefix + "manifest.json")) == complete.manifest
    folder = selectors.final_dir(complete)
    assert archive.read(prefix + "data.jsonl") == (folder / "data.jsonl").read_bytes()


def test_single_file_download(complete, admin_user, api_client):
    api_client.force_authenticate(admin_user)
    response = api_client.get(f"/api/exports/{complete.pk}/files/data.jsonl")
    assert response.status_code == 200
    content = body(response)
    assert content == (selectors.final_dir(complete) / "data.jsonl").read_bytes()
    image = json.loads(content.splitlines()[0])["image"]
    assert api_client.get(f"/api/exports/{complete.pk}/files/images/{image}").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["../../../etc/passwd", "..%2F..%2Fsecret.txt", "images/../../secret.txt", "%2Fetc%2Fpasswd", "images", "outside-link", "nope.txt"],
)
def test_download_path_traversal_is_refused(complete, admin_user, api_client, client, path):
    secret = Path(settings.EXPORT_ROOT) / "demo" / "secret.txt"
    secret.write_text("not for download")
    os.symlink(secret, selectors.final_dir(complete) / "outside-link")
    api_client.force_authenticate(admin_user)
    assert api_client.get(f"/api/exports/{complete.pk}/files/{path}").status_code == 404
    client.force_login(admin_user)
    response = client.get(f"/exports/{complete.pk}/files/{path}")
    assert response.status_code == 404 and b"not for download" not in body(response)


def test_a_snapshot_whose_path_points_outside_the_export_root_is_not_served(complete, admin_user, api_client):
    ExportSnapshot.objects.filter(pk=complete.pk).update(path="../media")
    api_client.force_authenticate(admin_user)
    assert api_client.get(f"/api/exports/{complete.pk}/download/").status_code == 404
    assert api_client.get(f"/api/exports/{complete.pk}/files/data.jsonl").status_code == 404


def test_unfinished_snapshots_have_nothing_to_download(scene, admin_user, api_client):
    pending = services.export_create(dataset=scene.dataset, export_format="parquet")
    api_client.force_authenticate(admin_user)
    assert api_client.get(f"/api/exports/{pending.pk}/download/").status_code == 404
    assert api_client.get(f"/api/exports/{pending.pk}/").data["download_url"] is None


# --- pages ----------------------------------------------------------------------------


def test_admin_page_starts_an_export_and_lists_every_version(scene, admin_user, client, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    page = client.get("/exports/")
    assert page.status_code == 200 and b"Start export" in page.content
    for export_format in ("emoverse-jsonl", "coco", "parquet"):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post("/exports/start/", {"dataset": "demo", "format": export_format, "status": ["approved"],
                                                       "date_field": "image", "images": "none", "categories": "emotion"})
        assert response.status_code == 302
    assert list(ExportSnapshot.objects.values_list("status", flat=True)) == [ExportStatus.COMPLETE] * 3
    page = client.get("/exports/")
    for snapshot in ExportSnapshot.objects.all():
        assert f"/exports/{snapshot.pk}/download.zip".encode() in page.content
    download = client.get(f"/exports/{ExportSnapshot.objects.get(format='coco').pk}/files/annotations.json")
    assert download.status_code == 200 and json.loads(body(download))["categories"][0]["name"] == "amusement"


def test_the_page_opens_with_the_dataset_it_was_reached_from(scene, admin_user, client):
    client.force_login(admin_user)
    assert b'<option value="demo" selected>' in client.get("/exports/").content  # the only dataset
    DatasetFactory(slug="other")
    unknown = client.get("/exports/", {"dataset": "nowhere"}).content  # two datasets, none named: nothing chosen
    assert b'<option value="" selected>' in unknown and b'value="demo" selected' not in unknown
    assert b'<option value="other" selected>' in client.get("/exports/", {"dataset": "other"}).content
    detail = client.get("/datasets/other/").content
    assert b'href="/exports/?dataset=other"' in detail


def test_progress_partial_polls_only_while_an_export_is_active(scene, admin_user, client):
    client.force_login(admin_user)
    snapshot = services.export_create(dataset=scene.dataset, export_format="parquet")
    partial = client.get("/exports/", HTTP_HX_REQUEST="true")
    assert b'hx-trigger="every 2s"' in partial.content and b"<html" not in partial.content
    runs.export_run(snapshot_id=snapshot.pk)
    assert b'hx-trigger="every 2s"' not in client.get("/exports/", HTTP_HX_REQUEST="true").content


def test_page_form_errors_are_shown_and_nothing_is_created(scene, admin_user, client):
    client.force_login(admin_user)
    response = client.post("/exports/start/", {"dataset": "demo", "format": "coco", "min_agreement": "7", "images": "none",
                                               "date_field": "image"})
    assert response.status_code == 400 and not ExportSnapshot.objects.exists()


def test_page_checkbox_includes_auto_accepted_items_and_url_mode_errors_are_shown(scene, admin_user, client,
                                                                                 django_capture_on_commit_callbacks):
    add_auto_accepted(scene.dataset)
    client.force_login(admin_user)
    form = {"dataset": "demo", "format": "emoverse-jsonl", "status": ["approved"], "date_field": "image", "images": "none"}
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/exports/start/", {**form, "include_auto_accepted": "on"}).status_code == 302
    snapshot = ExportSnapshot.objects.get()
    assert snapshot.filters["include_auto_accepted"] is True and snapshot.manifest["counts"]["machine_accepted"] == 1
    assert b"machine-accepted" in client.get("/exports/").content
    response = client.post("/exports/start/", {**form, "images": "url"})
    assert response.status_code == 400 and b"images=url needs a storage that serves public URLs" in response.content
    assert ExportSnapshot.objects.count() == 1
