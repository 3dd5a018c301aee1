"""The PostgreSQL fast path (plain binary SQL, chunks encoded in forked workers, files hashed while
written) writes exactly what the Django path writes, for every format, option and filter."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.conf import settings

from annotations.models import AnnotationKind, Decision, ImageSource, ImageStatus
from exports import runs, services
from exports.chunks import ChunkPool
from tests.exports.export_scenes import add_auto_accepted, build_scene, fast_passwords, payload  # noqa: F401 - autouse fixture
from tests.exports.test_export_rejected import reviewed_with_rejections
from tests.factories import ImageFactory, make_annotation

pytestmark = pytest.mark.django_db(transaction=True)  # forked workers read committed rows only


@pytest.fixture
def dataset(on_postgres):
    scene = build_scene("fast")
    add_auto_accepted(scene.dataset)
    reviewed_with_rejections(scene.dataset)
    for k in range(7):  # more chunks than workers; names shared by two images; no DES, no label
        image = ImageFactory(dataset=scene.dataset, source=ImageSource.WEB, original_name=f"same/{k % 3}.png")
        data = payload(image, label=("awe", "fear")[k % 2], des_seed=10 + k if k % 3 else None,
                       subject_phrase=f"bateau «{k}» 🚤", with_mask=k % 2 == 0)
        if k == 5:
            data.pop("ces")
        make_annotation(image, kind=AnnotationKind.IMPORT, author_name="import", decision=Decision.APPROVED, payload=data)
        image.status = ImageStatus.APPROVED
        image.save(update_fields=["status"])
    return scene.dataset


def export(dataset, export_format, *, fast: bool, filters=None, options=None) -> dict:
    with pytest.MonkeyPatch.context() as patch, _settings(fast):
        patch.setattr(runs, "CHUNK_SIZE", 2)
        patch.setattr(ChunkPool, "SHARED_MIN", 1)  # the encoded chunks come back through shared memory
        snapshot = services.export_create(dataset=dataset, export_format=export_format, filters=filters, options=options)
        snapshot = runs.export_run(snapshot_id=snapshot.pk)
    assert snapshot.status == "complete", snapshot.error
    folder = Path(settings.EXPORT_ROOT) / snapshot.path
    for entry in snapshot.manifest["files"]:  # checksums hashed while written match the files
        assert hashlib.sha256((folder / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    return {"manifest": snapshot.manifest, "folder": folder}


def _settings(fast: bool):
    from django.test import override_settings

    return override_settings(EMOVERSE_EXPORT_FAST_PATH=fast, EMOVERSE_EXPORT_WORKERS=2 if fast else 0,
                             EMOVERSE_EXPORT_PARALLEL_MIN=0)


def content(result: dict, export_format: str):
    folder = result["folder"]
    if export_format == "emoverse-jsonl":
        return (folder / "data.jsonl").read_bytes()  # byte for byte
    if export_format == "coco":
        data = json.loads((folder / "annotations.json").read_text())
        data["info"].pop("date_created")
        data["info"].pop("version")
        return data
    table = pq.read_table(folder / "data.parquet")
    return table.replace_schema_metadata(None), pq.ParquetFile(folder / "data.parquet").num_row_groups


CASES = [
    ("emoverse-jsonl", None, None),
    ("emoverse-jsonl", {"include_auto_accepted": True, "status": ["approved", "in_review"]}, None),
    ("emoverse-jsonl", {"label": ["fear"], "date_field": "annotation", "since": "2000-01-01"}, None),
    ("coco", None, None),
    ("coco", {"include_auto_accepted": True}, {"categories": "role", "include_rejected": True}),
    ("parquet", None, None),
    ("parquet", {"status": ["approved", "in_review"]}, {"include_rejected": True}),
]


@pytest.mark.parametrize(("export_format", "filters", "options"), CASES)
def test_the_fast_path_writes_what_the_django_path_writes(dataset, export_format, filters, options):
    reference = export(dataset, export_format, fast=False, filters=filters, options=options)
    fast = export(dataset, export_format, fast=True, filters=filters, options=options)
    assert reference["manifest"]["counts"]["images"] > 0
    if export_format == "parquet":
        (table, groups), (fast_table, fast_groups) = content(reference, export_format), content(fast, export_format)
        assert fast_table.equals(table) and fast_groups == groups
    else:
        assert content(fast, export_format) == content(reference, export_format)
    for key in ("counts", "left_out", "filters", "options", "taxonomy", "final_annotation"):
        assert fast["manifest"][key] == reference["manifest"][key]
    assert [(f["path"], f["bytes"]) for f in fast["manifest"]["files"]] == \
        [(f["path"], f["bytes"]) for f in reference["manifest"]["files"]]
    if export_format == "emoverse-jsonl":  # COCO's header and Parquet's metadata name the snapshot
        assert [f["sha256"] for f in fast["manifest"]["files"]] == [f["sha256"] for f in reference["manifest"]["files"]]
