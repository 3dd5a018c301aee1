"""Embedding element phrases on a worker, and storing them once per phrase.

Triplets are paired by meaning (:mod:`core.alignment`) with sentence embeddings of their
phrases. The web process never loads the model: workers embed the phrases with the
``embedder`` backend (``ml.config``; all-MiniLM-L6-v2 by default) and store them
(``annotations.PhraseEmbedding``), after pre-annotation (the pipeline's ``embed`` step,
:func:`ml.runs.embed`), after an import and after a review or adjudication (the tasks in
``ml.tasks``, queued on commit by the ``annotations.signals`` receivers). Where a worker
cannot embed (sentence-transformers not installed, the embedder turned off), the result
says so in :attr:`EmbedResult.unavailable` and triplets stay paired by words.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from django.db import DatabaseError

from annotations.importers.routing import images_refresh_agreement
from annotations.models import Annotation, Element, ImportRun
from annotations.phrase_embeddings import annotation_phrases, missing_phrases, phrase_embeddings_store, phrase_model_name
from core.alignment import phrase_key
from ml.config import get_registry
from ml.stages.types import BackendNotConfigured

logger = logging.getLogger(__name__)

BATCH = 256  # phrases per call of the embedder and per insert
IMAGES_PER_REFRESH = 2000
TURNED_OFF = ("phrase embedding is turned off (EMOVERSE_ML['embedder'] is null): triplets are paired by words")


@dataclass(frozen=True)
class EmbedResult:
    phrases: int  # distinct normalised phrases looked at
    missing: int  # of them, without a stored embedding before
    stored: int  # newly stored
    unavailable: str = ""  # why the missing ones could not be embedded here; empty when they were

    def message(self) -> str:
        phrases = f"{self.phrases} phrase{'' if self.phrases == 1 else 's'}"
        if self.unavailable:
            return f"{phrases}, {self.missing} without an embedding; not embedded: {self.unavailable}"
        return f"{phrases}, {self.stored} newly embedded"

    def as_dict(self) -> dict:
        return asdict(self)


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def embed_phrases(phrases: Iterable[str]) -> EmbedResult:
    """Embed and store those of ``phrases`` that have no stored embedding yet, ``BATCH`` at a time.

    Without an embedder here (not installed, not configured, turned off) or when it fails,
    nothing is stored and :attr:`EmbedResult.unavailable` says why (logged as a warning);
    database errors propagate, for the task to retry.
    """
    texts = {phrase_key(p) for p in phrases} - {""}
    missing = missing_phrases(texts, model_name=phrase_model_name())
    if not missing:
        return EmbedResult(len(texts), 0, 0)
    try:
        embedder = get_registry().embedder()
    except BackendNotConfigured as exc:
        logger.warning("%d phrase(s) not embedded: %s", len(missing), exc)
        return EmbedResult(len(texts), len(missing), 0, str(exc))
    if embedder is None:
        logger.info("%d phrase(s) not embedded: %s", len(missing), TURNED_OFF)
        return EmbedResult(len(texts), len(missing), 0, TURNED_OFF)
    stored = 0
    for chunk in _batches(missing, BATCH):
        try:
            vectors = embedder.embed(chunk)
        except DatabaseError:
            raise
        except Exception as exc:  # a broken model must not lose the annotation: pairing falls back to words
            logger.exception("the phrase embedder %s failed on %d phrases", embedder.name, len(chunk))
            return EmbedResult(len(texts), len(missing), stored, f"the embedder failed: {type(exc).__name__}: {exc}")
        stored += phrase_embeddings_store(model_name=embedder.name, phrases=chunk, vectors=vectors)
    return EmbedResult(len(texts), len(missing), stored)


def embed_annotation_phrases(annotation_ids: list[int]) -> EmbedResult:
    """The phrases of these annotations (a person's new answer)."""
    return embed_phrases(annotation_phrases(annotation_ids))


def embed_import_phrases(import_run_id: int) -> EmbedResult:
    """The phrases of an import's annotations; then, when any were new, the agreement and
    priority of the import's images still in review are scored again by meaning."""
    run = ImportRun.objects.filter(pk=import_run_id).first()
    if run is None:
        return EmbedResult(0, 0, 0)
    annotations = Annotation.objects.filter(import_run=run)
    result = embed_phrases(annotation_phrases(annotations.values_list("id", flat=True)))
    if result.stored and not run.approved:
        images = sorted(set(annotations.values_list("image_id", flat=True)))
        for start in range(0, len(images), IMAGES_PER_REFRESH):
            images_refresh_agreement(image_ids=images[start : start + IMAGES_PER_REFRESH])
    return result


def embed_dataset_phrases(*, dataset_id: int) -> EmbedResult:
    """Every phrase of a dataset's annotations (``manage.py embed_phrases``: data from before
    phrases were embedded automatically)."""
    elements = Element.objects.filter(triplet__annotation__image__dataset_id=dataset_id).order_by()
    return embed_phrases(elements.values_list("phrase", flat=True).distinct().iterator(chunk_size=5000))
