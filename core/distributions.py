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


def _pairwise_sum(values: list[float]) -> float:
    """``numpy.sum`` of a float64 vector of up to 128 values, in numpy's order (pairwise:
    eight running sums, then their tree), so the result is the same float."""
    n = len(values)
    if n < 8:
        total = 0.0
        for v in values:
            total += v
        return total
    r0, r1, r2, r3, r4, r5, r6, r7 = values[:8]
    end = n - n % 8
    for i in range(8, end, 8):
        r0 += values[i]; r1 += values[i + 1]; r2 += values[i + 2]; r3 += values[i + 3]  # noqa: E702
        r4 += values[i + 4]; r5 += values[i + 5]; r6 += values[i + 6]; r7 += values[i + 7]  # noqa: E702
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for v in values[end:]:
        total += v
    return total


def _js_distance_numpy(p: Mapping[str, float], q: Mapping[str, float], labels: Sequence[str]) -> float:
    a, b = as_vector(p, labels), as_vector(q, labels)
    a, b = a / a.sum(), b / b.sum()
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    divergence = max(0.0, (kl(a) + kl(b)) / 2)
    return min(1.0, math.sqrt(divergence))


def js_distance(p: Mapping[str, float], q: Mapping[str, float], labels: Sequence[str] = EMOTIONS) -> float:
    """Jensen-Shannon distance with base-2 logarithms, in [0, 1].

    A taxonomy has at most a few dozen labels, where numpy's per-call cost outweighs the
    arithmetic: the vectors are Python floats, summed in numpy's order, and the logarithms
    come from one ``numpy.log2`` call, so the result is the float the vectorised form gives
    (that form still computes what plain floats cannot: a zero sum, more than 128 labels)."""
    a = [float(p[e]) for e in labels]
    b = [float(q[e]) for e in labels]
    if len(a) > 128:
        return _js_distance_numpy(p, q, labels)
    try:
        sa, sb = _pairwise_sum(a), _pairwise_sum(b)
        a = [x / sa for x in a]
        b = [y / sb for y in b]
        m = [(x + y) / 2 for x, y in zip(a, b)]
        xa = [(x, x / z) for x, z in zip(a, m) if x > 0]
        xb = [(y, y / z) for y, z in zip(b, m) if y > 0]
    except ZeroDivisionError:  # numpy gives inf or nan here
        return _js_distance_numpy(p, q, labels)
    logs = np.log2([r for _, r in xa] + [r for _, r in xb]).tolist() if xa or xb else []
    ka = _pairwise_sum([x * log for (x, _), log in zip(xa, logs)])
    kb = _pairwise_sum([y * log for (y, _), log in zip(xb, logs[len(xa):])])
    divergence = max(0.0, (ka + kb) / 2)
    return min(1.0, math.sqrt(divergence))


def argmax_label(distribution: Mapping[str, float], labels: Sequence[str] = EMOTIONS) -> str:
    """The most probable emotion; ties go to the first in ``labels`` order (a NaN wins, as
    with ``numpy.argmax``)."""
    values = [float(distribution[e]) for e in labels]
    if not values:
        raise ValueError("attempt to get argmax of an empty sequence")
    best = 0
    for i, v in enumerate(values):
        if v != v:  # NaN
            return labels[i]
        if v > values[best]:
            best = i
    return labels[best]
