"""The human reference label of an image: what models are measured and calibrated against.

The outcome of review, as one rule used by the agreement report (human vs model) and by
calibration (``ml.calibration_fits.calibration_samples``: the fit and its ECE), over the current
annotations of an image:

1. its current ADJUDICATION's label (the newest, should there be several);
2. else, when it has current HUMAN reviews with a label:
   a. the label every current *approved* review gave (unanimous), when there is one;
   b. else the strict majority (more than half) of the labels of all current reviews;
   c. else none: the reviews disagree and nobody has adjudicated yet;
3. else (never reviewed) the label of its newest approved IMPORT annotation (a final
   label brought in with the dataset);
4. else none.

An image without a reference is left out of human-vs-model statistics and calibration
(the report counts it as "no reference yet"). Model answers are never a reference, not even
an auto-accepted one: measuring or calibrating models against their own output would be
circular. Functions over label rows; no database access here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from annotations.models import AnnotationKind, Decision


class _LabelRow(Protocol):
    image_id: int
    kind: str
    label: str | None
    decision: str
    version: int


REFERENCE_KINDS = (AnnotationKind.ADJUDICATION, AnnotationKind.HUMAN, AnnotationKind.IMPORT)


def _from_reviews(labels: list[str], approved: list[str]) -> str | None:
    if approved and len(set(approved)) == 1:
        return approved[0]
    label, count = Counter(labels).most_common(1)[0]
    return label if count * 2 > len(labels) else None


def reference_labels(rows: Iterable[_LabelRow]) -> dict[int, str]:
    """Image id → reference label (module docstring), from the current annotations' label
    rows (any kinds; rows of other kinds and rows without a label are ignored)."""
    adjudicated: dict[int, tuple[int, str]] = {}
    imported: dict[int, tuple[int, str]] = {}
    reviews: dict[int, list[str]] = {}
    approved: dict[int, list[str]] = {}
    for r in rows:
        if r.label is None:
            continue
        if r.kind == AnnotationKind.ADJUDICATION:
            if r.version > adjudicated.get(r.image_id, (-1, ""))[0]:
                adjudicated[r.image_id] = (r.version, r.label)
        elif r.kind == AnnotationKind.HUMAN:
            reviews.setdefault(r.image_id, []).append(r.label)
            if r.decision == Decision.APPROVED:
                approved.setdefault(r.image_id, []).append(r.label)
        elif r.kind == AnnotationKind.IMPORT and r.decision == Decision.APPROVED:
            if r.version > imported.get(r.image_id, (-1, ""))[0]:
                imported[r.image_id] = (r.version, r.label)
    out = {image_id: label for image_id, (_, label) in imported.items()}
    for image_id, labels in reviews.items():
        label = _from_reviews(labels, approved.get(image_id, []))
        if label is None:
            out.pop(image_id, None)
        else:
            out[image_id] = label
    out.update((image_id, label) for image_id, (_, label) in adjudicated.items())
    return out
