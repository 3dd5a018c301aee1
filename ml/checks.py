"""System checks of the pipeline configuration (``manage.py check`` and every command's start).

A file ``EMOVERSE_ML_CONFIG`` names that is missing, is not JSON or is not a JSON object
is ``ml.E001``; entries of a readable file that are malformed (an annotator without a
name, options that are not an object, a bad ``gpu_batch_size``) are ``ml.E002``. Stages
the file leaves out are not errors here: a web process may configure only the segmenter
for click-to-refine; ``manage.py ml_check`` and the pipeline page list what is missing.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from ml.config import config_error, get_registry
from ml.stages.registry import OPTIONAL_STAGES, REQUIRED_STAGES
from ml.stages.types import BackendNotConfigured

HINT = "Fix the JSON file EMOVERSE_ML_CONFIG names, or unset EMOVERSE_ML_CONFIG (docs/ml-backends.md)."


@register()
def check_ml_config(app_configs=None, **kwargs) -> list[Error]:
    problem = config_error()
    if problem:
        return [Error(problem, hint=HINT, id="ml.E001")]
    if not getattr(settings, "EMOVERSE_ML_CONFIG", ""):
        return []
    registry = get_registry()
    config = settings.EMOVERSE_ML
    probes = []
    if "pipeline_version" in config:
        probes.append(lambda: registry.pipeline_version)
    if "gpu_batch_size" in config:
        probes.append(lambda: registry.gpu_batch_size)
    if "annotators" in config:
        probes.append(registry.annotator_specs)
    probes += [lambda s=stage: registry.spec(s) for stage in REQUIRED_STAGES + OPTIONAL_STAGES if stage in config]
    errors = []
    for probe in probes:
        try:
            probe()
        except BackendNotConfigured as exc:
            errors.append(
                Error(f"EMOVERSE_ML_CONFIG file {settings.EMOVERSE_ML_CONFIG!r}: {exc}", hint=HINT, id="ml.E002")
            )
    return errors
