"""Pairing two annotations' triplets: pure functions, no Django.

Triplets are dicts in the EmoVerse JSONL form (``annotations.selectors.annotation_to_dict``):
a ``key`` and one object per role (``background``, ``attribute``, ``subject``) with a
``phrase`` and optionally a ``box`` (XYXY pixels). Extra fields are ignored and kept, so
callers may carry their own rows along.

Triplets with the same key are the same triplet (reviewers keep the keys of the answer
they started from). The rest — e.g. one of the two VLM annotators, whose triplets the
pipeline merged under new keys and often elaborated — are paired greedily, best first,
on :func:`triplet_similarity`, when it reaches :data:`ALIGN_MIN_SIMILARITY`.
"""

from __future__ import annotations

import re

from core.boxes import box_iou
from core.vocabulary import ROLES

ALIGN_MIN_SIMILARITY = 0.5


def normalize_words(phrase: str | None) -> str:
    """Lower case, whitespace collapsed: ``"  Dark  Clouds "`` -> ``"dark clouds"``."""
    return " ".join((phrase or "").lower().split())


_WORD = re.compile(r"[^\W_]+")
_FUNCTION_WORDS = frozenset({"a", "an", "the", "of", "with", "and", "in", "on", "at", "to", "is", "are", "its"})


def content_words(phrase: str | None) -> frozenset[str]:
    """The phrase's words, lower case, without punctuation and function words (all its
    words when it has nothing else): ``"Gleaming, ready to ride"`` -> {gleaming, ready, ride}."""
    words = _WORD.findall((phrase or "").lower())
    kept = frozenset(w for w in words if w not in _FUNCTION_WORDS)
    return kept or frozenset(words)


def phrase_overlap(a: str | None, b: str | None) -> float:
    """Overlap coefficient of the :func:`content_words`: shared words over the shorter
    phrase's, so a phrase and its elaboration match (``"garage"`` and ``"cluttered garage
    with metal shelves"``: 1.0); 0 when either has no word."""
    ta, tb = content_words(a), content_words(b)
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / min(len(ta), len(tb))


def triplet_similarity(a: dict, b: dict) -> float:
    """Mean over the roles both triplets have of the better of :func:`phrase_overlap` and
    box IoU; 0 when they share no role. An annotator's phrase-only triplet and the
    pipeline's (or a reviewer's) elaborated one score high on words alone."""
    scores = []
    for role in ROLES:
        ea, eb = a.get(role), b.get(role)
        if not ea or not eb:
            continue
        scores.append(max(phrase_overlap(ea.get("phrase"), eb.get("phrase")), box_iou(ea.get("box"), eb.get("box"))))
    return sum(scores) / len(scores) if scores else 0.0


def align_triplets(model: list[dict], human: list[dict]) -> list[tuple[dict | None, dict | None]]:
    """Pairs ``(model triplet, human triplet)``: same key first, then the most similar
    remaining ones (greedy, best first); ``None`` on the side that has no counterpart.
    Every triplet of both lists occurs in exactly one pair."""
    human_by_key = {t.get("key"): t for t in human if t.get("key")}
    pairs: list[tuple[dict | None, dict | None]] = []
    rest_model, used = [], set()
    for t in model:
        match = human_by_key.get(t.get("key"))
        if match is not None and id(match) not in used:
            pairs.append((t, match))
            used.add(id(match))
        else:
            rest_model.append(t)
    rest_human = [t for t in human if id(t) not in used]
    scored = sorted(
        ((triplet_similarity(m, h), i, j) for i, m in enumerate(rest_model) for j, h in enumerate(rest_human)),
        reverse=True,
    )
    taken_m, taken_h = set(), set()
    for score, i, j in scored:
        if score < ALIGN_MIN_SIMILARITY or i in taken_m or j in taken_h:
            continue
        pairs.append((rest_model[i], rest_human[j]))
        taken_m.add(i)
        taken_h.add(j)
    pairs += [(m, None) for i, m in enumerate(rest_model) if i not in taken_m]
    pairs += [(None, h) for j, h in enumerate(rest_human) if j not in taken_h]
    return pairs


__all__ = ["ALIGN_MIN_SIMILARITY", "align_triplets", "content_words", "normalize_words", "phrase_overlap",
           "triplet_similarity"]
