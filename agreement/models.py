"""Stored phrase embeddings for semantic phrase agreement.

Embeddings are computed on a worker (``python manage.py agreement --semantic``),
never in the web process, which only reads the vectors and compares them with numpy.
"""

from __future__ import annotations

from django.db import models


class PhraseEmbedding(models.Model):
    """One normalised phrase (``agreement.similarity.normalize_phrase``) embedded by one model."""

    model_name = models.CharField(max_length=200, help_text="The sentence-embedding model (name or path).")
    text = models.CharField(max_length=400)
    dim = models.PositiveIntegerField()
    vector = models.BinaryField(help_text="dim float32, little-endian.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_name", "text"], name="phraseembedding_unique_text")]

    def __str__(self) -> str:
        return f"{self.model_name}: {self.text}"
