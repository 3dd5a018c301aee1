"""Writes of the agreement app: stored phrase embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from django.db import transaction

from agreement.models import PhraseEmbedding


@transaction.atomic
def phrase_embeddings_store(*, model_name: str, texts: Sequence[str], vectors: np.ndarray) -> int:
    """Store one ``(D,)`` vector per normalised phrase (rows of ``vectors (N, D)``); existing ones are kept.

    Returns how many were new.
    """
    vectors = np.asarray(vectors, dtype="<f4")
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise ValueError(f"need one vector per text: {len(texts)} texts, vectors of shape {vectors.shape}")
    if not np.all(np.isfinite(vectors)):
        raise ValueError("embedding vectors must be finite")
    rows = [PhraseEmbedding(model_name=model_name, text=t, dim=vectors.shape[1], vector=v.tobytes())
            for t, v in zip(texts, vectors)]
    before = PhraseEmbedding.objects.filter(model_name=model_name).count()
    PhraseEmbedding.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    return PhraseEmbedding.objects.filter(model_name=model_name).count() - before
