"""Pure orchestration of the pre-annotation stages (no Django, no Celery).

Every function takes backends (objects satisfying :mod:`ml.stages.protocols`) and plain
data, so the whole pipeline runs in a test with fakes or tiny models, and
``ml/tasks.py`` calls the same functions one stage per task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.alignment import PhraseVectors
from core.priority import critic_verdict, queue_priority
from core.triplets import PhraseTriplet
from core.vocabulary import DES_DIM, EMOTIONS, ROLES
from ml.stages.parsing import parse_distribution
from ml.stages.protocols import (
    Annotator,
    Calibrator,
    Critic,
    DesEncoder,
    EmotionClassifier,
    Grounder,
    Segmenter,
)
from ml.stages.triplets import merge_triplets
from ml.stages.types import (
    AnnotatorResult,
    Box,
    CalibrationResult,
    CriticResult,
    GroundedElement,
    GroundedTriplet,
    ImageInput,
    Mask,
    StageError,
)

BOX_TOLERANCE_PX = 1.0


def annotate_all(annotators: Sequence[Annotator], image: ImageInput) -> list[AnnotatorResult]:
    """Every annotator on one image, in order (the Celery edge runs them in parallel)."""
    return [annotator.annotate(image) for annotator in annotators]


def classifier_covers(classifier: EmotionClassifier, image: ImageInput) -> bool:
    """Whether the classifier predicts the labels of the image's taxonomy (its ``labels``,
    Mikels' eight when it names none)."""
    return set(getattr(classifier, "labels", EMOTIONS)) == set(image.taxonomy.labels)


def classify(classifier: EmotionClassifier, image: ImageInput) -> dict[str, float]:
    """The classifier's distribution for one image, checked like a model answer."""
    predictions = classifier.predict([image])
    if len(predictions) != 1:
        raise StageError(f"classifier {classifier.name} returned {len(predictions)} predictions for 1 image")
    return parse_distribution(predictions[0], raw=repr(predictions[0]), where=f"classifier {classifier.name}",
                              labels=image.taxonomy.labels)


def calibrate(
    calibrator: Calibrator,
    image: ImageInput,
    results: Sequence[AnnotatorResult],
    temperatures: Mapping[str, float],
    classifier: EmotionClassifier | None = None,
    vectors: PhraseVectors | None = None,
) -> CalibrationResult:
    """Calibrate and merge the annotators; a classifier is blended in when it covers the
    image's taxonomy (:func:`classifier_covers`), and left out for any other dataset."""
    distribution = classify(classifier, image) if classifier is not None and classifier_covers(classifier, image) else None
    return calibrator.calibrate(image, results, temperatures, classifier_distribution=distribution, vectors=vectors)


def candidate_triplets(
    results: Sequence[AnnotatorResult], calibration: CalibrationResult, *, max_triplets: int | None = None,
    vectors: PhraseVectors | None = None,
) -> tuple[PhraseTriplet, ...]:
    """The triplets the critic judges and the review stores (see :func:`merge_triplets`)."""
    return merge_triplets(results, calibration, max_triplets=max_triplets, vectors=vectors)


def critique(
    critic: Critic,
    image: ImageInput,
    results: Sequence[AnnotatorResult],
    calibration: CalibrationResult,
    triplets: Sequence[PhraseTriplet],
) -> CriticResult:
    return critic.review(image, results, calibration, triplets=triplets)


def _check_box(box: Box, image: ImageInput, phrase: str) -> None:
    tol = BOX_TOLERANCE_PX
    ok = (
        -tol <= box.x0 < box.x1 <= image.width + tol
        and -tol <= box.y0 < box.y1 <= image.height + tol
        and 0.0 <= box.score <= 1.0
    )
    if not ok:
        raise StageError(f"grounder returned an invalid box {box} for {phrase!r} in a {image.width}x{image.height} image")


def unique_phrases(triplets: Sequence[PhraseTriplet]) -> list[str]:
    """Every distinct phrase of an image's triplets, in first-seen order."""
    return list(dict.fromkeys(p for t in triplets for p in (t.background, t.attribute, t.subject)))


def ground(
    grounder: Grounder, images: Sequence[ImageInput], triplets: Sequence[Sequence[PhraseTriplet]]
) -> list[dict[str, Box]]:
    """One batched grounder call; per image, the box of every phrase that was found.

    Boxes within 1 px outside the image are clipped (rounding); anything further
    out is a grounder bug and raises :class:`StageError`.
    """
    if len(images) != len(triplets):
        raise ValueError("one list of triplets per image is required")
    phrases = [unique_phrases(ts) for ts in triplets]
    detections = grounder.ground(images, phrases)
    if len(detections) != len(images) or any(len(d) != len(p) for d, p in zip(detections, phrases)):
        raise StageError("grounder returned a different number of detections than phrases")
    found: list[dict[str, Box]] = []
    for image, dets, wanted in zip(images, detections, phrases):
        boxes = {}
        for det, phrase in zip(dets, wanted):
            if det.box is not None:
                _check_box(det.box, image, phrase)
                boxes[phrase] = _clip(det.box, image)
        found.append(boxes)
    return found


def segment(
    segmenter: Segmenter, images: Sequence[ImageInput], boxes: Sequence[Mapping[str, Box]]
) -> list[dict[str, Mask]]:
    """One batched segmenter call for the images that have boxes; a mask per phrase."""
    with_boxes = [i for i, found in enumerate(boxes) if found]
    masks_by_phrase: list[dict[str, Mask]] = [{} for _ in images]
    if not with_boxes:
        return masks_by_phrase
    ordered = [list(boxes[i].items()) for i in with_boxes]
    masks = segmenter.segment([images[i] for i in with_boxes], [[b for _, b in items] for items in ordered])
    if len(masks) != len(with_boxes) or any(len(m) != len(items) for m, items in zip(masks, ordered)):
        raise StageError("segmenter returned a different number of masks than boxes")
    for i, items, image_masks in zip(with_boxes, ordered, masks):
        h, w = images[i].height, images[i].width
        for (phrase, _), mask in zip(items, image_masks):
            if list(mask.rle.get("size", [])) != [h, w]:
                raise StageError(f"segmenter returned a mask of size {mask.rle.get('size')} for a {h}x{w} image")
            masks_by_phrase[i][phrase] = mask
    return masks_by_phrase


def assemble(
    triplets: Sequence[PhraseTriplet], boxes: Mapping[str, Box], masks: Mapping[str, Mask]
) -> tuple[GroundedTriplet, ...]:
    """One image's triplets with each element's box and mask (``None`` when not found)."""
    out = []
    for t in triplets:
        phrases = t.phrases()
        out.append(
            GroundedTriplet(
                elements=tuple(
                    GroundedElement(role=r, phrase=phrases[r], box=boxes.get(phrases[r]), mask=masks.get(phrases[r]))
                    for r in ROLES
                )
            )
        )
    return tuple(out)


def ground_and_segment(
    grounder: Grounder,
    segmenter: Segmenter,
    images: Sequence[ImageInput],
    triplets: Sequence[Sequence[PhraseTriplet]],
) -> list[tuple[GroundedTriplet, ...]]:
    """Ground every distinct phrase of each image's triplets, then segment every box.

    Batched over ``images``: one grounder call and one segmenter call for the
    whole batch. An element whose phrase was not found keeps ``box=None`` and
    ``mask=None``.
    """
    boxes = ground(grounder, images, triplets)
    masks = segment(segmenter, images, boxes)
    return [assemble(ts, b, m) for ts, b, m in zip(triplets, boxes, masks)]


def _clip(box: Box, image: ImageInput) -> Box:
    return Box(
        x0=min(max(box.x0, 0.0), image.width),
        y0=min(max(box.y0, 0.0), image.height),
        x1=min(max(box.x1, 0.0), image.width),
        y1=min(max(box.y1, 0.0), image.height),
        score=box.score,
    )


def encode_des(des: DesEncoder, images: Sequence[ImageInput]) -> np.ndarray:
    """``(n, 1024)`` float32, checked."""
    vectors = np.asarray(des.encode(images))
    if vectors.shape != (len(images), DES_DIM) or vectors.dtype != np.float32:
        raise StageError(f"DES encoder returned {vectors.dtype} {vectors.shape}, expected float32 ({len(images)}, {DES_DIM})")
    if not np.isfinite(vectors).all():
        raise StageError("DES encoder returned non-finite values")
    return vectors


@dataclass(frozen=True)
class Routing:
    """Where an image goes after pre-annotation: the review queue (low ``priority`` first) or accepted."""

    priority: float
    auto_accept: bool


def route(
    calibration: CalibrationResult, critic: CriticResult | None, *, auto_accept_threshold: float | None
) -> Routing:
    """Priority = mean of the annotators' agreement score and the calibrated confidence
    (the confidence alone with one annotator), halved when the critic calls the label or
    any element ``wrong`` (:func:`core.priority.queue_priority`); low goes first.

    Auto-accept only when a threshold is set, the confidence and the agreement are
    both at or above it, and the critic found nothing doubtful or wrong.
    """
    agreement = calibration.agreement.score if calibration.agreement is not None else None
    verdict = critic_verdict([critic.label_verdict, *(e.verdict for e in critic.elements)]) if critic is not None else None
    priority = queue_priority(calibration.confidence, agreement, verdict)
    critic_ok = critic is not None and critic.label_verdict == "ok" and all(e.verdict == "ok" for e in critic.elements)
    auto = (
        auto_accept_threshold is not None
        and calibration.confidence >= auto_accept_threshold
        and (agreement is None or agreement >= auto_accept_threshold)
        and critic_ok
    )
    return Routing(priority=float(priority), auto_accept=bool(auto))


@dataclass(frozen=True)
class Preannotation:
    """Everything the pipeline produced for one image."""

    image: ImageInput
    results: tuple[AnnotatorResult, ...]
    calibration: CalibrationResult
    critic: CriticResult
    triplets: tuple[GroundedTriplet, ...]
    des: np.ndarray | None
    routing: Routing


def run_pipeline(
    images: Sequence[ImageInput],
    *,
    annotators: Sequence[Annotator],
    calibrator: Calibrator,
    critic: Critic,
    grounder: Grounder,
    segmenter: Segmenter,
    classifier: EmotionClassifier | None = None,
    des: DesEncoder | None = None,
    temperatures: Mapping[str, float] | None = None,
    auto_accept_threshold: float | None = None,
    max_triplets: int | None = None,
) -> list[Preannotation]:
    """All stages in one process: annotate, calibrate, critic per image, then ground,
    segment and DES for the batch. Any :class:`StageError` propagates."""
    temperatures = temperatures or {}
    per_image = []
    for image in images:
        results = annotate_all(annotators, image)
        calibration = calibrate(calibrator, image, results, temperatures, classifier)
        triplets = candidate_triplets(results, calibration, max_triplets=max_triplets)
        verdicts = critique(critic, image, results, calibration, triplets)
        per_image.append((results, calibration, triplets, verdicts))
    grounded = ground_and_segment(grounder, segmenter, images, [p[2] for p in per_image])
    vectors = encode_des(des, images) if des is not None else None
    return [
        Preannotation(
            image=image,
            results=tuple(results),
            calibration=calibration,
            critic=verdicts,
            triplets=grounded[i],
            des=None if vectors is None else vectors[i],
            routing=route(calibration, verdicts, auto_accept_threshold=auto_accept_threshold),
        )
        for i, (image, (results, calibration, _, verdicts)) in enumerate(zip(images, per_image))
    ]
