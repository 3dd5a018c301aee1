"""Domain constants of the annotations app (no Django imports).

The emotion and role vocabularies every app and stage shares are in :mod:`core.vocabulary`.
"""

# Author name of the pipeline's merged, grounded and critic-checked model annotation
# (kind "model"). The two VLM annotators' own answers are stored beside it under their
# model names. Reviewers start from this one when it exists (see
# ``annotations.selectors.image_review_base``).
PIPELINE_AUTHOR = "pipeline"
