"""Requests for QA generation: one :class:`~qa.models.QAGeneration` per image and generator
version, its task (:func:`qa.tasks.generate_qa`) queued when the transaction commits."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from annotations.models import Image
from ml.config import get_registry
from ml.stages.types import BackendNotConfigured
from qa.models import GenerationStatus, QAGeneration
from qa.services import qa_config_install_defaults
from qa.tasks import generate_qa


def qa_generation_request(*, image_ids: Iterable[int]) -> list[int]:
    """Queue QA generation for the images with the configured generator's version
    (``EMOVERSE_ML["qa_version"]``) on the generator's queue (``io`` for an API model).
    Images whose generation of this version is queued, running or done are left alone; failed
    ones are queued again. Returns the generation ids queued. Raises :class:`BackendNotConfigured`."""
    registry = get_registry()
    spec = registry.spec("qa_generator")
    if spec is None:
        raise BackendNotConfigured("no QA generator configured: set EMOVERSE_ML['qa_generator'] (docs/ml-backends.md)")
    version, queue = registry.qa_version, spec.task_queue()
    ids = list(image_ids)
    with transaction.atomic():
        datasets = {
            image.dataset_id: image.dataset for image in Image.objects.filter(pk__in=ids).select_related("dataset")
        }
        for dataset in datasets.values():
            qa_config_install_defaults(dataset=dataset)
        QAGeneration.objects.bulk_create(
            [QAGeneration(image_id=pk, generator_version=version) for pk in ids], ignore_conflicts=True
        )
        wanted = QAGeneration.objects.filter(image_id__in=ids, generator_version=version)
        wanted.filter(status=GenerationStatus.FAILED).update(status=GenerationStatus.QUEUED, error="", attempt=0)
        queued = list(wanted.filter(status=GenerationStatus.QUEUED).values_list("id", flat=True))
        transaction.on_commit(lambda: [generate_qa.apply_async(args=[pk], queue=queue) for pk in queued])
    return queued
