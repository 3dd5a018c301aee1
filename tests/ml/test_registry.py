"""Backends chosen in configuration: dotted paths, options, caching, clear errors."""

from __future__ import annotations

import pytest

from ml.config import get_registry, reset_registry
from ml.stages.backends.openai_vlm import OpenAIAnnotator
from ml.stages.backends.temperature_calibrator import TemperatureCalibrator
from ml.stages.registry import Registry
from ml.stages.types import BackendNotConfigured


@pytest.fixture(autouse=True)
def _fresh():
    reset_registry()
    yield
    reset_registry()


def _config(openai_key, **overrides):
    annotator = {"backend": "ml.stages.backends.openai_vlm.OpenAIAnnotator", "options": {"model": "gpt-4o", "api_key_env": openai_key}}
    config = {
        "pipeline_version": "2026-11-a",
        "gpu_batch_size": 4,
        "annotators": [{"name": "gpt-4o", **annotator}, {"name": "gemini", **annotator}],
        "critic": {"backend": "ml.stages.backends.openai_critic.OpenAICritic", "options": {"model": "gpt-4o", "api_key_env": openai_key}},
        "grounder": {"backend": "tests.ml.stage_fakes.FakeGrounder"},
        "segmenter": {"backend": "tests.ml.stage_fakes.FakeSegmenter"},
        "classifier": None,
        "des": None,
    }
    config.update(overrides)
    return config


def test_backends_are_built_with_their_options_and_names(openai_key):
    registry = Registry(_config(openai_key))

    annotators = registry.annotators()

    assert [type(a) for a in annotators] == [OpenAIAnnotator, OpenAIAnnotator]
    assert [a.name for a in annotators] == ["gpt-4o", "gemini"]
    assert annotators[0].endpoint.model == "gpt-4o"
    assert isinstance(registry.calibrator(), TemperatureCalibrator)  # the default
    assert registry.classifier() is None and registry.des() is None
    assert registry.pipeline_version == "2026-11-a" and registry.gpu_batch_size == 4
    assert registry.check() == []


def test_each_backend_is_constructed_once_per_process(openai_key, settings):
    config = _config(openai_key)
    settings.EMOVERSE_ML = config
    registry = get_registry()
    settings.EMOVERSE_ML = dict(config)
    assert get_registry() is registry
    assert registry.grounder() is registry.grounder()
    assert registry.annotators()[0] is registry.annotators()[0]


def test_a_configuration_naming_the_backends_old_package_still_loads(openai_key):
    """The backends moved from ``ml.stages.backends`` to ``ml.stages.backends``; configuration
    files written before keep working."""
    config = _config(openai_key)
    for entry in config["annotators"]:
        entry["backend"] = "ml.stages.backends.openai_vlm.OpenAIAnnotator"
    config["calibrator"] = {"backend": "ml.stages.backends.temperature_calibrator.TemperatureCalibrator"}
    registry = Registry(config)

    assert registry.check() == []
    assert [type(a) for a in registry.annotators()] == [OpenAIAnnotator, OpenAIAnnotator]
    assert isinstance(registry.calibrator(), TemperatureCalibrator)
    assert registry.spec("calibrator").backend == "ml.stages.backends.temperature_calibrator.TemperatureCalibrator"


def test_stages_are_built_only_when_asked(openai_key):
    registry = Registry(_config(openai_key, grounder={"backend": "no.such.module.Grounder"}))
    registry.annotators()  # the io stages work without the gpu ones importable
    assert not registry.is_loaded("grounder")
    with pytest.raises(BackendNotConfigured, match="cannot import 'no.such.module'"):
        registry.grounder()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"annotators": []}, "no annotators configured"),
        ({"segmenter": None}, "no segmenter configured: set EMOVERSE_ML['segmenter']"),
        ({"grounder": {"backend": "ml.stages.backends.temperature_calibrator.NoSuchClass"}}, "has no 'NoSuchClass'"),
        ({"grounder": {"backend": "Grounder"}}, "is not a dotted path"),
        ({"grounder": {"backend": "x.Y", "opts": {}}}, "unknown key(s) ['opts']"),
        ({"gpu_batch_size": 0}, "gpu_batch_size"),
        ({"grounder": {"backend": "x.Y", "queue": "fast"}}, "['queue'] must be one of"),
    ],
)
def test_configuration_mistakes_are_named(openai_key, overrides, message):
    registry = Registry(_config(openai_key, **overrides))
    problems = registry.check()
    if not any(message in p for p in problems):
        stage = next(k for k in overrides if k in ("grounder", "segmenter"))
        with pytest.raises(BackendNotConfigured, match=message.replace("[", r"\[").replace("(", r"\(")):
            registry.stage(stage)


def test_annotators_need_distinct_names(openai_key):
    config = _config(openai_key)
    config["annotators"][1]["name"] = "gpt-4o"
    with pytest.raises(BackendNotConfigured, match="distinct"):
        Registry(config).annotators()


def test_bad_options_say_which_stage(openai_key):
    registry = Registry(_config(openai_key, calibrator={"backend": "ml.stages.backends.temperature_calibrator.TemperatureCalibrator", "options": {"weight": 1}}))
    with pytest.raises(BackendNotConfigured, match=r"EMOVERSE_ML\['calibrator'\]: bad options"):
        registry.calibrator()


def test_empty_configuration_is_not_configured():
    registry = Registry({})
    assert registry.configured is False
    problems = registry.check()
    assert any("EMOVERSE_ML_CONFIG" in p for p in problems)
    assert any("no critic configured" in p for p in problems)


def test_an_option_out_of_range_is_a_configuration_error_too(openai_key):
    """A constructor's ``ValueError`` (not only ``TypeError``) names the stage, not a traceback."""
    calibrator = {"backend": "ml.stages.backends.temperature_calibrator.TemperatureCalibrator", "options": {"classifier_weight": 2}}
    registry = Registry(_config(openai_key, calibrator=calibrator))
    with pytest.raises(BackendNotConfigured, match=r"EMOVERSE_ML\['calibrator'\]: bad options .*classifier_weight must be in \[0, 1\]"):
        registry.calibrator()


def test_the_task_queue_is_the_entry_s_else_the_backend_s_default_else_io(openai_key):
    qwen = {"name": "qwen-local", "backend": "ml.stages.backends.qwen_vl.QwenVLAnnotator", "options": {"model_path": "/models/qwen"}}
    config = _config(openai_key, critic={"backend": "ml.stages.backends.qwen_vl.QwenVLCritic", "options": {}, "queue": "io"})
    config["annotators"] = [config["annotators"][0], qwen]
    registry = Registry(config)

    assert [s.task_queue() for s in registry.annotator_specs()] == ["io", "gpu"]  # QwenVLAnnotator.default_queue
    assert registry.spec("critic").task_queue() == "io"  # the entry wins


def test_the_phrase_embedder_is_on_by_default_named_and_placed_from_settings(openai_key, settings):
    """Absent from the file: the bundled MiniLM through sentence-transformers, on the gpu queue,
    stored under the name the web process reads (EMOVERSE_PHRASE_EMBEDDING_MODEL, else the
    package's); null turns it off. Reading the queue imports neither torch nor the model."""
    config = _config(openai_key)
    spec = Registry(config).spec("embedder")
    assert spec.backend == "ml.stages.backends.sentence_embedder.SentenceEmbedder" and spec.task_queue() == "gpu"
    assert Registry({**config, "embedder": None}).spec("embedder") is None

    settings.EMOVERSE_ML = {**config, "embedder": {"backend": "tests.ml.stage_fakes.FakeEmbedder",
                                                   "options": {"path": "/elsewhere"}, "queue": "io"}}
    settings.EMOVERSE_PHRASE_EMBEDDING_MODEL = "/models/minilm"
    spec = get_registry().spec("embedder")
    assert (spec.name, spec.options["path"], spec.task_queue()) == ("/models/minilm", "/models/minilm", "io")
    assert get_registry().embedder().name == "/models/minilm"
