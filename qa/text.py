"""Normalised text of a QA pair, and the hash that finds duplicates (no Django)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from core.alignment import phrase_key


def pair_content_hash(question_type: str, question: str, options: Sequence[str] | None) -> str:
    """SHA-256 (hex) of the question type, the question and the options, each NFKC, case-folded
    and whitespace-collapsed (:func:`core.alignment.phrase_key`). Two pairs of one image with
    the same hash ask the same thing: the second is a duplicate, whatever its answer."""
    parts = [question_type, phrase_key(question), *(phrase_key(o) for o in options or ())]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
