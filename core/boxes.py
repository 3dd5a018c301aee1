"""Box IoU (no Django).

Boxes are absolute pixel ``XYXY``: ``(x0, y0, x1, y1)`` with ``x0 <= x1`` and ``y0 <= y1``.
One formula (:func:`_iou`) serves a single pair (:func:`box_iou`), every pair of two sets
(:func:`box_iou_matrix`) and aligned pairs (:func:`paired_box_iou`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _as_boxes(boxes: Any, name: str) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4) in XYXY, got {b.shape}")
    if not np.all(np.isfinite(b)) or np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
        raise ValueError(f"{name} must be finite XYXY boxes with x1 <= x2 and y1 <= y2")
    return b


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcastable XYXY arrays ``a[..., 4]`` and ``b[..., 4]``; NaN when the union is empty."""
    w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
    h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = w * h
    area = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]), (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area[0] + area[1] - inter
    return np.divide(inter, union, out=np.full(np.shape(inter), np.nan), where=union > 0)


def _plain_box(box: Any) -> tuple[float, float, float, float] | None:
    """Four finite Python numbers as floats; None for anything else (left to numpy)."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return None
    if not all(type(v) is float or type(v) is int for v in box):
        return None
    out = tuple(float(v) for v in box)
    return out if all(math.isfinite(v) for v in out) else None


def box_iou(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    """IoU of two XYXY pixel boxes; 0 when either is missing or their union is empty.

    Two lists of four finite numbers (every box of an answer) are computed in Python floats with
    :func:`_iou`'s operations in its order, numpy's ``maximum``/``minimum`` taking the second of
    two equal values as numpy does: the same float, bit for bit, without a dozen numpy calls on
    0-d arrays. Anything else goes through :func:`_iou`."""
    if not a or not b:
        return 0.0
    pa, pb = _plain_box(a), _plain_box(b)
    if pa is None or pb is None:
        iou = float(_iou(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))
        return 0.0 if np.isnan(iou) else iou
    a0, a1, a2, a3 = pa
    b0, b1, b2, b3 = pb
    w = (a2 if a2 < b2 else b2) - (a0 if a0 > b0 else b0)
    w = w if w > 0.0 else 0.0
    h = (a3 if a3 < b3 else b3) - (a1 if a1 > b1 else b1)
    h = h if h > 0.0 else 0.0
    inter = w * h
    union = (a2 - a0) * (a3 - a1) + (b2 - b0) * (b3 - b1) - inter
    return inter / union if union > 0 else 0.0


def box_iou_matrix(boxes_a: Any, boxes_b: Any) -> np.ndarray:
    """``(N, M)`` IoU of every box in ``boxes_a (N, 4)`` with every box in ``boxes_b (M, 4)``; NaN for an empty union."""
    return _iou(_as_boxes(boxes_a, "boxes_a")[:, None, :], _as_boxes(boxes_b, "boxes_b")[None, :, :])


def paired_box_iou(boxes_a: Any, boxes_b: Any) -> np.ndarray:
    """``(N,)`` IoU of ``boxes_a[i]`` with ``boxes_b[i]`` (two annotators' boxes for one element); NaN for an empty union."""
    a, b = _as_boxes(boxes_a, "boxes_a"), _as_boxes(boxes_b, "boxes_b")
    if len(a) != len(b):
        raise ValueError(f"boxes_a and boxes_b differ in length: {len(a)} vs {len(b)}")
    return _iou(a, b)
