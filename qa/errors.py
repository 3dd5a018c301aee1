"""QA domain errors (mapped to HTTP answers by ``annotations.api_errors``: 400 for an invalid
value, 409 for a duplicate; to refused lines by the importer)."""

from __future__ import annotations

from annotations.errors import InvalidAnnotation, VersionConflict


class InvalidPair(InvalidAnnotation):
    """A QA pair or rating value failed validation; ``field`` names it (a JSON path). The API
    answers 400 ``{"detail", "field"}``."""


class DuplicatePair(VersionConflict):
    """The image has a current pair with the same content (:func:`qa.text.pair_content_hash`)."""


class AlreadyRated(VersionConflict):
    """The rater has rated this image on this scale already."""
