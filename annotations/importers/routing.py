"""Where an image goes after an imported annotation: approved, or the review queue.

The queue order follows the pipeline's rule (``ml.pipeline.route``): priority is
the mean of the annotators' agreement score and the confidence, or the
confidence alone with one annotator; the lowest goes first.
"""

from __future__ import annotations

from dataclasses import dataclass

from annotations.domain import PIPELINE_AUTHOR, ROLES
from annotations.models import (
    Annotation,
    AnnotationKind,
    Decision,
    Element,
    Image,
    ImageStatus,
)
from annotations.services import image_set_status
from ml.calibration import annotator_agreement
from ml.types import AnnotatorResult, PhraseTriplet

# An imported model answer never undoes review work: images in these states keep them.
REVIEWABLE_STATUSES = frozenset({ImageStatus.NEW, ImageStatus.PREANNOTATING, ImageStatus.FAILED, ImageStatus.IN_REVIEW})


@dataclass(frozen=True)
class _Answer:
    id: int
    author_name: str
    ces_label: str | None
    ces_confidence: float | None
    ces_distribution: dict | None


def _current_answers(image: Image, kind: str) -> list[_Answer]:
    rows = (
        Annotation.objects.filter(image_id=image.pk, is_current=True, kind=kind)
        .order_by("-version")
        .values_list("id", "author_name", "ces_label", "ces_confidence", "ces_distribution")
    )
    return [_Answer(*row) for row in rows]


def _phrase_triplets(annotation_ids: list[int]) -> dict[int, tuple[PhraseTriplet, ...]]:
    """The B-A-S phrases of each annotation (one query); a missing element counts as an empty phrase."""
    found: dict[int, dict[int, dict[str, str]]] = {}
    rows = Element.objects.filter(triplet__annotation_id__in=annotation_ids).values_list(
        "triplet__annotation_id", "triplet__index", "role", "phrase"
    )
    for annotation_id, index, role, phrase in rows:
        found.setdefault(annotation_id, {}).setdefault(index, {})[role] = phrase
    return {
        a: tuple(PhraseTriplet(**{r: t[i].get(r, "") for r in ROLES}) for i in sorted(t)) for a, t in found.items()
    }


def models_agreement(answers: list[_Answer]) -> float | None:
    """Agreement score in [0, 1] of two or more model annotators (label, distribution, triplets); None for fewer."""
    answers = [a for a in answers if a.author_name != PIPELINE_AUTHOR and a.ces_distribution]
    if len(answers) < 2:
        return None
    triplets = _phrase_triplets([a.id for a in answers])
    results = [
        AnnotatorResult(model=a.author_name, prompt_version="", triplets=triplets.get(a.id, ()),
                        distribution=a.ces_distribution, rationale="", raw_output="")
        for a in answers
    ]
    agreement = annotator_agreement(results, {r.model: r.distribution for r in results})
    return agreement.score if agreement is not None else None


def image_route_imported(*, image: Image, approved: bool) -> Image:
    """Set the image's status and queue fields after an annotation was imported.

    ``approved``: the newest approved import is final, the image is approved.
    Otherwise an image that is not yet reviewed goes to (or stays in) review with
    the label and confidence of the pipeline's merged answer, else of the newest
    model answer, and a priority from agreement and confidence.
    """
    if approved:
        final = (
            Annotation.objects.filter(image_id=image.pk, is_current=True, kind=AnnotationKind.IMPORT, decision=Decision.APPROVED)
            .order_by("-version").first()
        )
        fields = {"label": final.ces_label, "confidence": final.ces_confidence} if final and final.ces_label else {}
        return image_set_status(image=image, status=ImageStatus.APPROVED, **fields)
    if image.status not in REVIEWABLE_STATUSES:
        return image
    models = _current_answers(image, AnnotationKind.MODEL)
    candidates = models or _current_answers(image, AnnotationKind.HUMAN)
    base = next((a for a in models if a.author_name == PIPELINE_AUTHOR), candidates[0] if candidates else None)
    fields: dict = {}
    if base is not None and base.ces_label:
        fields.update(label=base.ces_label, confidence=base.ces_confidence)
    agreement = models_agreement(models)
    fields["agreement"] = agreement
    confidence = fields.get("confidence")
    if confidence is not None:
        fields["priority"] = confidence if agreement is None else (agreement + confidence) / 2
    elif agreement is not None:
        fields["priority"] = agreement
    return image_set_status(image=image, status=ImageStatus.IN_REVIEW, **fields)
