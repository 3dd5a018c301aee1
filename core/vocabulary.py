"""The words every app and every stage agree on (no Django).

* :class:`Taxonomy`: a dataset's emotion vocabulary: its ordered labels, the review
  page's key for each, an optional positive/negative grouping and a synonym map applied
  on import. :data:`MIKELS` (the default) and :data:`EKMAN` are built in
  (:data:`BUILTIN_TAXONOMIES`); :func:`taxonomy_from_spec` reads a stored or submitted one.
* :data:`EMOTIONS`: Mikels' eight emotions, positive first (``MIKELS.labels``); emotion
  distributions are mappings over exactly a taxonomy's labels, in its order when they
  are vectors.
* :data:`ROLES`: the roles of a B-A-S triplet's elements, in display order.
* :data:`DES_DIM`: the length of a DES vector (float32).
* :data:`USER_ROLES`: the people's roles; each is a Django group of the same name
  (``annotations.roles`` checks them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EMOTIONS: tuple[str, ...] = (
    "amusement",
    "awe",
    "contentment",
    "excitement",
    "anger",
    "disgust",
    "fear",
    "sadness",
)
POSITIVE_EMOTIONS = EMOTIONS[:4]
NEGATIVE_EMOTIONS = EMOTIONS[4:]
ROLES: tuple[str, ...] = ("background", "attribute", "subject")
DES_DIM = 1024

REVIEWER = "reviewer"
ADJUDICATOR = "adjudicator"
RESEARCHER = "researcher"
ADMIN = "admin"
RATER = "rater"  # scores images on a dataset's assessment scales (qa)
USER_ROLES: tuple[str, ...] = (REVIEWER, ADJUDICATOR, RESEARCHER, ADMIN, RATER)


# The review and adjudication pages' own keys (static/review/review_keys.js, the mask
# editor, adjudication.js); a taxonomy's label keys must be none of these.
DIGIT_KEYS: tuple[str, ...] = tuple("123456789")
FREE_LETTER_KEYS: tuple[str, ...] = tuple("dghijklmquw")
LABEL_KEYS: tuple[str, ...] = DIGIT_KEYS + FREE_LETTER_KEYS
MAX_LABELS = len(LABEL_KEYS)
MAX_LABEL_CHARS = 32
MAX_SYNONYMS = 2000
_LABEL = re.compile(r"^[a-z][a-z0-9_-]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class TaxonomyError(ValueError):
    """A taxonomy specification that cannot be used; ``field`` names the part that is wrong."""

    def __init__(self, field_name: str, detail: str):
        super().__init__(f"{field_name}: {detail}")
        self.field = field_name
        self.detail = detail


def normalise_word(word: str) -> str:
    """How an emotion word is compared: trimmed, lower case, inner spaces collapsed."""
    return " ".join(word.strip().lower().split())


@dataclass(frozen=True)
class Taxonomy:
    """A dataset's emotion vocabulary.

    ``labels`` in display order (the order of distribution vectors, confusion matrices and
    export categories); ``keys[i]`` is the review page's key for ``labels[i]``;
    ``positive``/``negative`` an optional polarity grouping (both empty: none; a label may
    be in neither, e.g. Ekman's surprise); ``synonyms`` maps other words (normalised by
    :func:`normalise_word`) to one of ``labels``.
    """

    name: str
    labels: tuple[str, ...]
    keys: tuple[str, ...]
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    synonyms: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_polarity(self) -> bool:
        return bool(self.positive or self.negative)

    def polarity(self, label: str) -> str | None:
        """"positive", "negative" or None (no grouping, or a label in neither group)."""
        if label in self.positive:
            return "positive"
        if label in self.negative:
            return "negative"
        return None

    def canonical(self, word: Any) -> str | None:
        """The label ``word`` names (itself or through a synonym), or None: never a guess."""
        if not isinstance(word, str):
            return None
        if word in self.labels:  # the common case, without normalising
            return word
        w = normalise_word(word)
        if w in self.labels:
            return w
        return self.synonyms.get(w)

    def to_spec(self) -> dict[str, Any]:
        """The JSON form stored on a dataset and returned by the API."""
        return {
            "name": self.name,
            "labels": list(self.labels),
            "keys": list(self.keys),
            "positive": list(self.positive),
            "negative": list(self.negative),
            "synonyms": dict(sorted(self.synonyms.items())),
        }


def _words(value: Any, field_name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaxonomyError(field_name, "must be a list of strings")
    return [normalise_word(v) for v in value]


def taxonomy_from_spec(spec: Any) -> Taxonomy:
    """A taxonomy from its specification, checked; raises :class:`TaxonomyError`.

    ``spec`` is the name of a built-in taxonomy (``"mikels"``, ``"ekman"``) or an object
    ``{"name", "labels", "keys"?, "positive"?, "negative"?, "synonyms"?}`` (docs/taxonomies.md).
    An object whose name is a built-in one must have that taxonomy's labels, in its order.
    """
    if isinstance(spec, str):
        builtin = BUILTIN_TAXONOMIES.get(spec.strip().lower())
        if builtin is None:
            raise TaxonomyError("taxonomy", f"unknown taxonomy {spec!r}; built in: {', '.join(BUILTIN_TAXONOMIES)} (or give an object)")
        return builtin
    if not isinstance(spec, Mapping):
        raise TaxonomyError("taxonomy", "must be a built-in name or an object with name and labels")
    unknown = sorted(set(spec) - {"name", "labels", "keys", "positive", "negative", "synonyms"})
    if unknown:
        raise TaxonomyError("taxonomy", f"unknown key(s) {', '.join(map(str, unknown))}")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name.strip().lower()):
        raise TaxonomyError("taxonomy.name", "must be a short name of lowercase letters, digits, - and _")
    name = name.strip().lower()
    labels = _words(spec.get("labels"), "taxonomy.labels")
    if not 2 <= len(labels) <= MAX_LABELS:
        raise TaxonomyError("taxonomy.labels", f"must list 2 to {MAX_LABELS} labels, got {len(labels)}")
    for label in labels:
        if len(label) > MAX_LABEL_CHARS or not _LABEL.match(label):
            raise TaxonomyError("taxonomy.labels", f"{label!r} is not a label (lowercase letters, digits, - and _, "
                                                   f"at most {MAX_LABEL_CHARS} characters, starting with a letter)")
    if len(set(labels)) != len(labels):
        raise TaxonomyError("taxonomy.labels", "a label appears twice")
    builtin = BUILTIN_TAXONOMIES.get(name)
    if builtin is not None and tuple(labels) != builtin.labels:
        raise TaxonomyError("taxonomy.labels", f"{name!r} is built in with the labels {', '.join(builtin.labels)}; "
                                               "give a custom taxonomy another name")
    keys = spec.get("keys")
    if keys is None:
        if len(labels) > len(DIGIT_KEYS):
            raise TaxonomyError("taxonomy.keys", f"more than {len(DIGIT_KEYS)} labels: give a key for each")
        keys = list(DIGIT_KEYS[: len(labels)])
    else:
        keys = _words(keys, "taxonomy.keys")
        if len(keys) != len(labels):
            raise TaxonomyError("taxonomy.keys", f"must give one key per label ({len(labels)}), got {len(keys)}")
        bad = [k for k in keys if k not in LABEL_KEYS]
        if bad:
            raise TaxonomyError("taxonomy.keys", f"{bad[0]!r} is not free on the review page; use one of {' '.join(LABEL_KEYS)}")
        if len(set(keys)) != len(keys):
            raise TaxonomyError("taxonomy.keys", "a key appears twice")
    groups = {}
    for group in ("positive", "negative"):
        words = _words(spec.get(group) or [], f"taxonomy.{group}")
        stray = [w for w in words if w not in labels]
        if stray:
            raise TaxonomyError(f"taxonomy.{group}", f"{stray[0]!r} is not one of the labels")
        groups[group] = tuple(w for w in labels if w in words)  # label order
    if set(groups["positive"]) & set(groups["negative"]):
        raise TaxonomyError("taxonomy.negative", "a label cannot be both positive and negative")
    synonyms_in = spec.get("synonyms") or {}
    if not isinstance(synonyms_in, Mapping):
        raise TaxonomyError("taxonomy.synonyms", "must be an object mapping words to labels")
    if len(synonyms_in) > MAX_SYNONYMS:
        raise TaxonomyError("taxonomy.synonyms", f"more than {MAX_SYNONYMS} entries")
    synonyms: dict[str, str] = {}
    for word, target in synonyms_in.items():
        w = normalise_word(word) if isinstance(word, str) else ""
        if not w or len(w) > 64:
            raise TaxonomyError("taxonomy.synonyms", f"{word!r} is not a word (1 to 64 characters)")
        if not isinstance(target, str) or normalise_word(target) not in labels:
            raise TaxonomyError("taxonomy.synonyms", f"{word!r} maps to {target!r}, which is not one of the labels")
        if w in labels:
            raise TaxonomyError("taxonomy.synonyms", f"{word!r} is itself a label")
        if w in synonyms and synonyms[w] != normalise_word(target):
            raise TaxonomyError("taxonomy.synonyms", f"{word!r} maps to two labels")
        synonyms[w] = normalise_word(target)
    return Taxonomy(name=name, labels=tuple(labels), keys=tuple(keys), synonyms=synonyms, **groups)


MIKELS = Taxonomy(
    name="mikels",
    labels=EMOTIONS,
    keys=DIGIT_KEYS[:8],
    positive=POSITIVE_EMOTIONS,
    negative=NEGATIVE_EMOTIONS,
    synonyms={
        "amused": "amusement", "funny": "amusement",
        "awed": "awe", "wonder": "awe",
        "content": "contentment", "contented": "contentment", "serenity": "contentment",
        "excited": "excitement", "thrill": "excitement", "thrilled": "excitement",
        "angry": "anger", "rage": "anger", "fury": "anger",
        "disgusted": "disgust", "revulsion": "disgust",
        "afraid": "fear", "scared": "fear", "fearful": "fear", "terror": "fear",
        "sad": "sadness", "sorrow": "sadness", "grief": "sadness",
    },
)
"""Mikels et al. (2005): four positive and four negative emotions; EmoVerse's CES labels."""

EKMAN = Taxonomy(
    name="ekman",
    labels=("anger", "disgust", "fear", "happiness", "sadness", "surprise"),
    keys=DIGIT_KEYS[:6],
    positive=("happiness",),
    negative=("anger", "disgust", "fear", "sadness"),
    synonyms={
        "angry": "anger", "rage": "anger", "fury": "anger", "annoyance": "anger",
        "disgusted": "disgust", "revulsion": "disgust",
        "afraid": "fear", "scared": "fear", "fearful": "fear", "terror": "fear",
        "happy": "happiness", "joy": "happiness", "joyful": "happiness",
        "sad": "sadness", "sorrow": "sadness", "grief": "sadness",
        "surprised": "surprise", "astonishment": "surprise", "amazement": "surprise",
    },
)
"""Ekman (1992): six basic emotions, alphabetical; surprise belongs to neither polarity.
The synonyms are ours: words whose meaning is that label, never a neighbouring emotion
(Mikels' amusement, awe, contentment, excitement are not mapped: that would be a guess)."""

BUILTIN_TAXONOMIES: dict[str, Taxonomy] = {t.name: t for t in (MIKELS, EKMAN)}
DEFAULT_TAXONOMY = MIKELS
