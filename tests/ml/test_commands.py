"""``manage.py preannotate`` and ``manage.py ml_check``."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from annotations.models import ImageStatus
from ml.config import reset_registry
from ml.models import PipelineRun, RunStatus
from tests.factories import DatasetFactory, ImageFactory
from demo.chat_server import Reply
from tests.ml.stage_fakes import api_pipeline_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured(settings, fake_openai, openai_key):
    settings.EMOVERSE_ML = api_pipeline_config(fake_openai.base_url, openai_key, version="cmd-v1", critic_model="c",
                                               des={"backend": "tests.ml.stage_fakes.FakeDes"})
    reset_registry()
    yield settings.EMOVERSE_ML
    reset_registry()


@pytest.fixture
def unconfigured(settings):
    settings.EMOVERSE_ML = {}
    reset_registry()
    yield
    reset_registry()


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_preannotate_runs_a_dataset(configured, django_capture_on_commit_callbacks):
    dataset = DatasetFactory(slug="cmd")
    for i in range(2):
        ImageFactory(dataset=dataset, status=ImageStatus.NEW, seed=300 + i)

    with django_capture_on_commit_callbacks(execute=True):
        out = _run("preannotate", "--dataset", "cmd", "--limit", "1")

    assert "Queued 1 image(s) of cmd for pipeline cmd-v1; 1 skipped" in out
    assert PipelineRun.objects.get().status == RunStatus.DONE


def test_preannotate_without_configuration_says_what_to_configure(unconfigured):
    DatasetFactory(slug="cmd")
    with pytest.raises(CommandError) as caught:
        _run("preannotate", "--dataset", "cmd")
    message = str(caught.value)
    assert "not configured" in message and "EMOVERSE_ML_CONFIG" in message
    for stage in ("annotators", "critic", "grounder", "segmenter"):
        assert f"no {stage} configured" in message


def test_preannotate_unknown_dataset():
    with pytest.raises(CommandError, match="no dataset with slug 'nope'"):
        _run("preannotate", "--dataset", "nope")


def test_ml_check_loads_and_runs_every_stage(configured, fake_openai):
    out = _run("ml_check")  # no image in the database: a sample photograph

    assert "Running on image skimage-astronaut (512x512" in out
    for line in ("load annotator model-a", "load critic", "load grounder", "annotate model-a", "annotate model-b",
                 "calibrate", "critic", "ground", "segment", "des"):
        assert f"ok       {line}" in out
    assert f"from model fake-a at {fake_openai.base_url}, prompt annotate_v1" in out
    assert "All configured stages work." in out


def test_ml_check_reports_failures_with_the_raw_output(configured, fake_openai):
    fake_openai.push(Reply("no json here"))
    out = io.StringIO()
    with pytest.raises(CommandError, match="missing or failing stages"):
        call_command("ml_check", stdout=out)
    text = out.getvalue()
    assert "FAILED   annotate model-a" in text and "malformed JSON" in text
    assert "raw output: 'no json here'" in text
    assert "ok       annotate model-b" in text


def test_ml_check_names_what_is_missing(configured, monkeypatch, openai_key):
    monkeypatch.delenv(openai_key)
    configured["grounder"] = None
    reset_registry()
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("ml_check", "--no-run", stdout=out)
    text = out.getvalue()
    assert f"MISSING  load annotator model-a (ml.stages.backends.openai_vlm.OpenAIAnnotator): environment variable {openai_key} is not set" in text
    assert "MISSING  grounder: no grounder configured" in text
    assert "ok       load segmenter" in text


@pytest.mark.ml
def test_ml_check_with_tiny_real_models_says_where_each_loaded_from(
    configured, tiny_grounding_dino_dir, tiny_sam_hf_dir, tiny_classifier_dir, tiny_qwen_dir
):
    configured["grounder"] = {"backend": "ml.stages.backends.grounding_dino.GroundingDinoGrounder",
                              "options": {"model_path": str(tiny_grounding_dino_dir), "device": "cpu", "box_threshold": 0.0, "text_threshold": 0.0}}
    configured["segmenter"] = {"backend": "ml.stages.backends.sam_hf.HFSamSegmenter", "options": {"model_path": str(tiny_sam_hf_dir), "device": "cpu"}}
    configured["classifier"] = {"name": "emovit-tiny", "backend": "ml.stages.backends.hf_classifier.HFEmotionClassifier",
                                "options": {"model_path": str(tiny_classifier_dir), "device": "cpu"}}
    configured["annotators"].append(
        {"name": "qwen-local", "backend": "ml.stages.backends.qwen_vl.QwenVLAnnotator", "options": {"model_path": str(tiny_qwen_dir), "max_new_tokens": 16}}
    )
    reset_registry()
    out = io.StringIO()

    with pytest.raises(CommandError):  # the random Qwen cannot write valid JSON
        call_command("ml_check", stdout=out)

    text = out.getvalue()
    for folder in (tiny_grounding_dino_dir, tiny_sam_hf_dir, tiny_classifier_dir, tiny_qwen_dir):
        assert str(folder) in text
    assert "FAILED   annotate qwen-local" in text and "raw output:" in text
    for stage in ("annotate model-a", "calibrate", "critic", "ground", "segment"):
        assert f"ok       {stage}" in text


def test_retry_failed_also_sends_stuck_runs_and_says_so(configured, django_capture_on_commit_callbacks):
    dataset = DatasetFactory(slug="cmd")
    image = ImageFactory(dataset=dataset, status=ImageStatus.PREANNOTATING, seed=310)
    run = PipelineRun.objects.create(image=image, pipeline_version="cmd-v1", status=RunStatus.RUNNING)
    PipelineRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True):
        out = _run("preannotate", "--dataset", "cmd", "--retry-failed")

    assert "Sent 0 failed image(s) again, and 1 stuck one(s) (queued or running with no worker holding them and no message of theirs in the broker)." in out
    assert PipelineRun.objects.get().status == RunStatus.DONE


def test_force_says_how_many_were_stuck(configured, django_capture_on_commit_callbacks):
    dataset = DatasetFactory(slug="cmd")
    image = ImageFactory(dataset=dataset, status=ImageStatus.PREANNOTATING, seed=311)
    run = PipelineRun.objects.create(image=image, pipeline_version="cmd-v1", status=RunStatus.QUEUED)
    PipelineRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True):
        out = _run("preannotate", "--dataset", "cmd", "--force")

    assert "Queued 1 image(s) of cmd for pipeline cmd-v1; 0 skipped" in out
    assert "1 of them were stuck (queued or running with no worker holding them and no message of theirs in the broker)." in out
    assert PipelineRun.objects.get().status == RunStatus.DONE


def test_ml_check_reports_a_corrupt_model_and_bad_options_and_goes_on(configured):
    configured["grounder"] = {"backend": "tests.ml.stage_fakes.CorruptWeightsGrounder", "options": {"model_path": "/models/gd"}}
    configured["calibrator"] = {"backend": "ml.stages.backends.temperature_calibrator.TemperatureCalibrator",
                                "options": {"classifier_weight": 2}}
    reset_registry()
    out = io.StringIO()

    with pytest.raises(CommandError, match="missing or failing stages"):
        call_command("ml_check", stdout=out)

    text = out.getvalue()
    assert "FAILED   load grounder (tests.ml.stage_fakes.CorruptWeightsGrounder) after" in text
    assert "OSError: Unable to load weights from /models/gd/model.safetensors: header too large" in text
    assert "MISSING  load calibrator" in text and "classifier_weight must be in [0, 1]" in text
    assert "ok       load segmenter" in text and "ok       annotate model-a" in text


def test_ml_check_with_a_missing_image_file_says_so_and_still_loads(configured):
    dataset = DatasetFactory(slug="cmd")
    image = ImageFactory(dataset=dataset, seed=312)
    Path(image.file.path).unlink()
    out = io.StringIO()

    with pytest.raises(CommandError, match="missing or failing stages"):
        call_command("ml_check", "--image", str(image.pk), stdout=out)

    text = out.getvalue()
    assert "FAILED   read the image: FileNotFoundError" in text
    assert "ok       load grounder" in text and "Running on image" not in text


@pytest.mark.ml
def test_ml_check_reports_images_per_second_per_stage(configured, fake_openai, tiny_grounding_dino_dir, tiny_sam_hf_dir):
    configured["grounder"] = {"backend": "ml.stages.backends.grounding_dino.GroundingDinoGrounder",
                              "options": {"model_path": str(tiny_grounding_dino_dir), "device": "cpu", "box_threshold": 0.0,
                                          "text_threshold": 0.0, "batch_size": 4, "dtype": "bfloat16"}}
    configured["segmenter"] = {"backend": "ml.stages.backends.sam_hf.HFSamSegmenter",
                               "options": {"model_path": str(tiny_sam_hf_dir), "device": "cpu", "batch_size": 4}}
    reset_registry()
    fake_openai.delay_s = 0.25  # each chat answer takes a quarter second

    out = _run("ml_check", "--throughput", "8")

    assert "Throughput on 8 copies of the image" in out
    rates = {m[0]: float(m[1]) for m in re.findall(r"speed    (.+?): 8 images in [\d.]+s = ([\d.]+) images/s", out)}
    assert set(rates) == {"annotate model-a", "annotate model-b", "critic", "ground", "segment", "des"}
    # Eight calls in flight together: well above the 4 images/s of one call after another.
    assert rates["annotate model-a"] > 6 and rates["critic"] > 6
    assert "annotate model-a: 8 images" in out and "(16 calls at once)" in out
    assert "ground: 8 images" in out and "(batch size 4)" in out
    assert fake_openai.max_in_flight == 8
    assert "All configured stages work." in out


def test_ml_check_throughput_zero_times_nothing_more(configured, fake_openai):
    out = _run("ml_check", "--throughput", "0")
    assert "Throughput" not in out and "speed" not in out
    assert len(fake_openai.requests) == 3  # two annotators and the critic, once each
