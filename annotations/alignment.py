"""Pairing two annotations' triplets: pure functions, no Django.

Triplets are dicts in the EmoVerse JSONL form (``annotations.selectors.annotation_to_dict``):
a ``key`` and one object per role (``background``, ``attribute``, ``subject``) with a
``phrase`` and optionally a ``box`` (XYXY pixels). Extra fields are ignored and kept, so
callers may carry their own rows along.

Triplets with the same key are the same triplet (reviewers keep the keys of the answer
they started from). The rest — e.g. one of the two VLM annotators, whose triplets the
pipeline merged under new keys — are paired greedily, best first, on
:func:`triplet_similarity`, when it reaches :data:`ALIGN_MIN_SIMILARITY`.
"""

from __future__ import annotations

from annotations.domain import ROLES

ALIGN_MIN_SIMILARITY = 0.5


def box_iou(a: list[float] | tuple[float, ...] | None, b: list[float] | tuple[float, ...] | None) -> float:
    """IoU of two XYXY pixel boxes; 0 when either is missing."""
    if not a or not b:
        return 0.0
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def normalize_words(phrase: str | None) -> str:
    """Lower case, whitespace collapsed: ``"  Dark  Clouds "`` -> ``"dark clouds"``."""
    return " ".join((phrase or "").lower().split())


def triplet_similarity(a: dict, b: dict) -> float:
    """Mean over the roles both triplets have of the better of phrase token overlap
    (Jaccard of :func:`normalize_words` tokens) and box IoU; 0 when they share no role."""
    scores = []
    for role in ROLES:
        ea, eb = a.get(role), b.get(role)
        if not ea or not eb:
            continue
        ta, tb = set(normalize_words(ea.get("phrase")).split()), set(normalize_words(eb.get("phrase")).split())
        jaccard = len(ta & tb) / len(ta | tb) if ta | tb else 0.0
        scores.append(max(jaccard, box_iou(ea.get("box"), eb.get("box"))))
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


__all__ = ["ALIGN_MIN_SIMILARITY", "align_triplets", "box_iou", "normalize_words", "triplet_similarity"]
