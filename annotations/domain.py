"""Domain constants shared by every app (no Django imports).

The emotion and role vocabularies are defined once, in ``ml.stages.types``, so the
stages and the database agree.
"""

from ml.stages.types import DES_DIM, EMOTIONS, NEGATIVE_EMOTIONS, POSITIVE_EMOTIONS, ROLES

__all__ = ["DES_DIM", "EMOTIONS", "NEGATIVE_EMOTIONS", "POSITIVE_EMOTIONS", "ROLES"]

# Author name of the pipeline's merged, grounded and critic-checked model annotation
# (kind "model"). The two VLM annotators' own answers are stored beside it under their
# model names. Reviewers start from this one when it exists (see
# ``annotations.selectors.image_review_base``).
PIPELINE_AUTHOR = "pipeline"
