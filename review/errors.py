"""Errors of the click-to-refine dispatch (the API maps them to 503, 504 and 502)."""

from annotations.errors import DomainError


class RefineUnavailable(DomainError):
    """No segmenter or no GPU worker path is configured; the message says what to configure."""


class RefineTimeout(DomainError):
    """The GPU worker did not answer in time."""


class RefineFailed(DomainError):
    """The GPU worker answered with an error or an unusable mask."""
