"""Parquet export: schema and values through pyarrow, pandas and HuggingFace datasets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset as HFDataset
from datasets import List, Value

from annotations.selectors import image_final_annotation
from core.vocabulary import EMOTIONS, ROLES
from exports import runs, selectors, services
from exports.filters import ExportFilters
from exports.writers import ExportItem
from exports.writers import parquet as parquet_writer
from tests.exports.export_scenes import build_scene, fast_passwords  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def exported(tmp_path, monkeypatch, settings):
    monkeypatch.setattr(runs, "CHUNK_SIZE", 1)  # a chunk per candidate image
    monkeypatch.setattr(parquet_writer, "ROW_GROUP_CHUNKS", 2)  # a row group per two chunks
    settings.MEDIA_URL = "https://cdn.example.org/media/"  # a public media URL, so images=url is allowed
    scene = build_scene()
    snapshot = services.export_create(dataset=scene.dataset, export_format="parquet", options={"images": "url"})
    snapshot = runs.export_run(snapshot_id=snapshot.pk)
    return scene, selectors.final_dir(snapshot) / "data.parquet"


def test_schema_row_groups_and_metadata(exported):
    _, path = exported
    schema = pq.read_schema(path)
    assert schema.remove_metadata() == parquet_writer.SCHEMA
    assert schema.field("des").type == pa.list_(pa.float32(), 1024)
    triplet = schema.field("triplets").type.value_type
    assert [triplet.field(i).name for i in range(triplet.num_fields)] == ["key", *ROLES]
    assert json.loads(schema.metadata[b"emoverse"])["dataset"] == "demo"
    meta = pq.ParquetFile(path).metadata
    # 4 approved candidates, one chunk each; the model-only one is skipped (an empty chunk, no rows):
    # the first two chunks make one row group, the third is written at close.
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [2, 1]


def test_values_match_the_final_annotations(exported):
    scene, path = exported
    rows = {row["image_id"]: row for row in pq.read_table(path).to_pylist()}
    assert set(rows) == {scene.imported.pk, scene.reviewed.pk, scene.adjudicated.pk}
    row, final = rows[scene.reviewed.pk], image_final_annotation(image=scene.reviewed)
    assert (row["source"], row["width"], row["height"], row["ces_label"]) == ("flickr30k", 80, 60, "awe")
    assert row["image"] == scene.reviewed.original_name
    assert row["image_url"] == f"https://cdn.example.org/media/{scene.reviewed.file.name}"
    assert row["ces_distribution"] == final.ces_distribution and row["ces_confidence"] == final.ces_confidence
    assert np.array_equal(np.asarray(row["des"], dtype="<f4"), np.frombuffer(bytes(final.des), dtype="<f4"))
    triplet = row["triplets"][0]
    element = final.triplets.all()[0].elements.get(role="subject")
    assert triplet["key"] == str(final.triplets.all()[0].key)
    assert triplet["subject"]["phrase"] == "a lighthouse" and triplet["subject"]["box"] == element.box
    assert triplet["subject"]["mask_counts"] == element.mask_counts and triplet["subject"]["mask_size"] == [60, 80]
    assert triplet["attribute"]["box"] is None and triplet["attribute"]["mask_counts"] is None
    assert row["annotator"] == {"kind": "human", "name": "alice", "prompt_version": None}
    assert rows[scene.adjudicated.pk]["des"] is None and rows[scene.adjudicated.pk]["ces_label"] == "sadness"


def test_pandas_reads_it(exported):
    scene, path = exported
    frame = pd.read_parquet(path).set_index("image_id")
    assert list(frame.loc[[scene.imported.pk, scene.reviewed.pk], "ces_label"]) == ["fear", "awe"]
    des = frame.loc[scene.imported.pk, "des"]
    assert des.dtype == np.float32 and des.shape == (1024,)
    assert frame.loc[scene.reviewed.pk, "ces_distribution"]["awe"] == pytest.approx(0.72)
    assert frame.loc[scene.reviewed.pk, "triplets"][0]["subject"]["phrase"] == "a lighthouse"


def test_huggingface_datasets_reads_it(exported, tmp_path):
    scene, path = exported
    data = HFDataset.from_parquet(str(path), cache_dir=str(tmp_path / "hf-cache"))
    assert data.num_rows == 3 and set(data.column_names) == set(parquet_writer.SCHEMA.names)
    row = next(r for r in data if r["image_id"] == scene.imported.pk)
    assert len(row["des"]) == 1024 and row["ces_label"] == "fear"
    assert set(row["ces_distribution"]) == set(EMOTIONS)
    assert row["triplets"][0]["background"]["phrase"] == "stormy sea"
    assert data.features["des"] == List(Value("float32"), length=1024)
    index = list(data["image_id"]).index(scene.imported.pk)
    des = data.with_format("numpy")[index]["des"]
    assert des.dtype == np.float32 and des.shape == (1024,)
    assert np.array_equal(des, np.frombuffer(bytes(image_final_annotation(image=scene.imported).des), dtype="<f4"))


def test_a_chunk_kept_for_a_later_row_group_outlives_the_shared_memory_it_came_in(tmp_path, monkeypatch):
    """A worker's chunk arrives as a view of a shared-memory slot that the next chunk overwrites."""
    monkeypatch.setattr(parquet_writer, "ROW_GROUP_CHUNKS", 2)
    scene = build_scene()
    rows = selectors.export_image_rows(selectors.export_images(dataset=scene.dataset, filters=ExportFilters()), chunk_size=100)
    images = [image for chunk in rows for image in chunk]
    finals, _ = selectors.export_chunk([image.id for image in images], include_auto_accepted=False)
    items = [ExportItem(image=i, annotation=finals[i.id], file_name=i.original_name) for i in images if i.id in finals]
    writer = parquet_writer.ParquetWriter(tmp_path, {}, context={"dataset": "demo", "version": 1})
    slot = bytearray(2**20)
    for item in items:  # one chunk per image: kept, written with the next, kept, written at close
        encoded = writer.encode([item])
        slot[:len(encoded)] = encoded
        view = memoryview(slot)[:len(encoded)]
        writer.append(view)
        view.release()  # BufferError if the writer still read from the slot
        slot[:] = bytes(len(slot))
    writer.close()
    meta = pq.ParquetFile(tmp_path / "data.parquet").metadata
    assert len(items) == 3 and [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [2, 1]
    expected = parquet_writer.chunk_table(items, include_rejected=False)
    assert pq.read_table(tmp_path / "data.parquet").replace_schema_metadata(None).equals(expected)
