"""Fixtures of the ml tests."""

# --- ml-core fixtures (annotators, critic, calibration, pipeline, tasks) ---------------
from tests.ml.core_fixtures import fake_openai, ml_config, ml_image, openai_key, tiny_qwen_dir  # noqa: F401

# --- vision backend fixtures (tiny Grounding DINO, SAM, classifier, DES models) ---------
from tests.ml.vision_fixtures import (  # noqa: F401
    tiny_classifier_dir,
    tiny_des_clip_dir,
    tiny_des_qwen_dir,
    tiny_des_vit_dir,
    tiny_grounding_dino_dir,
    tiny_sam_checkpoint,
    tiny_sam_hf_dir,
)
