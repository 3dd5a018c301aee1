"""Elements approved unchecked (``accepted_unchecked``) flow through every export format with their status:
kept (they were approved), and told apart from the elements a person accepted."""

from __future__ import annotations

import contextlib
import io
import json

import pyarrow.parquet as pq
import pytest
from pycocotools.coco import COCO

from annotations.models import AnnotationKind, Decision
from exports import runs, selectors, services
from tests.exports.export_scenes import approve, fast_passwords, payload  # noqa: F401 - autouse fixture
from tests.factories import DatasetFactory, ImageFactory, UserFactory, make_annotation

pytestmark = pytest.mark.django_db

STATUSES = {"background": "accepted", "attribute": "accepted_unchecked", "subject": "accepted_unchecked"}


@pytest.fixture
def dataset():
    dataset = DatasetFactory(slug="checks")
    image = ImageFactory(dataset=dataset)
    answer = payload(image)
    for role, status in STATUSES.items():
        answer["triplets"][0][role]["status"] = status
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name="alice", author_user=UserFactory(username="alice"),
                    decision=Decision.APPROVED, payload=answer)
    approve(image, label="fear")
    return dataset


def export(dataset, export_format: str, name: str):
    snapshot = runs.export_run(snapshot_id=services.export_create(dataset=dataset, export_format=export_format).pk)
    return selectors.final_dir(snapshot) / name


def test_jsonl_carries_the_status(dataset):
    [line] = [json.loads(x) for x in export(dataset, "emoverse-jsonl", "data.jsonl").read_text().splitlines()]
    assert {role: line["triplets"][0][role]["status"] for role in STATUSES} == STATUSES


def test_coco_keeps_unchecked_elements_and_names_their_status(dataset):
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(export(dataset, "coco", "annotations.json")))
    grounded = {role: status for role, status in STATUSES.items() if role != "attribute"}  # the attribute has no box
    assert {a["role"]: a["element_status"] for a in coco.loadAnns(coco.getAnnIds())} == grounded


def test_parquet_carries_the_status(dataset):
    [row] = pq.read_table(export(dataset, "parquet", "data.parquet")).to_pylist()
    assert {role: row["triplets"][0][role]["status"] for role in STATUSES} == STATUSES
