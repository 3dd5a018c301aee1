"""EmoVerse JSONL export: the import format, round trip through the real import command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import orjson
import pytest
from django.core.management import call_command

from annotations.models import Dataset, ImageStatus
from annotations.selectors import annotation_to_dict, image_final_annotation
from exports import runs, selectors, services
from exports.writers.jsonl import des_json_rows
from tests.exports.export_scenes import build_scene, fast_passwords  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.django_db


def export(tmp_path: Path, slug: str, name: str) -> Path:
    out = tmp_path / name
    call_command("export_dataset", "--dataset", slug, "--format", "emoverse-jsonl", "--out", str(out), "--images", "copy")
    return out


def read_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "data.jsonl").read_text(encoding="utf-8").splitlines()]


def test_import_of_an_export_reproduces_the_same_annotations(tmp_path):
    scene = build_scene()
    first = export(tmp_path, "demo", "first")
    call_command("import_emoverse", str(first / "data.jsonl"), "--images-dir", str(first / "images"),
                 "--dataset", "copy", "--approved")

    copy = Dataset.objects.get(slug="copy")
    originals = {image.original_name: image for image in scene.dataset.images.all()}
    imported = list(copy.images.all())
    assert {image.original_name for image in imported} == {
        scene.imported.original_name, scene.reviewed.original_name, scene.adjudicated.original_name
    }
    for image in imported:
        assert image.status == ImageStatus.APPROVED
        source = originals[image.original_name]
        assert (image.width, image.height, image.source) == (source.width, source.height, source.source)
        before, after = image_final_annotation(image=source), image_final_annotation(image=image)
        assert annotation_to_dict(after) | {"annotator": None} == annotation_to_dict(before) | {"annotator": None}
        assert (bytes(after.des) if after.des is not None else None) == (bytes(before.des) if before.des is not None else None)

    # Exporting the copy gives the same file, line for line (annotators included).
    second = export(tmp_path, "copy", "second")
    assert read_lines(second) == read_lines(first)


def test_lines_carry_every_field_of_the_import_format():
    scene = build_scene()
    snapshot = services.export_create(dataset=scene.dataset, export_format="emoverse-jsonl")
    snapshot = runs.export_run(snapshot_id=snapshot.pk)
    folder = selectors.final_dir(snapshot)
    by_name = {line["image"]: line for line in read_lines(folder)}
    line = by_name[scene.reviewed.original_name]
    assert set(line) == {"image", "source", "width", "height", "triplets", "ces", "des", "rationale", "annotator"}
    assert (line["source"], line["width"], line["height"]) == ("flickr30k", 80, 60)
    final = image_final_annotation(image=scene.reviewed)
    assert line["triplets"] == annotation_to_dict(final)["triplets"]
    assert line["triplets"][0]["subject"]["mask"]["size"] == [60, 80]
    assert np.array_equal(np.asarray(line["des"], dtype="<f4"), np.frombuffer(bytes(final.des), dtype="<f4"))
    assert "des" not in by_name[scene.adjudicated.original_name]  # no DES: no key


def test_des_text_is_short_and_reads_back_to_the_same_float32():
    rng = np.random.default_rng(7)
    vectors = [rng.standard_normal(1024).astype("<f4") * scale for scale in (1e-8, 1.0, 3e4)]
    vectors.append(np.zeros(1024, dtype="<f4"))
    texts = des_json_rows([v.tobytes() for v in vectors[:2]] + [None] + [v.tobytes() for v in vectors[2:]])
    assert texts[2] is None
    for vector, text in zip(vectors, texts[:2] + texts[3:]):
        assert np.array_equal(np.asarray(json.loads(b"[%b]" % text), dtype="<f4"), vector)
    assert len(texts[1]) < 1024 * 13


def test_des_text_of_a_chunk_is_each_vector_formatted_alone():
    """The chunk's matrix in one call gives each row's own text; a vector of another length too."""
    rng = np.random.default_rng(3)
    vectors = [rng.standard_normal(n).astype("<f4") for n in (1024, 1024, 4, 1024)]
    blobs = [None, *(v.tobytes() for v in vectors), None]
    alone = [None, *(orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1] for v in vectors), None]
    assert des_json_rows(blobs) == alone
    same = [b for b in blobs if b is None or len(b) == 4096]
    assert des_json_rows(same) == [a for a in alone if a is None or a.count(b",") == 1023]
    assert des_json_rows([vectors[0].tobytes()]) == [alone[1]]
    assert des_json_rows([None]) == [None]
