"""Exports of an Ekman dataset list Ekman's six labels: COCO categories, the Parquet
distribution struct, the JSONL lines and the manifest (docs/taxonomies.md, docs/export.md)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from annotations.models import AnnotationKind, Decision
from core.vocabulary import EKMAN
from exports import runs, selectors, services
from exports.filters import InvalidExportRequest
from tests.exports.export_scenes import approve, fast_passwords  # noqa: F401 - autouse fixture
from tests.factories import DatasetFactory, ImageFactory, annotation_payload, make_annotation

pytestmark = pytest.mark.django_db

LABELS = ["happiness", "surprise", "fear"]


def six_way(label: str) -> dict[str, float]:
    return {e: (0.75 if e == label else 0.05) for e in EKMAN.labels}


@pytest.fixture
def ekman_dataset():
    dataset = DatasetFactory(slug="eemo", taxonomy=EKMAN.to_spec())
    for i, label in enumerate(LABELS):
        image = ImageFactory(dataset=dataset, seed=400 + i)
        data = annotation_payload(image.width, image.height)
        data["ces"] = {"label": label, "confidence": 0.75, "distribution": six_way(label)}
        make_annotation(image, kind=AnnotationKind.IMPORT, author_name="import", decision=Decision.APPROVED, payload=data)
        approve(image, label=label)
    return dataset


def export(dataset, fmt: str, **kwargs):
    snapshot = services.export_create(dataset=dataset, export_format=fmt, **kwargs)
    snapshot = runs.export_run(snapshot_id=snapshot.pk)
    folder = selectors.final_dir(snapshot)
    return folder, json.loads((folder / "manifest.json").read_text())


def test_coco_lists_the_six_ekman_categories_with_their_polarity(ekman_dataset):
    folder, manifest = export(ekman_dataset, "coco")
    coco = json.loads((folder / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(EKMAN.labels)
    assert {c["name"]: c["supercategory"] for c in coco["categories"]} == {
        "anger": "negative", "disgust": "negative", "fear": "negative", "happiness": "positive",
        "sadness": "negative", "surprise": "neutral"}
    ids = {c["id"]: c["name"] for c in coco["categories"]}
    assert sorted({ids[a["category_id"]] for a in coco["annotations"]}) == sorted(LABELS)
    assert manifest["taxonomy"]["name"] == "ekman" and manifest["taxonomy"]["labels"] == list(EKMAN.labels)


def test_parquet_and_jsonl_carry_six_way_distributions(ekman_dataset):
    folder, _ = export(ekman_dataset, "parquet")
    schema = pq.read_schema(folder / "data.parquet")
    struct = schema.field("ces_distribution").type
    assert [struct.field(i).name for i in range(struct.num_fields)] == list(EKMAN.labels)
    meta = json.loads(schema.metadata[b"emoverse"])
    assert meta["taxonomy"] == "ekman" and meta["labels"] == list(EKMAN.labels)
    rows = pq.read_table(folder / "data.parquet").to_pylist()
    assert sorted(r["ces_label"] for r in rows) == sorted(LABELS)
    assert all(r["ces_distribution"] == pytest.approx(six_way(r["ces_label"])) for r in rows)
    folder, manifest = export(ekman_dataset, "emoverse-jsonl")
    lines = [json.loads(line) for line in (folder / "data.jsonl").read_text().splitlines()]
    assert sorted(line["ces"]["label"] for line in lines) == sorted(LABELS)
    assert all(set(line["ces"]["distribution"]) == set(EKMAN.labels) for line in lines)
    assert manifest["taxonomy"]["labels"] == list(EKMAN.labels)


def test_the_label_filter_takes_the_datasets_labels(ekman_dataset):
    folder, manifest = export(ekman_dataset, "emoverse-jsonl", filters={"label": ["surprise"]})
    assert [json.loads(line)["ces"]["label"] for line in (folder / "data.jsonl").read_text().splitlines()] == ["surprise"]
    with pytest.raises(InvalidExportRequest, match="unknown value.*'awe'; expected anger, disgust"):
        services.export_create(dataset=ekman_dataset, export_format="emoverse-jsonl", filters={"label": ["awe"]})
