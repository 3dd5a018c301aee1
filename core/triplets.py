"""B-A-S triplets as phrases, before grounding (no Django).

How alike two triplets are, and which triplets of two answers pair, is
:mod:`core.alignment` (the one rule).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhraseTriplet:
    """A B-A-S triplet as phrases, before grounding."""

    background: str
    attribute: str
    subject: str

    def phrases(self) -> dict[str, str]:
        return {"background": self.background, "attribute": self.attribute, "subject": self.subject}

    def elements(self) -> dict[str, dict[str, str]]:
        """The triplet in the form :mod:`core.alignment` compares: ``{role: {"phrase": ...}}``
        for the roles with a phrase."""
        return {role: {"phrase": phrase} for role, phrase in self.phrases().items() if phrase}
