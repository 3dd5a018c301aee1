"""Migration 0010: datasets that existed before taxonomies get Mikels' eight; their labels stay."""

from __future__ import annotations

import pytest

from annotations.models import Dataset, Image
from core.vocabulary import MIKELS
from tests.migrations import migrate

BEFORE = [("annotations", "0009_phrase_embedding")]


@pytest.mark.django_db(transaction=True)
def test_an_existing_dataset_becomes_mikels_and_keeps_its_labels():
    old_apps = migrate(BEFORE)
    try:
        OldDataset = old_apps.get_model("annotations", "Dataset")
        OldImage = old_apps.get_model("annotations", "Image")
        dataset = OldDataset.objects.create(slug="old", name="Old")
        OldImage.objects.create(dataset=dataset, file="x/1.png", sha256="1" * 64, width=8, height=8, source="emoset",
                                label="awe")
    finally:
        migrate()
    dataset = Dataset.objects.get(slug="old")
    assert dataset.get_taxonomy() == MIKELS and dataset.taxonomy["labels"] == list(MIKELS.labels)
    assert Image.objects.get(dataset=dataset).label == "awe"
