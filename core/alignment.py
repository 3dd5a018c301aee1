"""Pairing two answers' triplets by meaning: the one rule for every place two answers meet
(annotator vs annotator, model vs person, reviewer vs reviewer). Plain Python, numpy and
scipy; no Django.

Triplets are dicts in the EmoVerse JSONL form (``annotations.selectors.annotation_to_dict``):
a ``key`` and one object per role (``background``, ``attribute``, ``subject``) with a
``phrase`` and optionally a ``box`` (XYXY pixels) and a ``mask`` (COCO RLE). Extra fields
are ignored and kept, so callers may carry their own rows along.

The rule:

* Triplets with the same key are the same triplet (reviewers keep the keys of the answer
  they started from).
* The rest are paired by an optimal assignment (``scipy.optimize.linear_sum_assignment``)
  that maximises the summed :func:`triplet_similarity` of the pairs; a pair below
  :data:`PAIR_MIN_SIMILARITY` is no pair (both triplets stay unmatched).
* :func:`triplet_similarity` compares elements role by role (a background only with a
  background) and averages over the roles both triplets have, the subject counting
  twice (:data:`ROLE_WEIGHTS`: it names what the triplet is about). An element's similarity is
  the larger of its phrase similarity and, where both elements are grounded, their mask
  IoU (both masked) or box IoU (both boxed).
* Phrase similarity is the cosine of the phrases' stored sentence embeddings
  (:class:`PhraseVectors`, computed by workers with the MiniLM model), scaled so that
  :data:`PAIR_MIN_COSINE` counts as much as half the words shared:
  ``min(1, cosine / (2 * PAIR_MIN_COSINE))``. Where either phrase has no stored
  embedding, that pair of phrases falls back to the lexical rule, the overlap coefficient
  of their content words (:func:`word_overlap`), and the result says so
  (:attr:`Alignment.fallback`, :attr:`TripletPair.paired_by` ``"words"``). Identical
  phrases (after :func:`phrase_key`) need no embedding.

Two phrases *mean the same* (:func:`same_meaning`) when their text is the same after
:func:`phrase_key`, or their cosine reaches :data:`SAME_MEANING_COSINE`; without
embeddings, when their content words are the same.

The thresholds were chosen on the labelled phrase pairs in ``tests/data/phrase_pairs.tsv``
with all-MiniLM-L6-v2 (``python bench/alignment.py`` prints the figures):

* :data:`SAME_MEANING_COSINE`: the cosine with the best F1 on the set's ``dev`` half;
  its precision and recall on the ``test`` half are in docs/alignment.md.
* :data:`PAIR_MIN_COSINE`: the 95th percentile of the mean cosine of unrelated triplets
  (the set's phrases shuffled within their role), so two triplets pair only when they
  are more alike than 95 % of unrelated ones.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from core.boxes import box_iou
from core.masks import mask_iou
from core.vocabulary import ROLES

PAIR_MIN_SIMILARITY = 0.5
PAIR_MIN_COSINE = 0.33
SAME_MEANING_COSINE = 0.43
# The subject names what a triplet is about; background and attribute describe its scene.
ROLE_WEIGHTS: dict[str, float] = {"background": 1.0, "attribute": 1.0, "subject": 2.0}

KEY, MEANING, WORDS = "key", "meaning", "words"


# Scoring compares each phrase of an answer with several others: the normalisations of the
# phrases seen lately are kept (pure functions of the text; their results are immutable).
_PHRASE_CACHE = 16384


@functools.lru_cache(maxsize=_PHRASE_CACHE)
def phrase_key(phrase: str | None) -> str:
    """NFKC, case-folded, whitespace collapsed: ``"  Dark  Clouds "`` -> ``"dark clouds"``.
    Phrases with the same key are the same phrase (and share one stored embedding)."""
    return " ".join(unicodedata.normalize("NFKC", phrase or "").casefold().split())


def phrase_hash(phrase: str | None) -> str:
    """SHA-256 (hex) of :func:`phrase_key`: how a stored embedding is found."""
    return hashlib.sha256(phrase_key(phrase).encode("utf-8")).hexdigest()


_WORD = re.compile(r"[^\W_]+")
_FUNCTION_WORDS = frozenset({"a", "an", "the", "of", "with", "and", "in", "on", "at", "to", "is", "are", "its"})


@functools.lru_cache(maxsize=_PHRASE_CACHE)
def content_words(phrase: str | None) -> frozenset[str]:
    """The phrase's words, case-folded, without punctuation and function words (all its
    words when it has nothing else): ``"Gleaming, ready to ride"`` -> {gleaming, ready, ride}."""
    words = _WORD.findall(phrase_key(phrase))
    kept = frozenset(w for w in words if w not in _FUNCTION_WORDS)
    return kept or frozenset(words)


def word_overlap(a: str | None, b: str | None) -> float:
    """The lexical rule: overlap coefficient of the :func:`content_words`, shared words over
    the shorter phrase's, so a phrase and its elaboration match (``"garage"`` and
    ``"cluttered garage with metal shelves"``: 1.0); 0 when either has no word."""
    ta, tb = content_words(a), content_words(b)
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / min(len(ta), len(tb))


class PhraseVectors:
    """Stored sentence embeddings of phrases, found by :func:`phrase_key`.

    ``vectors`` maps a phrase (any spelling; it is keyed by :func:`phrase_key`) to a ``(D,)``
    float vector; rows are scaled to unit length here and kept as float32, so a dot product
    is the cosine. ``model`` names the embedding model (provenance only).
    """

    def __init__(self, vectors: Mapping[str, np.ndarray] | None = None, *, model: str = ""):
        self.model = model
        self._unit: dict[str, np.ndarray] = {}
        for phrase, vector in (vectors or {}).items():
            v = np.asarray(vector, dtype=np.float64).ravel()
            norm = float(np.linalg.norm(v))
            if norm > 0 and np.isfinite(norm):
                self._unit[phrase_key(phrase)] = (v / norm).astype(np.float32)

    def __len__(self) -> int:
        return len(self._unit)

    def __contains__(self, phrase: object) -> bool:
        return isinstance(phrase, str) and phrase_key(phrase) in self._unit

    def get(self, phrase: str | None) -> np.ndarray | None:
        return self._unit.get(phrase_key(phrase))

    def cosine(self, a: str | None, b: str | None) -> float | None:
        """Cosine of the two phrases' embeddings; ``None`` when either has none."""
        if not self._unit:
            return None
        va, vb = self.get(a), self.get(b)
        if va is None or vb is None or va.shape != vb.shape:
            return None
        cosine = float(va.astype(np.float64) @ vb)
        return cosine if -1.0 <= cosine <= 1.0 else float(np.clip(cosine, -1.0, 1.0))  # the clip only where it clips


NO_VECTORS = PhraseVectors()


@dataclass(frozen=True)
class PhraseComparison:
    """How alike two phrases are: ``similarity`` in [0, 1] on the pairing scale (module
    docstring), the embeddings' ``cosine`` (``None`` without them) and the ``method``:
    :data:`MEANING` (embeddings, or the same text) or :data:`WORDS` (the lexical fallback)."""

    similarity: float
    cosine: float | None
    method: str

    @property
    def fallback(self) -> bool:
        return self.method == WORDS


_SAME_TEXT = (1.0, 1.0, MEANING)


def _phrase_similarity(a: str | None, b: str | None, vectors: PhraseVectors) -> tuple[float, float | None, str]:
    """:func:`compare_phrases` as a plain ``(similarity, cosine, method)`` (the rule, once)."""
    key = phrase_key(a)
    if key and key == phrase_key(b):
        return _SAME_TEXT
    cosine = vectors.cosine(a, b)
    if cosine is None:
        return word_overlap(a, b), None, WORDS
    return min(1.0, max(0.0, cosine) / (2 * PAIR_MIN_COSINE)), cosine, MEANING


def compare_phrases(a: str | None, b: str | None, vectors: PhraseVectors = NO_VECTORS) -> PhraseComparison:
    """Compare two phrases by meaning where both have a stored embedding, else by words."""
    return PhraseComparison(*_phrase_similarity(a, b, vectors))


def same_meaning(a: str | None, b: str | None, vectors: PhraseVectors = NO_VECTORS) -> bool:
    """Whether two phrases say the same: the same text after :func:`phrase_key`, else a
    cosine of at least :data:`SAME_MEANING_COSINE`; without both embeddings, the same
    :func:`content_words`."""
    compared = compare_phrases(a, b, vectors)
    if compared.cosine is not None:
        return compared.cosine >= SAME_MEANING_COSINE
    return bool(content_words(a)) and content_words(a) == content_words(b)


def grounded_iou(a: Mapping, b: Mapping) -> float | None:
    """Mask IoU where both elements have a mask of one size, else box IoU where both have a
    box; ``None`` when they are not both grounded."""
    ma, mb = a.get("mask"), b.get("mask")
    if ma and mb and list(ma.get("size", ())) == list(mb.get("size", ())):
        return mask_iou(ma, mb)
    if a.get("box") and b.get("box"):
        return box_iou(a["box"], b["box"])
    return None


@dataclass(frozen=True)
class ElementComparison:
    similarity: float  # the larger of the phrase similarity and the grounded IoU
    phrase: PhraseComparison
    iou: float | None


_Element = tuple[float, tuple[float, float | None, str], float | None]  # ElementComparison's fields, plain


def _element_similarity(a: Mapping, b: Mapping, vectors: PhraseVectors) -> _Element:
    phrase = _phrase_similarity(a.get("phrase"), b.get("phrase"), vectors)
    iou = grounded_iou(a, b)
    return max(phrase[0], iou or 0.0), phrase, iou


def compare_elements(a: Mapping, b: Mapping, vectors: PhraseVectors = NO_VECTORS) -> ElementComparison:
    """Two elements of the same role: phrase similarity, and IoU where both are grounded."""
    similarity, phrase, iou = _element_similarity(a, b, vectors)
    return ElementComparison(similarity, PhraseComparison(*phrase), iou)


@dataclass(frozen=True)
class TripletComparison:
    similarity: float  # weighted mean over the shared roles (ROLE_WEIGHTS); 0 with none
    roles: dict[str, ElementComparison] = field(default_factory=dict)

    @property
    def method(self) -> str:
        """:data:`WORDS` when any role's phrases fell back to the lexical rule, else :data:`MEANING`."""
        return WORDS if any(e.phrase.fallback for e in self.roles.values()) else MEANING


def _triplet_similarity(a: Mapping, b: Mapping, vectors: PhraseVectors) -> tuple[float, dict[str, _Element]]:
    """:func:`compare_triplets` as plain tuples: the similarity and each shared role's element comparison."""
    roles: dict[str, _Element] = {}
    weights, terms = [], []
    for role in ROLES:
        ea, eb = a.get(role), b.get(role)
        if ea and eb:
            roles[role] = element = _element_similarity(ea, eb, vectors)
            weights.append(ROLE_WEIGHTS[role])
            terms.append(ROLE_WEIGHTS[role] * element[0])
    if not roles:
        return 0.0, roles
    return sum(terms) / sum(weights), roles


def compare_triplets(a: Mapping, b: Mapping, vectors: PhraseVectors = NO_VECTORS) -> TripletComparison:
    """Role by role over the roles both triplets have (module docstring)."""
    similarity, roles = _triplet_similarity(a, b, vectors)
    return TripletComparison(similarity, {
        role: ElementComparison(e, PhraseComparison(*phrase), iou) for role, (e, phrase, iou) in roles.items()})


def triplet_similarity(a: Mapping, b: Mapping, vectors: PhraseVectors = NO_VECTORS) -> float:
    return _triplet_similarity(a, b, vectors)[0]


@dataclass(frozen=True)
class TripletPair:
    """One row of an alignment: ``a`` and ``b`` (either ``None`` when unmatched), how they
    were paired (:data:`KEY`, :data:`MEANING`, :data:`WORDS`; empty when unmatched) and
    their :func:`triplet_similarity` (1.0 for a key pair, 0.0 when unmatched)."""

    a: dict | None
    b: dict | None
    paired_by: str = ""
    similarity: float = 0.0

    @property
    def matched(self) -> bool:
        return self.a is not None and self.b is not None


@dataclass(frozen=True)
class Alignment:
    """Every triplet of both sides in exactly one :class:`TripletPair`: key pairs and
    assigned pairs in ``a``'s order, then ``a``'s unmatched, then ``b``'s.

    ``words_only``: the normalised phrases that were compared by words for lack of a stored
    embedding, in a pair or left unmatched where embeddings might have paired them (empty
    when no result rests on the lexical fallback)."""

    pairs: tuple[TripletPair, ...]
    words_only: frozenset[str] = frozenset()

    @property
    def fallback(self) -> bool:
        """True when some phrases were compared by words (no embedding stored yet)."""
        return bool(self.words_only)

    @property
    def method(self) -> str:
        return WORDS if self.fallback else MEANING

    @property
    def overlap(self) -> float:
        """How much the two triplet sets overlap, in [0, 1]: the pairs' similarities summed
        over the size of the larger set, so an unmatched triplet lowers it; 0 when a side is empty."""
        n_a = sum(p.a is not None for p in self.pairs)
        n_b = sum(p.b is not None for p in self.pairs)
        if not n_a or not n_b:
            return 0.0
        return sum(p.similarity for p in self.pairs if p.matched) / max(n_a, n_b)

    def summary(self) -> dict:
        """:func:`alignment_summary` of this alignment."""
        return alignment_summary(self.words_only)


def alignment_summary(words_only: Iterable[str]) -> dict:
    """What a page or a log shows about how triplets were paired: ``method`` (:data:`MEANING`
    or :data:`WORDS`), ``fallback``, ``phrases_without_embedding`` and a one-line ``note``
    ("paired by words: no embeddings yet for 3 phrases"). ``words_only``: the phrases compared
    by words for lack of an embedding, over one or more alignments."""
    n = len(set(words_only))
    note = (f"paired by words: no embeddings yet for {n} phrase{'' if n == 1 else 's'}" if n
            else "paired by meaning (phrase embeddings)")
    return {"method": WORDS if n else MEANING, "fallback": bool(n), "phrases_without_embedding": n, "note": note}


def _assign(matrix: list[list[float]]) -> list[tuple[int, int]]:
    """The optimal one-to-one pairs of the weights ``matrix`` (N lists of M; maximum total),
    keeping only pairs at or above :data:`PAIR_MIN_SIMILARITY`. Pairs below it carry no
    weight, so the assignment never trades a good pair for one that would be dropped.

    When no two usable pairs share a triplet (the usual case for a few triplets), taking
    every usable pair is the only optimum, found without the solver."""
    usable_pairs = [(i, j) for i, row in enumerate(matrix) for j, w in enumerate(row) if w >= PAIR_MIN_SIMILARITY]
    if len({i for i, _ in usable_pairs}) == len({j for _, j in usable_pairs}) == len(usable_pairs):
        return usable_pairs
    weights = np.array(matrix, dtype=np.float64)
    usable = np.where(weights >= PAIR_MIN_SIMILARITY, weights, 0.0)
    rows, cols = linear_sum_assignment(usable, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if usable[i, j] >= PAIR_MIN_SIMILARITY]


def _words_only(roles: Mapping[str, _Element], a: Mapping, b: Mapping) -> set[str]:
    """The phrases of a pair whose roles (:func:`_triplet_similarity`'s) were compared by words."""
    out = set()
    for role, (_, phrase, _) in roles.items():
        if phrase[2] == WORDS:
            out |= {phrase_key(a[role].get("phrase")), phrase_key(b[role].get("phrase"))}
    return out


def _without_vectors(triplets: Iterable[Mapping], vectors: PhraseVectors) -> set[str]:
    return {p for p in triplet_phrases(triplets) if p not in vectors}


def align_triplets(a: Sequence[dict], b: Sequence[dict], vectors: PhraseVectors = NO_VECTORS) -> Alignment:
    """Pair ``a``'s triplets with ``b``'s: same key first, then the optimal assignment over
    :func:`triplet_similarity` (module docstring)."""
    b_by_key = {t.get("key"): t for t in b if t.get("key")}
    pairs: list[TripletPair] = []
    rest_a: list[dict] = []
    used: set[int] = set()
    for t in a:
        match = b_by_key.get(t.get("key"))
        if match is not None and id(match) not in used:
            pairs.append(TripletPair(t, match, KEY, 1.0))
            used.add(id(match))
        else:
            rest_a.append(t)
    rest_b = [t for t in b if id(t) not in used]
    comparisons = [[_triplet_similarity(x, y, vectors) for y in rest_b] for x in rest_a]
    assigned = dict(_assign([[similarity for similarity, _ in row] for row in comparisons]))
    taken_b = set(assigned.values())
    words_only: set[str] = set()
    for i, t in enumerate(rest_a):
        if i in assigned:
            similarity, roles = comparisons[i][assigned[i]]
            by_words = _words_only(roles, t, rest_b[assigned[i]])
            pairs.append(TripletPair(t, rest_b[assigned[i]], WORDS if by_words else MEANING, similarity))
            words_only |= by_words
    unmatched_a = [t for i, t in enumerate(rest_a) if i not in assigned]
    unmatched_b = [t for j, t in enumerate(rest_b) if j not in taken_b]
    if unmatched_a and unmatched_b:  # embeddings might have paired some of them
        words_only |= _without_vectors(unmatched_a, vectors) | _without_vectors(unmatched_b, vectors)
    pairs += [TripletPair(t, None) for t in unmatched_a]
    pairs += [TripletPair(None, t) for t in unmatched_b]
    words_only.discard("")
    return Alignment(tuple(pairs), frozenset(words_only))


def triplet_phrases(*answers: Iterable[Mapping]) -> set[str]:
    """The normalised phrases of every element of the given triplet lists (what to look up embeddings for)."""
    out = set()
    for triplets in answers:
        for t in triplets:
            for role in ROLES:
                element = t.get(role)
                if element and phrase_key(element.get("phrase")):
                    out.add(phrase_key(element.get("phrase")))
    return out
