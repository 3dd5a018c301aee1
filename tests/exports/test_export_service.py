"""Export service: which items, which annotation, filters, manifest, and crash safety."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.conf import settings
from django.utils import timezone
from storages.backends.s3 import S3Storage

from annotations.domain import PIPELINE_AUTHOR
from annotations.errors import NotAllowed
from annotations.models import Annotation, AnnotationKind, Decision, Image
from annotations.selectors import image_final_annotation
from exports import runs, selectors, services
from exports.filters import InvalidExportRequest
from exports.manifest import FINAL_RULE, FINAL_RULE_AUTO
from exports.models import ExportSnapshot, ExportStatus
from exports.writers.images import export_file_name, url_mode_problem
from exports.writers.jsonl import JsonlWriter
from tests.exports.export_scenes import add_auto_accepted, build_scene, fast_passwords  # noqa: F401 - autouse fixture
from tests.factories import make_annotation

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene():
    return build_scene()


def run(dataset, export_format="emoverse-jsonl", filters=None, options=None, user=None) -> ExportSnapshot:
    snapshot = services.export_create(dataset=dataset, export_format=export_format, filters=filters, options=options, created_by=user)
    return runs.export_run(snapshot_id=snapshot.pk)


def lines(snapshot) -> list[dict]:
    path = Path(settings.EXPORT_ROOT) / snapshot.path / "data.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def exported_ids(snapshot) -> set[str]:
    return {line["image"] for line in lines(snapshot)}


def test_default_export_takes_approved_items_with_a_final_annotation(scene):
    snapshot = run(scene.dataset)
    assert snapshot.status == ExportStatus.COMPLETE
    assert exported_ids(snapshot) == {scene.imported.original_name, scene.reviewed.original_name, scene.adjudicated.original_name}
    counts = snapshot.manifest["counts"]
    assert counts["images"] == 3
    assert counts["skipped_without_final"] == 1  # the approved model-only image
    assert counts["by_label"] == {"awe": 1, "fear": 1, "sadness": 1}
    assert counts["by_source"] == {"emoset": 2, "flickr30k": 1}
    assert (snapshot.total, snapshot.done) == (4, 4)


def test_model_only_items_are_never_exported_even_when_their_status_says_approved(scene):
    snapshot = run(scene.dataset, filters={"status": ["approved", "in_review"]})
    names = exported_ids(snapshot)
    assert scene.model_only.original_name not in names
    assert scene.in_review.original_name not in names
    # a review of an image still in review is not final (and not shown while others may review it)
    assert scene.reviewed_in_review.original_name not in names
    assert snapshot.manifest["counts"]["skipped_in_review"] == 1


def test_adjudication_wins_over_approved_human_versions(scene):
    by_name = {line["image"]: line for line in lines(run(scene.dataset))}
    line = by_name[scene.adjudicated.original_name]
    assert line["ces"]["label"] == "sadness"
    assert line["annotator"] == {"kind": "human", "name": "carol"}
    assert by_name[scene.reviewed.original_name]["annotator"] == {"kind": "human", "name": "alice"}


def test_batched_final_annotations_follow_the_single_image_rule(scene):
    images = list(Image.objects.filter(dataset=scene.dataset))
    batched = selectors.final_annotations(image.pk for image in images)
    for image in images:
        single = image_final_annotation(image=image)
        assert (batched[image.pk].pk if image.pk in batched else None) == (single.pk if single else None)


# --- auto-accepted model answers: machine-accepted, exported only on request ----------------


def test_an_auto_accepted_model_answer_is_not_exported_by_default(scene):
    auto = add_auto_accepted(scene.dataset)
    snapshot = run(scene.dataset)
    assert auto.original_name not in exported_ids(snapshot) and len(exported_ids(snapshot)) == 3
    counts = snapshot.manifest["counts"]
    assert (counts["skipped_auto_accepted"], counts["skipped_without_final"], counts["machine_accepted"]) == (1, 1, 0)
    assert snapshot.manifest["filters"]["include_auto_accepted"] is False
    assert snapshot.manifest["final_annotation"] == FINAL_RULE
    assert auto.pk not in selectors.final_annotations([auto.pk])


def test_the_option_exports_auto_accepted_answers_labelled_machine_accepted(scene):
    auto = add_auto_accepted(scene.dataset)
    snapshot = run(scene.dataset, filters={"include_auto_accepted": True})
    by_name = {line["image"]: line for line in lines(snapshot)}
    assert set(by_name) == {scene.imported.original_name, scene.reviewed.original_name,
                            scene.adjudicated.original_name, auto.original_name}
    assert by_name[auto.original_name]["annotator"]["kind"] == "model"
    assert by_name[auto.original_name]["annotator"]["name"] == PIPELINE_AUTHOR
    assert scene.model_only.original_name not in by_name  # an annotator's own answer is never final
    counts = snapshot.manifest["counts"]
    assert (counts["images"], counts["machine_accepted"], counts["skipped_auto_accepted"]) == (4, 1, 0)
    assert snapshot.manifest["filters"]["include_auto_accepted"] is True
    assert snapshot.manifest["final_annotation"] == FINAL_RULE_AUTO and "not human-approved" in FINAL_RULE_AUTO


@pytest.mark.parametrize("decision", [Decision.REJECTED, Decision.APPROVED])
def test_a_human_review_overrules_an_auto_accepted_answer_even_with_the_option(scene, decision):
    auto = add_auto_accepted(scene.dataset, label="awe")
    human = make_annotation(auto, kind=AnnotationKind.HUMAN, author_name="alice", decision=decision,
                            payload_kwargs={"label": "fear"})
    snapshot = run(scene.dataset, filters={"include_auto_accepted": True})
    by_name = {line["image"]: line for line in lines(snapshot)}
    assert snapshot.manifest["counts"]["machine_accepted"] == 0
    if decision == Decision.REJECTED:
        assert auto.original_name not in by_name
    else:
        assert by_name[auto.original_name]["annotator"] == {"kind": "human", "name": "alice"}
        assert by_name[auto.original_name]["ces"]["label"] == "fear"
        assert selectors.final_annotations([auto.pk], include_auto_accepted=True)[auto.pk].pk == human.pk


@pytest.mark.parametrize("value", ["yes please", 2, ["true"]])
def test_include_auto_accepted_must_be_a_boolean(scene, value):
    with pytest.raises(InvalidExportRequest) as info:
        services.export_create(dataset=scene.dataset, export_format="coco", filters={"include_auto_accepted": value})
    assert info.value.field == "include_auto_accepted"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"source": ["flickr30k"]}, {"reviewed"}),
        ({"label": ["fear", "sadness"]}, {"imported", "adjudicated"}),
        ({"min_agreement": 0.3}, {"imported", "reviewed"}),
        ({"status": "in_review"}, set()),  # its review is not final while the image is in review
    ],
)
def test_filters(scene, filters, expected):
    names = {getattr(scene, name).original_name for name in expected}
    assert exported_ids(run(scene.dataset, filters=filters)) == names


def test_label_filter_checks_the_final_annotation_not_only_the_image_row(scene):
    Image.objects.filter(pk=scene.adjudicated.pk).update(label="fear")  # a stale denormalised label
    snapshot = run(scene.dataset, filters={"label": ["fear"]})
    assert exported_ids(snapshot) == {scene.imported.original_name}
    assert snapshot.manifest["counts"]["skipped_by_filter"] == 1


def test_date_range_on_image_creation_and_on_the_final_annotation(scene):
    old = timezone.now() - timedelta(days=30)
    Image.objects.filter(pk=scene.reviewed.pk).update(created_at=old)
    recent = {"since": (timezone.now() - timedelta(days=1)).isoformat()}
    assert scene.reviewed.original_name not in exported_ids(run(scene.dataset, filters=recent))
    assert exported_ids(run(scene.dataset, filters={"until": (old + timedelta(days=1)).date().isoformat()})) == {
        scene.reviewed.original_name
    }
    final = image_final_annotation(image=scene.imported)
    Annotation.objects.filter(pk=final.pk).update(created_at=old)
    by_annotation = {**recent, "date_field": "annotation"}
    names = exported_ids(run(scene.dataset, filters=by_annotation))
    assert scene.imported.original_name not in names and scene.reviewed.original_name in names


@pytest.mark.parametrize(
    ("export_format", "filters", "options", "field"),
    [
        ("emoverse-jsonl", {"label": ["joy"]}, {}, "label"),
        ("emoverse-jsonl", {"colour": "red"}, {}, "filters"),
        ("emoverse-jsonl", {"since": "last tuesday"}, {}, "since"),
        ("emoverse-jsonl", {"since": "2026-02-01", "until": "2026-01-01"}, {}, "until"),
        ("emoverse-jsonl", {"min_agreement": 2}, {}, "min_agreement"),
        ("emoverse-jsonl", {}, {"categories": "role"}, "options"),
        ("coco", {}, {"categories": "colour"}, "categories"),
        ("coco", {}, {"images": "ftp"}, "images"),
        ("tfrecord", {}, {}, "format"),
    ],
)
def test_bad_requests_are_refused_with_the_field_and_create_nothing(scene, export_format, filters, options, field):
    with pytest.raises(InvalidExportRequest) as info:
        services.export_create(dataset=scene.dataset, export_format=export_format, filters=filters, options=options)
    assert info.value.field == field
    assert not ExportSnapshot.objects.exists()


def test_manifest_is_written_last_and_its_checksums_match_the_files(scene, admin_user):
    snapshot = run(scene.dataset, "coco", options={"images": "copy"}, user=admin_user)
    folder = Path(settings.EXPORT_ROOT) / snapshot.path
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest == snapshot.manifest
    assert manifest["format"] == "coco" and manifest["created_by"]["username"] == admin_user.username
    assert manifest["filters"]["status"] == ["approved"] and manifest["app_version"]["libraries"]["pycocotools"]
    listed = {entry["path"] for entry in manifest["files"]}
    assert listed == {"annotations.json", "images.sha256"}
    for entry in manifest["files"]:
        data = (folder / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    # images.sha256 covers every copied image, so the manifest covers them transitively.
    for line in (folder / "images.sha256").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert len((folder / "images.sha256").read_text().splitlines()) == 3
    assert [p.name for p in folder.parent.iterdir() if p.name.endswith(".partial")] == []


def test_every_export_is_a_new_version_and_old_ones_stay(scene):
    first, second = run(scene.dataset), run(scene.dataset, "parquet")
    assert (first.version, second.version) == (1, 2)
    assert (Path(settings.EXPORT_ROOT) / first.path / "manifest.json").exists()
    assert (Path(settings.EXPORT_ROOT) / second.path / "data.parquet").exists()


class WorkerKilled(BaseException):
    """Stands for SIGKILL: no ``except Exception`` runs, nothing is cleaned up."""


def _die_on_second_chunk(monkeypatch):
    monkeypatch.setattr(runs, "CHUNK_SIZE", 1)
    original = JsonlWriter.append
    calls = {"n": 0}

    def append(self, encoded):
        calls["n"] += 1
        if calls["n"] == 2:
            raise WorkerKilled()
        original(self, encoded)

    monkeypatch.setattr(JsonlWriter, "append", append)


def test_an_export_killed_midway_is_never_complete_and_restarts_cleanly(scene, monkeypatch):
    _die_on_second_chunk(monkeypatch)
    snapshot = services.export_create(dataset=scene.dataset, export_format="emoverse-jsonl")
    with pytest.raises(WorkerKilled):
        runs.export_run(snapshot_id=snapshot.pk)
    snapshot.refresh_from_db()
    root = Path(settings.EXPORT_ROOT) / scene.dataset.slug
    assert snapshot.status == ExportStatus.RUNNING and snapshot.manifest is None and snapshot.done == 1
    assert not (Path(settings.EXPORT_ROOT) / snapshot.path).exists()
    assert not ExportSnapshot.objects.filter(status=ExportStatus.COMPLETE).exists()

    # Not stale yet: shown as running. After the timeout: failed, interrupted, leftovers removed.
    assert services.export_fail_stale() == 0
    assert services.export_fail_stale(now=timezone.now() + selectors.stale_after() + timedelta(seconds=1)) == 1
    snapshot.refresh_from_db()
    assert snapshot.status == ExportStatus.FAILED and snapshot.error.startswith("Interrupted")
    assert list(root.iterdir()) == []

    monkeypatch.undo()
    services.export_restart(snapshot=snapshot)
    snapshot = runs.export_run(snapshot_id=snapshot.pk)
    assert snapshot.status == ExportStatus.COMPLETE and snapshot.manifest["counts"]["images"] == 3
    assert [p.name for p in root.iterdir()] == [Path(snapshot.path).name]


def test_a_killed_export_closes_its_cursor_at_once(scene, monkeypatch, on_postgres):
    """The image rows' server-side cursor is closed when the export stops, however it stops, and
    not later by the garbage collector, which may run inside another transaction and abort it with
    a CLOSE of a cursor that no longer exists."""
    _die_on_second_chunk(monkeypatch)
    snapshot = services.export_create(dataset=scene.dataset, export_format="emoverse-jsonl")
    with pytest.raises(WorkerKilled) as killed:  # its traceback keeps the export's frames alive
        runs.export_run(snapshot_id=snapshot.pk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_cursors WHERE name LIKE 'export_images_%%'")
        assert cursor.fetchall() == []
    assert killed.value is not None


def test_a_task_delivered_again_takes_over_a_running_snapshot(scene, monkeypatch):
    _die_on_second_chunk(monkeypatch)
    snapshot = services.export_create(dataset=scene.dataset, export_format="emoverse-jsonl")
    with pytest.raises(WorkerKilled):
        runs.export_run(snapshot_id=snapshot.pk)
    monkeypatch.undo()
    snapshot = runs.export_run(snapshot_id=snapshot.pk)  # the same task, delivered again
    assert snapshot.status == ExportStatus.COMPLETE
    root = Path(settings.EXPORT_ROOT) / scene.dataset.slug
    assert [p.name for p in root.iterdir()] == [Path(snapshot.path).name]  # the dead attempt's folder is gone


def test_staleness_reads_the_database_heartbeat_not_the_export_folder(scene, monkeypatch):
    """A worker on another machine: the web process sees no folder, only the row's heartbeat."""
    snapshot = services.export_create(dataset=scene.dataset, export_format="emoverse-jsonl")
    attempt = runs._claim(snapshot.pk)
    shutil.rmtree(attempt.folder)  # what the web process sees of a worker's local folder: nothing
    snapshot.refresh_from_db()
    assert snapshot.heartbeat_at is not None and abs(snapshot.heartbeat_at - snapshot.started_at) < timedelta(seconds=60)
    long_ago = timezone.now() - selectors.stale_after() - timedelta(minutes=5)
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(heartbeat_at=long_ago)
    assert selectors.snapshot_is_stale(ExportSnapshot.objects.get(pk=snapshot.pk))

    runs._progress(attempt, done=1)  # the worker reports progress
    snapshot.refresh_from_db()
    assert snapshot.done == 1 and snapshot.heartbeat_at > long_ago + timedelta(minutes=5)
    assert not selectors.snapshot_is_stale(snapshot)
    assert services.export_fail_stale() == 0
    assert selectors.snapshot_is_stale(snapshot, now=snapshot.heartbeat_at + selectors.stale_after() + timedelta(seconds=1))

    # Within a long chunk, the keep-alive writes the heartbeat at most every KEEPALIVE_SECONDS.
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(heartbeat_at=long_ago)
    runs._keep_alive(attempt)
    assert ExportSnapshot.objects.get(pk=snapshot.pk).heartbeat_at == long_ago
    monkeypatch.setattr(runs, "KEEPALIVE_SECONDS", 0.0)
    runs._keep_alive(attempt)
    assert ExportSnapshot.objects.get(pk=snapshot.pk).heartbeat_at > long_ago + timedelta(minutes=5)


def test_an_older_attempt_stops_when_a_newer_one_owns_the_snapshot(scene):
    snapshot = services.export_create(dataset=scene.dataset, export_format="emoverse-jsonl")
    old = runs._claim(snapshot.pk)
    newer = runs.export_run(snapshot_id=snapshot.pk)
    assert newer.status == ExportStatus.COMPLETE
    with pytest.raises(runs.Superseded):
        runs._progress(old, done=1)
    assert ExportSnapshot.objects.get(pk=snapshot.pk).status == ExportStatus.COMPLETE


def test_an_error_fails_the_snapshot_with_the_reason_and_leaves_no_files(scene, monkeypatch):
    def broken(self, encoded):
        raise OSError("disk full")

    monkeypatch.setattr(JsonlWriter, "append", broken)
    snapshot = run(scene.dataset)
    assert snapshot.status == ExportStatus.FAILED and "disk full" in snapshot.error
    assert list((Path(settings.EXPORT_ROOT) / scene.dataset.slug).iterdir()) == []
    assert runs.export_run(snapshot_id=snapshot.pk) is None  # a failed snapshot is not rerun by a stray task


def test_complete_or_running_snapshots_cannot_be_restarted(scene):
    snapshot = run(scene.dataset)
    with pytest.raises(NotAllowed):
        services.export_restart(snapshot=snapshot)
    running = services.export_create(dataset=scene.dataset, export_format="parquet")
    runs._claim(running.pk)
    running.refresh_from_db()
    with pytest.raises(NotAllowed):
        services.export_restart(snapshot=running)


def test_images_can_be_copied_linked_or_referenced(scene):
    copied = run(scene.dataset, options={"images": "copy"})
    folder = Path(settings.EXPORT_ROOT) / copied.path
    for line in lines(copied):
        data = (folder / "images" / line["image"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == line["sha256"]
    linked = run(scene.dataset, options={"images": "link"})
    image = Image.objects.get(pk=scene.reviewed.pk)
    target = Path(settings.EXPORT_ROOT) / linked.path / "images" / scene.reviewed.original_name
    assert target.stat().st_ino == Path(image.file.path).stat().st_ino


@pytest.mark.parametrize(
    ("original_name", "expected"),
    [
        ("photos/cat.png", "photos/cat.png"),
        ("photos\\cat.png", "photos/cat.png"),
        ("./photos//cat.png", "photos/cat.png"),
        ("../../etc/cat.png", "{pk}.png"),
        ("/abs/cat.png", "{pk}.png"),
        ("C:\\pics\\cat.png", "{pk}.png"),
        ("same.png", "same__{pk}.png"),
    ],
)
def test_exported_image_names_are_safe_relative_paths_and_unique(original_name, expected):
    image = Image(pk=7, original_name=original_name, file="images/cat-0123.png")
    assert export_file_name(image, {"same.png"}) == expected.format(pk=7)


def test_images_with_the_same_import_name_get_distinct_files(scene):
    Image.objects.filter(pk__in=[scene.imported.pk, scene.reviewed.pk]).update(original_name="dup/photo.png")
    snapshot = run(scene.dataset, options={"images": "copy"})
    names = sorted(line["image"] for line in lines(snapshot))
    assert names == sorted([f"dup/photo__{scene.imported.pk}.png", f"dup/photo__{scene.reviewed.pk}.png",
                            scene.adjudicated.original_name])
    for name in names:
        assert (Path(settings.EXPORT_ROOT) / snapshot.path / "images" / name).is_file()


def test_images_by_url_are_refused_on_local_storage(scene):
    with pytest.raises(InvalidExportRequest) as info:
        services.export_create(dataset=scene.dataset, export_format="parquet", options={"images": "url"})
    assert info.value.field == "images"
    assert "images=url needs a storage that serves public URLs" in str(info.value) and "use copy or link" in str(info.value)
    assert not ExportSnapshot.objects.exists()


def test_images_by_url_with_a_public_media_url(scene, settings):
    settings.MEDIA_URL = "https://cdn.example.org/media/"
    snapshot = run(scene.dataset, "coco", options={"images": "url"})
    assert snapshot.status == ExportStatus.COMPLETE
    folder = Path(settings.EXPORT_ROOT) / snapshot.path
    assert not (folder / "images").exists()
    image = Image.objects.get(pk=scene.reviewed.pk)
    by_id = {entry["id"]: entry for entry in json.loads((folder / "annotations.json").read_text())["images"]}
    assert by_id[image.pk]["coco_url"] == f"https://cdn.example.org/media/{image.file.name}"


def test_signed_object_storage_urls_are_refused_public_ones_allowed():
    assert "signed URLs expire" in url_mode_problem(S3Storage(bucket_name="emoverse", querystring_auth=True))
    assert url_mode_problem(S3Storage(bucket_name="emoverse", querystring_auth=False)) is None
    assert url_mode_problem(S3Storage(bucket_name="emoverse", querystring_auth=True, custom_domain="cdn.example.org")) is None


@pytest.mark.parametrize(("env", "refused"), [
    ({}, True),
    ({"AWS_QUERYSTRING_AUTH": "false"}, False),
    ({"AWS_S3_CUSTOM_DOMAIN": "cdn.example.org"}, False),
])
def test_object_storage_url_signing_follows_the_environment(env, refused):
    """The settings read AWS_QUERYSTRING_AUTH / AWS_S3_CUSTOM_DOMAIN, and images=url follows them."""
    import os
    import subprocess
    import sys

    code = ("import django; django.setup(); "
            "from exports.writers.images import image_storage, url_mode_problem; "
            "s = image_storage(); print(s.__class__.__name__, url_mode_problem(s) is not None)")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ.update({"DJANGO_SETTINGS_MODULE": "emoverse_site.settings", "AWS_STORAGE_BUCKET_NAME": "emoverse", **env})
    out = subprocess.run([sys.executable, "-c", code], env=environ, cwd=settings.BASE_DIR,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["S3Storage", str(refused)]
