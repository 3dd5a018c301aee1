"""QA domain errors (mapped to HTTP answers by the APIs, to refused lines by the importer)."""

from __future__ import annotations

from annotations.errors import DomainError


class InvalidPair(DomainError):
    """A QA pair or rating value failed validation; ``field`` names it (a JSON path)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DuplicatePair(DomainError):
    """The image has a current pair with the same content (:func:`qa.text.pair_content_hash`)."""


class AlreadyRated(DomainError):
    """The rater has rated this image on this scale already."""
