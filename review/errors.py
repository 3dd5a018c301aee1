"""Errors of the review app that the API maps itself: click-to-refine (503, 504, 502), a
draft over the size limit (413) and adjudication of an item that does not wait for it (404)."""

from annotations.errors import DomainError, NothingToDo


class NotInAdjudication(NothingToDo):
    """The image is not waiting for adjudication: adjudication pages and endpoints show nothing of it."""


class RefineUnavailable(DomainError):
    """No segmenter or no GPU worker path is configured; the message says what to configure."""


class RefineTimeout(DomainError):
    """The GPU worker did not answer in time."""


class RefineFailed(DomainError):
    """The GPU worker answered with an error or an unusable mask."""


class DraftTooLarge(DomainError):
    """A draft payload larger than ``EMOVERSE_MAX_DRAFT_BYTES``; nothing was saved."""
