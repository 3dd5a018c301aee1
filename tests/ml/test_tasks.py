"""The Celery edge, eagerly: enqueue, stages, idempotency, failures, retries, routing."""

from __future__ import annotations

import pytest
from pycocotools import mask as mask_utils

from annotations.domain import PIPELINE_AUTHOR
from annotations.models import Annotation, AnnotationKind, Decision, ImageStatus
from ml import runs, services, tasks
from ml.config import get_registry, reset_registry
from ml.models import PipelineRun, RunStatus, StageResult, StageStatus
from ml.selectors import dataset_progress, latest_temperatures
from ml.stages.types import BackendNotConfigured
from tests.factories import DatasetFactory, ImageFactory, make_annotation
from demo.chat_server import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    dataset = DatasetFactory(slug="storms")
    for i in range(3):
        ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=100 + i)
    return dataset


def _enqueue(capture, **kwargs):
    with capture(execute=True):
        return services.enqueue_preannotation(**kwargs)


def test_enqueue_runs_every_stage_and_fills_the_review_queue(ml_config, dataset, fake_openai, django_capture_on_commit_callbacks):
    result = _enqueue(django_capture_on_commit_callbacks, dataset=dataset)

    assert (result.enqueued, result.skipped, result.pipeline_version) == (3, 0, "test-v1")
    assert len(fake_openai.requests) == 9  # two annotators and a critic per image
    for image in dataset.images.all():
        run = PipelineRun.objects.get(image=image)
        assert run.status == RunStatus.DONE
        assert run.cost_usd == 0.0  # no prices configured
        stages = {s.stage: s.status for s in run.stages.all()}
        assert stages == {s: StageStatus.DONE for s in ("annotate:model-a", "annotate:model-b", "calibrate", "critic", "ground", "segment", "des", "save")}
        assert image.status == ImageStatus.IN_REVIEW
        assert image.label == "fear" and 0 < image.priority < 1
        authors = set(image.annotations.filter(is_current=True).values_list("author_name", flat=True))
        assert authors == {"model-a", "model-b", PIPELINE_AUTHOR}
        merged = run.annotation
        assert merged.author_name == PIPELINE_AUTHOR and merged.pipeline_version == "test-v1"
        assert merged.ces_label == "fear"
        assert merged.critic["label_verdict"] == "ok"
        assert merged.extra["agreement"]["label_match"] is False
        assert len(bytes(merged.des)) == 4096
        elements = [e for t in merged.triplets.all() for e in t.elements.all()]
        assert len(elements) == 6
        for element in elements:
            assert element.box is not None
            decoded = mask_utils.decode({"size": [element.mask_height, element.mask_width], "counts": element.mask_counts.encode()})
            assert decoded.shape == (image.height, image.width) and decoded.any()
        model_a = image.annotations.get(author_name="model-a")
        assert model_a.ces_raw_distribution["fear"] == pytest.approx(0.7)
        assert model_a.raw_output and model_a.prompt_version == "annotate_v1"


def test_redelivered_tasks_and_reenqueue_do_nothing_twice(ml_config, dataset, fake_openai, django_capture_on_commit_callbacks):
    _enqueue(django_capture_on_commit_callbacks, dataset=dataset)
    run = PipelineRun.objects.first()
    before = (Annotation.objects.count(), len(fake_openai.requests))

    tasks.annotate.apply(args=(run.pk, "model-a"))
    tasks.critic.apply(args=(run.pk,))
    tasks.gpu_ground_segment.apply(args=(run.pk,))
    again = _enqueue(django_capture_on_commit_callbacks, dataset=dataset)

    assert again.enqueued == 0 and again.skipped == 3
    assert (Annotation.objects.count(), len(fake_openai.requests)) == before
    assert PipelineRun.objects.count() == 3


def test_force_runs_again_with_new_versions_and_one_run(ml_config, dataset, django_capture_on_commit_callbacks):
    _enqueue(django_capture_on_commit_callbacks, dataset=dataset)
    first = PipelineRun.objects.first().annotation

    result = _enqueue(django_capture_on_commit_callbacks, dataset=dataset, force=True, limit=1)

    assert result.enqueued == 1
    run = PipelineRun.objects.get(image=first.image)
    assert run.status == RunStatus.DONE and run.enqueued == 2
    assert run.annotation.version > first.version
    first.refresh_from_db()
    assert first.is_current is False
    assert first.image.annotations.filter(is_current=True, author_name=PIPELINE_AUTHOR).count() == 1


def test_malformed_answer_fails_the_run_with_reason_and_raw_output_then_retry_works(
    ml_config, dataset, fake_openai, django_capture_on_commit_callbacks
):
    image = dataset.images.first()
    fake_openai.push(Reply('{"triplets": []'))  # the first annotator's answer

    _enqueue(django_capture_on_commit_callbacks, dataset=dataset, limit=1)

    run = PipelineRun.objects.get(image=image)
    assert run.status == RunStatus.FAILED
    assert run.failed_stage.startswith("annotate:") and "malformed JSON" in run.error
    failed = run.stages.get(stage=run.failed_stage)
    assert failed.status == StageStatus.FAILED and failed.raw_output == '{"triplets": []'
    image.refresh_from_db()
    assert image.status == ImageStatus.FAILED
    assert not image.annotations.exists()
    progress = dataset_progress(dataset=dataset, pipeline_version="test-v1", stage_names=services.pipeline_stage_names(get_registry()))
    assert progress.runs == {RunStatus.FAILED: 1}
    assert progress.failures == [run]

    with django_capture_on_commit_callbacks(execute=True):
        assert services.retry_failed(dataset=dataset).failed == 1

    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    image.refresh_from_db()
    assert image.status == ImageStatus.IN_REVIEW


def test_retry_keeps_the_stages_that_succeeded(ml_config, dataset, fake_openai, django_capture_on_commit_callbacks):
    critic_reply = Reply("the critic is confused")
    good = fake_openai.responder
    fake_openai.responder = lambda body: critic_reply if "careful critic" in str(body) else good(body)
    _enqueue(django_capture_on_commit_callbacks, dataset=dataset, limit=1)
    run = PipelineRun.objects.get()
    assert run.failed_stage == "critic"
    # A failed run shows what its done stages spent: the two annotators' calls (1200 + 150 tokens each).
    assert (run.prompt_tokens, run.completion_tokens) == (2 * 1200, 2 * 150)
    assert set(run.timings) == {"annotate:model-a", "annotate:model-b", "calibrate"}
    fake_openai.responder = good
    calls = len(fake_openai.requests)

    with django_capture_on_commit_callbacks(execute=True):
        services.retry_failed(dataset=dataset)

    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    assert len(fake_openai.requests) == calls + 1  # only the critic was asked again
    assert (run.prompt_tokens, run.completion_tokens) == (3 * 1200, 3 * 150)  # each call counted once
    assert run.stages.get(stage="annotate:model-a").attempt == 1


def test_transient_errors_are_retried(ml_config, dataset, fake_openai, django_capture_on_commit_callbacks):
    fake_openai.push(Reply("overloaded", status=503))

    _enqueue(django_capture_on_commit_callbacks, dataset=dataset, limit=1)

    run = PipelineRun.objects.get()
    assert run.status == RunStatus.DONE
    assert max(s.attempt for s in run.stages.all()) == 2


def test_transient_errors_give_up_after_max_retries(ml_config, dataset, fake_openai, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(tasks.annotate, "max_retries", 2)
    fake_openai.responder = lambda body: Reply("down", status=500)

    _enqueue(django_capture_on_commit_callbacks, dataset=dataset, limit=1)

    run = PipelineRun.objects.get()
    assert run.status == RunStatus.FAILED
    assert "HTTP 500" in run.error and "gave up after retries" in run.error


def test_gpu_stage_batches_ready_runs(ml_config, dataset):
    ids = []
    for image in dataset.images.all():
        run = PipelineRun.objects.create(image=image, pipeline_version="test-v1")
        for name in ("model-a", "model-b"):
            tasks.annotate.apply(args=(run.pk, name))
        tasks.calibrate.apply(args=(run.pk,))
        tasks.critic.apply(args=(run.pk,))
        ids.append(run.pk)

    tasks.gpu_ground_segment.apply(args=(ids[1],))
    for run_id in ids:
        tasks.gpu_ground_segment.apply(args=(run_id,))

    assert get_registry().grounder().batches == [3]
    assert set(PipelineRun.objects.values_list("status", flat=True)) == {RunStatus.DONE}
    assert StageResult.objects.get(run_id=ids[0], stage="ground").output == {"batch_size": 3}


def test_a_live_gpu_claim_blocks_others_until_it_expires(ml_config, dataset):
    image = dataset.images.first()
    run = PipelineRun.objects.create(image=image, pipeline_version="test-v1")
    for name in ("model-a", "model-b"):
        tasks.annotate.apply(args=(run.pk, name))
    tasks.calibrate.apply(args=(run.pk,))
    tasks.critic.apply(args=(run.pk,))

    claim = runs.gpu_claim(run.pk, token="first", batch_size=4, lease_seconds=600)
    assert claim.run_ids == [run.pk]
    with pytest.raises(runs.ClaimedElsewhere):
        runs.gpu_claim(run.pk, token="second", batch_size=4, lease_seconds=600)
    tasks.gpu_ground_segment.apply(args=(run.pk,))  # eagerly, another task leaves it to the holder
    assert PipelineRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    PipelineRun.objects.filter(pk=run.pk).update(gpu_claimed_until="2000-01-01T00:00:00Z")  # the holder died
    second = runs.gpu_claim(run.pk, token="second", batch_size=4, lease_seconds=600)
    runs.gpu_process(claim)  # the dead worker's stale claim does nothing
    assert PipelineRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    runs.gpu_process(second)
    assert PipelineRun.objects.get(pk=run.pk).status == RunStatus.DONE


def test_auto_accept_when_the_dataset_asks_and_everything_agrees(ml_config, dataset, django_capture_on_commit_callbacks):
    ml_config["annotators"][1]["options"]["model"] = "fake-a"  # both annotators agree
    reset_registry()
    dataset.auto_accept_threshold = 0.6
    dataset.save()

    _enqueue(django_capture_on_commit_callbacks, dataset=dataset, limit=1)

    run = PipelineRun.objects.get()
    assert run.auto_accepted is True
    assert run.annotation.decision == "approved"
    assert run.image.status == ImageStatus.APPROVED


def test_a_review_submitted_while_the_model_ran_wins(ml_config, dataset, django_capture_on_commit_callbacks):
    """The run finishes after a person reviewed the image: its answers are kept as
    history, nothing is auto-accepted, and the image stays where the person put it."""
    ml_config["annotators"][1]["options"]["model"] = "fake-a"  # would be auto-accepted
    reset_registry()
    dataset.auto_accept_threshold = 0.6
    dataset.save()
    image = dataset.images.order_by("id").first()
    run = PipelineRun.objects.create(image=image, pipeline_version="test-v1")
    for name in ("model-a", "model-b"):
        tasks.annotate.apply(args=(run.pk, name))
    tasks.calibrate.apply(args=(run.pk,))
    tasks.critic.apply(args=(run.pk,))
    make_annotation(image, kind=AnnotationKind.HUMAN, author_name="ann", payload_kwargs={"label": "awe"},
                    decision=Decision.FLAGGED)
    image.status = ImageStatus.FLAGGED
    image.save(update_fields=["status"])

    tasks.gpu_ground_segment.apply(args=(run.pk,))

    run.refresh_from_db()
    assert run.status == RunStatus.DONE and run.auto_accepted is False
    assert run.annotation.author_name == PIPELINE_AUTHOR and run.annotation.decision == Decision.NONE
    image.refresh_from_db()
    assert image.status == ImageStatus.FLAGGED


def test_images_people_decided_on_are_never_enqueued(ml_config, dataset, django_capture_on_commit_callbacks):
    ImageFactory(dataset=dataset, status=ImageStatus.APPROVED, seed=999)
    result = _enqueue(django_capture_on_commit_callbacks, dataset=dataset, force=True)
    assert result.enqueued == 3
    assert not PipelineRun.objects.filter(image__status=ImageStatus.APPROVED, auto_accepted=False).exists()


def test_an_item_with_a_submitted_review_is_not_annotated_again(ml_config, dataset, django_capture_on_commit_callbacks):
    """K = 2: the first review is in, the second not yet; --force must not swap the model
    answer the first reviewer saw (the second would review another answer)."""
    waiting = ImageFactory(dataset=dataset, status=ImageStatus.IN_REVIEW, seed=998)
    make_annotation(waiting, kind=AnnotationKind.HUMAN, author_name="ann", payload_kwargs={"label": "awe"},
                    decision=Decision.APPROVED)
    result = _enqueue(django_capture_on_commit_callbacks, dataset=dataset, force=True)
    assert result.enqueued == 3 and result.skipped == 0
    assert not PipelineRun.objects.filter(image=waiting).exists()
    waiting.refresh_from_db()
    assert waiting.status == ImageStatus.IN_REVIEW


def test_fitted_temperatures_are_used(ml_config, dataset, django_capture_on_commit_callbacks):
    assert latest_temperatures() == {}
    services.calibration_version_create(model_name="model-a", temperature=3.0, n_samples=10, ece_before=0.2, ece_after=0.05, reliability={}, created_by=None)
    services.calibration_version_create(model_name="model-a", temperature=2.0, n_samples=20, ece_before=0.2, ece_after=0.04, reliability={}, created_by=None)
    assert latest_temperatures() == {"model-a": 2.0}

    _enqueue(django_capture_on_commit_callbacks, dataset=dataset, limit=1)

    calibration = PipelineRun.objects.get().stages.get(stage="calibrate").output["calibration"]
    assert calibration["calibrated"]["model-a"]["fear"] < calibration["raw"]["model-a"]["fear"]
    assert calibration["calibrated"]["model-b"]["sadness"] == pytest.approx(calibration["raw"]["model-b"]["sadness"], abs=1e-4)


def test_calibration_version_rejects_bad_temperatures():
    with pytest.raises(ValueError, match="temperature"):
        services.calibration_version_create(model_name="m", temperature=0.0, n_samples=1, ece_before=None, ece_after=None, reliability={}, created_by=None)


def test_nothing_configured_says_what_to_configure(settings, dataset):
    settings.EMOVERSE_ML = {}
    reset_registry()
    with pytest.raises(BackendNotConfigured) as caught:
        services.enqueue_preannotation(dataset=dataset)
    message = str(caught.value)
    assert "EMOVERSE_ML_CONFIG" in message and "no grounder configured" in message
    assert not PipelineRun.objects.exists()


def test_canvas_routes_local_models_and_the_classifier_to_the_gpu_queue(ml_config, monkeypatch):
    ml_config["annotators"][1]["queue"] = "gpu"  # e.g. a local Qwen2.5-VL folder
    ml_config["classifier"] = {"name": "emovit", "backend": "tests.ml.stage_fakes.FakeClassifier"}
    reset_registry()
    sent = []
    monkeypatch.setattr("celery.canvas._chord.apply_async", lambda self, *a, **k: sent.append(self))

    services._send([7], services._routes(get_registry()))

    (canvas,) = sent  # a chord: the annotators in parallel, then the rest in a chain
    assert [(t.args, t.options.get("queue")) for t in canvas.tasks] == [((7, "model-a"), "io"), ((7, "model-b"), "gpu")]
    calibrate, critic, gpu = canvas.body.tasks
    assert (calibrate.name, calibrate.options["queue"]) == ("ml.tasks.calibrate", "gpu")
    assert critic.options["queue"] == "io"
    assert gpu.name == "ml.tasks.gpu_ground_segment"  # routed to gpu by CELERY_TASK_ROUTES ("ml.tasks.gpu_*")
