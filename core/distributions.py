"""Emotion distributions as vectors, their distance and their label (no Django).

A distribution is a mapping over exactly a taxonomy's labels (``labels``; default
:data:`core.vocabulary.EMOTIONS`, Mikels' eight); as a vector it is float64 in that order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from core.vocabulary import EMOTIONS


def as_vector(distribution: Mapping[str, float], labels: Sequence[str] = EMOTIONS) -> np.ndarray:
    """A distribution as a float64 vector in ``labels`` order."""
    return np.array([float(distribution[e]) for e in labels], dtype=np.float64)


def as_mapping(vector: np.ndarray, labels: Sequence[str] = EMOTIONS) -> dict[str, float]:
    return {e: float(v) for e, v in zip(labels, vector, strict=True)}


def js_distance(p: Mapping[str, float], q: Mapping[str, float], labels: Sequence[str] = EMOTIONS) -> float:
    """Jensen-Shannon distance with base-2 logarithms, in [0, 1]."""
    a, b = as_vector(p, labels), as_vector(q, labels)
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    divergence = max(0.0, (kl(a) + kl(b)) / 2)
    return min(1.0, math.sqrt(divergence))


def argmax_label(distribution: Mapping[str, float], labels: Sequence[str] = EMOTIONS) -> str:
    """The most probable emotion; ties go to the first in ``labels`` order."""
    return labels[int(np.argmax(as_vector(distribution, labels)))]
