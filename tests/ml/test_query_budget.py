"""The orchestration's database cost: queries per image across the whole chain (enqueue, two
annotators, calibration, critic, the GPU batch and its save), counted with Django's
``CaptureQueriesContext``. The workers run many images at once, so the GPU stage takes a full
batch (``gpu_batch_size`` 8) as it does on a busy worker, and calibration and the critic share
one task (``ml.tasks.calibrate_critic``: both on the ``io`` queue), as the canvas sends them."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, ImageStatus
from ml import services, tasks
from ml.models import PipelineRun, RunStatus, StageResult
from tests.factories import DatasetFactory, ImageFactory

pytestmark = pytest.mark.django_db

N_IMAGES = 8
BUDGET_PER_IMAGE = 15


def test_the_whole_chain_costs_at_most_15_queries_per_image(ml_config, monkeypatch, django_capture_on_commit_callbacks):
    dataset = DatasetFactory(slug="budget")
    for i in range(N_IMAGES):
        ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=1200 + i)
    sent: list[int] = []
    monkeypatch.setattr(services, "_send", lambda run_ids, routes: sent.extend(run_ids))
    per_step: Counter[str] = Counter()

    def counted(step: str, work) -> None:
        with CaptureQueriesContext(connection) as queries:
            work()
        # Statements sent to the database. The savepoints are left out: they are this test's
        # transaction around each ``atomic`` block, a BEGIN/COMMIT (never logged) on a worker.
        per_step[step] += sum(
            not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT")) for q in queries.captured_queries
        )

    with django_capture_on_commit_callbacks(execute=True):
        counted("enqueue", lambda: services.enqueue_preannotation(dataset=dataset))
    assert len(sent) == N_IMAGES
    for run_id in sent:
        for name in ("model-a", "model-b"):
            counted(f"annotate:{name}", lambda r=run_id, n=name: tasks.annotate.apply(args=(r, n)))
        counted("calibrate+critic", lambda r=run_id: tasks.calibrate_critic.apply(args=(r,)))
    counted("gpu batch", lambda: tasks.gpu_ground_segment.apply(args=(sent[0],)))

    assert set(PipelineRun.objects.values_list("status", flat=True)) == {RunStatus.DONE}
    assert Annotation.objects.filter(author_name=PIPELINE_AUTHOR, is_current=True).count() == N_IMAGES
    # Tokens per run (two annotators and the critic, 1200 + 150 a call) are summed when the batch is saved.
    assert set(PipelineRun.objects.values_list("prompt_tokens", "completion_tokens")) == {(3 * 1200, 3 * 150)}
    total = sum(per_step.values())
    report = ", ".join(f"{step} {n / N_IMAGES:.2f}" for step, n in per_step.items())
    print(f"queries per image: {total / N_IMAGES:.2f} ({report})")
    assert total / N_IMAGES <= BUDGET_PER_IMAGE, report


def test_raw_model_outputs_are_stored_once(ml_config, django_capture_on_commit_callbacks):
    dataset = DatasetFactory(slug="raw-once")
    ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=1300)
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_preannotation(dataset=dataset)
    run = PipelineRun.objects.get()
    assert run.status == RunStatus.DONE
    answers = Annotation.objects.filter(image=run.image).exclude(author_name=PIPELINE_AUTHOR)
    assert answers.count() == 2 and all(a.raw_output for a in answers)
    for row in StageResult.objects.filter(run=run):
        assert row.raw_output == "", row.stage
        assert "raw_output" not in (row.output or {}), row.stage
    merged = Annotation.objects.get(image=run.image, author_name=PIPELINE_AUTHOR)
    assert merged.raw_output == "" and merged.critic["raw_output"]
    assert run.cost_usd >= 0 and set(run.timings) >= {"annotate:model-a", "calibrate", "critic", "ground", "save"}
