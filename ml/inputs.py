"""A stored image as a stage input: the one conversion every pipeline (pre-annotation, QA
generation, ``ml_check``) uses, so each sends the model the same bytes and taxonomy."""

from __future__ import annotations

import mimetypes

from annotations.models import Image
from ml.stages.types import ImageInput


def image_input(image: Image) -> ImageInput:
    """The stored file's bytes as a stage input, with its dataset's emotion taxonomy."""
    with image.file.open("rb") as handle:
        data = handle.read()
    mime = mimetypes.guess_type(image.file.name)[0] or "image/jpeg"
    return ImageInput(key=str(image.pk), data=data, width=image.width, height=image.height, mime_type=mime,
                      taxonomy=image.dataset.get_taxonomy())
