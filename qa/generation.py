"""QA generation for one image: run (the body of :func:`qa.tasks.generate_qa`) and save.
Requests (one :class:`~qa.models.QAGeneration` per image and generator version, queued on
commit) are :func:`qa.pipeline.qa_generation_request`.

A run builds the image's context (its newest annotation's triplets, CES label and rationale:
:func:`qa.selectors.image_context`), plans balanced slots over the dataset's active categories
and dimensions (:func:`ml.stages.qa.plan_slots`, seeded by the image), asks the configured
generator (``EMOVERSE_ML["qa_generator"]``), shuffles each multiple-choice pair's options
(seeded by image, version and slot), and lets the configured critic (``qa_critic``) answer
every question blind. A pair whose answer the critic does not reproduce is saved with
priority 0 (reviewed first); an open or unchecked pair 0.5; an agreed one 1. Each pair is
validated again by :func:`qa.validation.validate_pair` and deduplicated against the image's
current pairs before it is stored.

Idempotent: a generation is unique per ``(image, generator_version)``; a done generation is
never redone, and the save happens under the generation's row lock, so a task delivered twice
stores its pairs once.
"""

from __future__ import annotations

import logging
from django.db import transaction
from django.utils import timezone

from core.triplets import PhraseTriplet
from ml.config import get_registry
from ml.inputs import image_input
from ml.stages import qa as stage
from ml.stages.types import StageError
from qa.errors import InvalidPair
from qa.models import AuthorKind, GenerationStatus, QAGeneration, QAPair, QAStatus
from qa.selectors import image_context, qa_axes, qa_axis_specs
from qa.validation import validate_pair

logger = logging.getLogger(__name__)

PRIORITY_DISAGREES, PRIORITY_UNCHECKED, PRIORITY_AGREES = 0.0, 0.5, 1.0




def qa_generation_begin(generation_id: int) -> QAGeneration | None:
    """Mark the generation running (one more attempt); ``None`` when it is done already."""
    with transaction.atomic():
        generation = QAGeneration.objects.select_for_update().filter(pk=generation_id).first()
        if generation is None or generation.status == GenerationStatus.DONE:
            return None
        generation.status, generation.attempt = GenerationStatus.RUNNING, generation.attempt + 1
        generation.save(update_fields=["status", "attempt", "updated_at"])
    return QAGeneration.objects.select_related("image", "image__dataset").get(pk=generation_id)


def qa_generation_failed(generation_id: int, error: StageError, *, retrying: bool = False) -> None:
    """Record a failure: ``queued`` again when a retry follows, else ``failed``."""
    status = GenerationStatus.QUEUED if retrying else GenerationStatus.FAILED
    QAGeneration.objects.filter(pk=generation_id).exclude(status=GenerationStatus.DONE).update(
        status=status,
        error=error.reason[:5000],
        raw_output=(error.raw_output or "")[:100_000],
        finished_at=None if retrying else timezone.now(),
    )


def qa_generation_run(generation_id: int) -> QAGeneration | None:
    """Generate, self-check and save the pairs of one generation (see the module docstring).
    Raises :class:`StageError` (transient ones are retried by the task)."""
    generation = qa_generation_begin(generation_id)
    if generation is None:
        return None
    registry = get_registry()
    generator, critic = registry.qa_generator(), registry.qa_critic()
    if generator is None:
        raise StageError("no QA generator configured (EMOVERSE_ML['qa_generator'])")
    image = generation.image
    context = image_context(image_id=image.pk)
    categories, dimensions = qa_axis_specs(dataset_id=image.dataset_id)
    axes = [
        stage.AxisSpec(key=k, name=n, description=d, question_types=tuple(t or ()))
        for k, n, d, t in [*categories, *dimensions]
    ]
    try:
        slots = stage.plan_slots(
            axes[: len(categories)], axes[len(categories) :], generator.pairs_per_image, seed=image.pk
        )
    except ValueError as exc:
        raise StageError(f"cannot plan QA slots: {exc}") from exc
    picture = image_input(image)
    stage_context = stage.QAContext(
        triplets=tuple(PhraseTriplet(*t) for t in context.triplets),
        label=context.label,
        rationale=context.rationale,
        emotions=picture.taxonomy.labels,  # the dataset's taxonomy
    )
    result = generator.generate(picture, stage_context, slots, axes)
    pairs = [stage.shuffle_options(pair, seed=(image.pk, generation.generator_version)) for pair in result.pairs]
    checked = critic.answer(picture, pairs) if critic is not None and pairs else None
    return qa_generation_save(
        generation_id=generation_id, result=result, pairs=pairs, checked=checked, element_ids=context.element_ids
    )


@transaction.atomic
def qa_generation_save(
    *,
    generation_id: int,
    result: stage.QAGenerationResult,
    pairs: list[stage.GeneratedPair],
    checked: stage.QACriticResult | None,
    element_ids: dict[tuple[int, str], int],
) -> QAGeneration:
    """Store the pairs (each validated and deduplicated) and mark the generation done, under
    its row lock; a generation that is done already is returned as it is."""
    generation = QAGeneration.objects.select_for_update().select_related("image").get(pk=generation_id)
    if generation.status == GenerationStatus.DONE:
        return generation
    image = generation.image
    axes = qa_axes(dataset_id=image.dataset_id)
    answers = {a.index: a for a in checked.answers} if checked is not None else {}
    taken = set(QAPair.objects.filter(image=image, is_current=True).values_list("content_hash", flat=True))
    rows, links, mismatches, dropped = [], [], 0, list(result.dropped)
    for i, pair in enumerate(pairs):
        raw = {
            "category": pair.slot.category,
            "dimension": pair.slot.dimension,
            "type": pair.slot.question_type,
            "question": pair.question,
            "options": list(pair.options) if pair.options else None,
            "answer": pair.answer_index if pair.options else pair.answer,
            "rationale": pair.rationale,
        }
        try:
            values = validate_pair(raw, categories=axes.categories, dimensions=axes.dimensions)
        except InvalidPair as exc:
            dropped.append(f"slot {pair.slot.index}: {exc}")
            continue
        if values.content_hash in taken:
            dropped.append(f"slot {pair.slot.index}: the image has this question already")
            continue
        taken.add(values.content_hash)
        answer = answers.get(i)
        agrees = stage.critic_agrees(pair, answer)
        mismatches += agrees is False
        priority = PRIORITY_UNCHECKED if agrees is None else PRIORITY_AGREES if agrees else PRIORITY_DISAGREES
        critic_answer = "" if answer is None else str(answer.option) if answer.option is not None else answer.answer
        rows.append(
            QAPair(
                dataset_id=image.dataset_id,
                image=image,
                category_id=axes.category_ids[values.category],
                dimension_id=axes.dimension_ids[values.dimension],
                question_type=values.question_type,
                question=values.question,
                options=list(values.options) if values.options is not None else None,
                answer_index=values.answer_index,
                answer=values.answer,
                rationale=values.rationale,
                content_hash=values.content_hash,
                status=QAStatus.PENDING,
                priority=priority,
                critic_answer=critic_answer[:5000],
                critic_agrees=agrees,
                author_kind=AuthorKind.MODEL,
                author_name=result.model,
                model_name=result.model,
                prompt_version=result.prompt_version,
                generation=generation,
            )
        )
        links.append([element_ids[ref] for ref in pair.elements if ref in element_ids])
    QAPair.objects.bulk_create(rows)
    through = QAPair.elements.through
    through.objects.bulk_create([through(qapair_id=row.pk, element_id=e) for row, ids in zip(rows, links) for e in ids])
    generation.status, generation.finished_at, generation.error = GenerationStatus.DONE, timezone.now(), ""
    generation.model_name, generation.prompt_version = result.model, result.prompt_version
    generation.critic_name = checked.model if checked is not None else ""
    generation.raw_output = result.raw_output[:100_000]
    generation.critic_output = checked.raw_output[:100_000] if checked is not None else ""
    generation.pairs_created, generation.critic_mismatches = len(rows), mismatches
    if dropped:
        generation.error = "left out: " + "; ".join(dropped)[:5000]
    generation.save()
    logger.info("QA generation %s: %d pairs, %d critic mismatches", generation.pk, len(rows), mismatches)
    return generation
