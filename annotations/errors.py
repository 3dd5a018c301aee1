"""Domain errors. Views and the API map them to HTTP answers; domain code never
raises HTTP status codes itself."""

from __future__ import annotations


class DomainError(Exception):
    """Base class for errors a user can act on."""


class InvalidAnnotation(DomainError):
    """An annotation value failed validation. ``field`` names the offending value."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def __reduce__(self):  # pickled by the importer's worker processes
        return type(self), (self.field, self.message)


class InvalidImage(DomainError):
    """A file is not a usable image (corrupt, truncated, too large, not an image)."""


class VersionConflict(DomainError):
    """The object changed since the client read it. ``changes`` says what changed."""

    def __init__(self, message: str, *, changes: dict | None = None):
        super().__init__(message)
        self.changes = changes or {}


class NotAllowed(DomainError):
    """The user may not perform this action on this object (beyond role checks)."""


class NothingToDo(DomainError):
    """The request is valid but there is nothing to act on (e.g. empty queue)."""
