"""Where an image goes after an imported annotation: approved, or the review queue.

The queue order follows the pipeline's rule (:func:`core.priority.queue_priority`):
priority is the mean of the annotators' agreement score and the confidence, or the
confidence alone with one annotator, halved when the imported critic calls the label or
an element ``wrong``; the lowest goes first. The annotators' triplets are paired by
meaning with the phrase embeddings stored so far (by words for the others); once a
worker has embedded an import's phrases, :func:`images_refresh_agreement` scores its
images again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import (
    Annotation,
    AnnotationKind,
    Dataset,
    Decision,
    Element,
    Image,
    ImageStatus,
)
from annotations.phrase_embeddings import phrase_vectors
from annotations.services import NewAnnotation, images_set_status
from core.alignment import NO_VECTORS, PhraseVectors
from core.priority import annotator_agreement, queue_priority, stored_critic_verdict
from core.triplets import PhraseTriplet
from core.vocabulary import EMOTIONS, ROLES

# An imported model answer never undoes review work: images in these states keep them.
_ANSWER_KINDS = frozenset({AnnotationKind.MODEL, AnnotationKind.HUMAN})  # those the routing compares
REVIEWABLE_STATUSES = frozenset({ImageStatus.NEW, ImageStatus.PREANNOTATING, ImageStatus.FAILED, ImageStatus.IN_REVIEW})


@dataclass(frozen=True)
class _Answer:
    id: int
    kind: str
    author_name: str
    ces_label: str | None
    ces_confidence: float | None
    ces_distribution: dict | None
    critic: dict | None


def _current_answers(image_ids: list[int]) -> dict[int, list[_Answer]]:
    """Each image's current model and human answers, newest version first (one query)."""
    rows = (
        Annotation.objects.filter(image_id__in=image_ids, is_current=True, kind__in=[AnnotationKind.MODEL, AnnotationKind.HUMAN])
        .order_by("image_id", "-version")
        .values_list("image_id", "id", "kind", "author_name", "ces_label", "ces_confidence", "ces_distribution", "critic")
    )
    found: dict[int, list[_Answer]] = {}
    for image_id, *row in rows:
        found.setdefault(image_id, []).append(_Answer(*row))
    return found


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


def _written_answers(written: Mapping[int, Sequence[NewAnnotation]]) -> tuple[dict[int, list[_Answer]], dict[int, tuple[PhraseTriplet, ...]]]:
    """What :func:`_current_answers` and :func:`_phrase_triplets` read, for images whose every
    annotation is in ``written`` (images created in this transaction, their annotations in the
    order written): per author the newest is current. The answers get negative keys of their own."""
    answers: dict[int, list[_Answer]] = {}
    triplets: dict[int, tuple[PhraseTriplet, ...]] = {}
    key = 0
    for image_id, items in written.items():
        newest: dict[tuple[str, str], _Answer] = {}
        for item in reversed(items):
            if item.kind not in _ANSWER_KINDS or (item.kind, item.author_name) in newest:
                continue
            key -= 1
            ces = item.data.ces
            newest[(item.kind, item.author_name)] = _Answer(
                key, item.kind, item.author_name, ces.label if ces else None, ces.confidence if ces else None,
                ces.distribution if ces else None, item.critic)
            if item.data.triplets:
                phrases = ({e.role: e.phrase for e in t.elements} for t in item.data.triplets)
                triplets[key] = tuple(PhraseTriplet(**{r: found.get(r, "") for r in ROLES}) for found in phrases)
        if newest:
            answers[image_id] = list(newest.values())
    return answers, triplets


def _compared(answers: list[_Answer]) -> list[_Answer]:
    """The model annotators' own answers that an agreement score compares (not the merged one)."""
    return [a for a in answers if a.author_name != PIPELINE_AUTHOR and a.ces_distribution]


def _vectors(triplets: dict[int, tuple[PhraseTriplet, ...]]) -> PhraseVectors:
    return phrase_vectors(p for found in triplets.values() for t in found for p in t.phrases().values())


def models_agreement(answers: list[_Answer], triplets: dict[int, tuple[PhraseTriplet, ...]] | None = None,
                     vectors: PhraseVectors | None = None, emotions: Sequence[str] = EMOTIONS) -> float | None:
    """Agreement score in [0, 1] of two or more model annotators (label, distribution, triplets); None for fewer.
    ``vectors``: the stored embeddings of the triplets' phrases (read when not given); ``emotions``:
    the labels of the dataset's taxonomy, over which the distributions are."""
    answers = _compared(answers)
    if len(answers) < 2:
        return None
    triplets = _phrase_triplets([a.id for a in answers]) if triplets is None else triplets
    vectors = _vectors(triplets) if vectors is None else vectors
    agreement = annotator_agreement([(triplets.get(a.id, ()), a.ces_distribution) for a in answers], vectors, emotions)
    return agreement.score if agreement is not None else None


def _review_fields(answers: list[_Answer], triplets: dict[int, tuple[PhraseTriplet, ...]],
                   vectors: PhraseVectors = NO_VECTORS, emotions: Sequence[str] = EMOTIONS) -> dict:
    """Label, confidence, agreement and queue priority of an image that goes to review."""
    models = [a for a in answers if a.kind == AnnotationKind.MODEL]
    candidates = models or [a for a in answers if a.kind == AnnotationKind.HUMAN]
    base = next((a for a in models if a.author_name == PIPELINE_AUTHOR), candidates[0] if candidates else None)
    fields: dict = {}
    if base is not None and base.ces_label:
        fields.update(label=base.ces_label, confidence=base.ces_confidence)
    agreement = models_agreement(models, triplets, vectors, emotions)
    fields["agreement"] = agreement
    priority = queue_priority(fields.get("confidence"), agreement, stored_critic_verdict(base.critic if base else None))
    if priority is not None:
        fields["priority"] = priority
    return fields


def images_route_imported(*, images: list[Image], approved: bool,
                          written: Mapping[int, Sequence[NewAnnotation]] | None = None) -> None:
    """Set the images' status and queue fields after annotations were imported (a fixed
    number of queries for any number of images). ``written``: the annotations this
    transaction wrote for images it created (by image id, in the order written), which
    are all those images have: their answers are taken from there, not read back.

    ``approved``: the newest approved import of each image is final, the image is
    approved with its label. Otherwise an image that is not yet reviewed goes to (or
    stays in) review with the label and confidence of the pipeline's merged answer,
    else of the newest model answer, and a priority from agreement and confidence.
    """
    if approved:
        finals = Annotation.objects.filter(
            image_id__in=[i.pk for i in images], is_current=True, kind=AnnotationKind.IMPORT, decision=Decision.APPROVED
        ).order_by("image_id", "version").values_list("image_id", "ces_label", "ces_confidence")
        newest = {image_id: (label, confidence) for image_id, label, confidence in finals}  # the last wins
        updates = []
        for image in images:
            label, confidence = newest.get(image.pk, (None, None))
            updates.append((image, {"label": label, "confidence": confidence} if label else {}))
        images_set_status(updates, status=ImageStatus.APPROVED)
        return
    reviewable = [image for image in images if image.status in REVIEWABLE_STATUSES]
    written = {image.pk: written[image.pk] for image in reviewable if image.pk in written} if written else {}
    answers, triplets = _written_answers(written)
    answers.update(_current_answers([image.pk for image in reviewable if image.pk not in written]))
    compared = [a.id for found in answers.values() for a in _compared(found) if a.kind == AnnotationKind.MODEL and a.id > 0]
    triplets.update(_phrase_triplets(compared) if compared else {})
    vectors = _vectors(triplets)
    labels = {d.pk: d.get_taxonomy().labels for d in Dataset.objects.filter(pk__in={i.dataset_id for i in reviewable})}
    images_set_status(
        [(image, _review_fields(answers.get(image.pk, []), triplets, vectors, labels[image.dataset_id])) for image in reviewable],
        status=ImageStatus.IN_REVIEW,
    )


def images_refresh_agreement(*, image_ids: list[int]) -> int:
    """Score again the agreement and priority of those images that are still in review
    (their annotators' phrases were embedded meanwhile). Returns how many were scored."""
    images = list(Image.objects.filter(pk__in=image_ids, status=ImageStatus.IN_REVIEW))
    images_route_imported(images=images, approved=False)
    return len(images)


def image_route_imported(*, image: Image, approved: bool) -> Image:
    """:func:`images_route_imported` for one image."""
    images_route_imported(images=[image], approved=approved)
    return image
