"""Validation of annotation values, shared by the importer, the services and the API.

Every function takes untrusted values (parsed JSON) and either returns a
normalised value or raises :class:`annotations.errors.InvalidAnnotation` with the
field that is wrong and why. Nothing here touches the database. Text follows the
policy of ``core.text`` (no NUL, no unpaired surrogate; invisible-only text is blank).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from annotations.errors import InvalidAnnotation
from core.masks import (
    canonical_counts,
    decode_mask,
    encode_mask,
    rle_string_covers,
    rle_string_run_count,
    rle_string_runs_plain,
)
from core.vocabulary import DES_DIM, MIKELS, ROLES, Taxonomy
from core.text import TextPolicyError, check_json_tree, check_text, is_blank

DISTRIBUTION_TOLERANCE = 1e-3
MAX_PHRASE_LENGTH = 300
MAX_TRIPLETS = 64
MAX_RLE_CHARS_PER_RUN = 7  # pycocotools writes a run of up to 2**31 pixels in at most 7 characters
ELEMENT_STATUSES = frozenset({"pending", "accepted", "accepted_unchecked", "edited", "rejected", "added"})
_SHOWN_CHARS = 60  # of a bad value, in an error message


@dataclass(frozen=True)
class ElementInput:
    role: str
    phrase: str
    box: tuple[float, float, float, float] | None = None
    box_score: float | None = None
    mask: dict | None = None  # {"size": [h, w], "counts": str}
    mask_score: float | None = None
    status: str = "pending"


@dataclass(frozen=True)
class TripletInput:
    elements: tuple[ElementInput, ...]
    key: str | None = None


@dataclass(frozen=True)
class CesInput:
    label: str
    confidence: float | None
    distribution: dict[str, float] | None


@dataclass(frozen=True)
class AnnotationInput:
    triplets: tuple[TripletInput, ...] = ()
    ces: CesInput | None = None
    des: bytes | None = None
    rationale: str = ""
    extra: dict = field(default_factory=dict)


def _is_number(value: Any) -> bool:
    """A finite int or float (not a bool) that a float holds: JSON integers are exact and
    unbounded, and one past ~1.8e308 (``10**400``) has no float (``math.isfinite`` raises)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _shown(value: Any) -> str:
    """``repr(value)`` for an error message, cut short: a bad value may be huge."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}… ({len(text):,} characters)"


def validate_text(value: Any, field_name: str) -> str:
    """A string that can be stored (:func:`core.text.check_text`: no NUL, no unpaired surrogate)."""
    try:
        return check_text(value, field=field_name)
    except TextPolicyError as exc:
        raise InvalidAnnotation(field_name, exc.detail) from None


def check_storable(value: Any, field_name: str) -> None:
    """Any JSON value (a critic, a draft, a raw distribution) that a database stores: no NUL
    nor unpaired surrogate in a string or key, no non-finite number (:func:`core.text.check_json_tree`)."""
    try:
        check_json_tree(value, path=field_name)
    except TextPolicyError as exc:
        raise InvalidAnnotation(exc.field, exc.detail) from None


def validate_label(value: Any, field_name: str = "ces.label", taxonomy: Taxonomy = MIKELS, *, synonyms: bool = False) -> str:
    """One of ``taxonomy``'s labels (case and outer spaces ignored); with ``synonyms`` (the
    importer) also a word of its synonym map, returned as the label it names."""
    label = taxonomy.canonical(value) if synonyms else (value.strip().lower() if isinstance(value, str) else None)
    if label is None or label not in taxonomy.labels:
        raise InvalidAnnotation(field_name, f"unknown emotion {_shown(value)}; expected one of {', '.join(taxonomy.labels)}"
                                            f"{' or a synonym of one (docs/taxonomies.md)' if synonyms else ''}")
    return label


def validate_distribution(value: Any, field_name: str = "ces.distribution", taxonomy: Taxonomy = MIKELS, *,
                          synonyms: bool = False) -> dict[str, float]:
    """A mapping over ``taxonomy``'s labels (missing ones count as 0) summing to 1 ± 1e-3.
    With ``synonyms`` a key may be a synonym of a label, but no two keys may name one label."""
    if not isinstance(value, Mapping):
        raise InvalidAnnotation(field_name, "must be an object mapping emotions to probabilities")
    named: dict[str, Any] = {}
    unknown = []
    for key, p in value.items():
        label = taxonomy.canonical(key) if synonyms else (key if key in taxonomy.labels else None)
        if label is None:
            unknown.append(key)
        elif label in named:
            raise InvalidAnnotation(field_name, f"{_shown(key)} names {label}, which another key names too")
        else:
            named[label] = p
    if unknown:
        raise InvalidAnnotation(field_name, f"unknown emotion(s) {', '.join(map(repr, sorted(unknown)))}; "
                                            f"expected {', '.join(taxonomy.labels)}")
    dist = {}
    for emotion in taxonomy.labels:
        p = named.get(emotion, 0.0)
        if not _is_number(p) or p < 0 or p > 1:
            raise InvalidAnnotation(field_name, f"{emotion} must be a probability in [0, 1], got {_shown(p)}")
        dist[emotion] = float(p)
    total = sum(dist.values())
    if abs(total - 1.0) > DISTRIBUTION_TOLERANCE:
        raise InvalidAnnotation(field_name, f"probabilities sum to {total:.6f}, not 1 (±{DISTRIBUTION_TOLERANCE})")
    return dist


def validate_ces(value: Any, taxonomy: Taxonomy = MIKELS, *, synonyms: bool = False) -> CesInput:
    if not isinstance(value, Mapping):
        raise InvalidAnnotation("ces", "must be an object with label, confidence and distribution")
    label = validate_label(value.get("label"), "ces.label", taxonomy, synonyms=synonyms)
    confidence = value.get("confidence")
    if confidence is not None and (not _is_number(confidence) or not 0 <= confidence <= 1):
        raise InvalidAnnotation("ces.confidence", f"must be a number in [0, 1], got {_shown(confidence)}")
    distribution = value.get("distribution")
    if distribution is not None:
        distribution = validate_distribution(distribution, "ces.distribution", taxonomy, synonyms=synonyms)
        if confidence is None:
            confidence = distribution[label]
    return CesInput(label=label, confidence=None if confidence is None else float(confidence), distribution=distribution)


def validate_box(value: Any, width: int, height: int, field_name: str = "box") -> tuple[float, float, float, float]:
    """Absolute pixel XYXY inside the image, with x0 < x1 and y0 < y1."""
    if not isinstance(value, (list, tuple)) or len(value) != 4 or not all(_is_number(v) for v in value):
        raise InvalidAnnotation(field_name, f"must be [x0, y0, x1, y1] in pixels (finite numbers), got {_shown(value)}")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not (x0 < x1 and y0 < y1):
        raise InvalidAnnotation(field_name, f"needs x0 < x1 and y0 < y1, got {_shown(value)}")
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise InvalidAnnotation(field_name, f"{_shown(value)} lies outside the {width}x{height} image")
    return (x0, y0, x1, y1)


def validate_mask(value: Any, width: int, height: int, field_name: str = "mask", *, allow_empty: bool = False) -> dict | None:
    """A COCO RLE of the image's size; compressed (string) or uncompressed (list) counts.

    Returns the compressed form ``{"size": [h, w], "counts": str}``, or ``None``
    for an empty mask when ``allow_empty`` is set. More runs than
    ``EMOVERSE_MAX_MASK_RUNS`` are refused before the runs are read.
    """
    if not isinstance(value, Mapping) or "size" not in value or "counts" not in value:
        raise InvalidAnnotation(field_name, "must be a COCO RLE object with 'size' and 'counts'")
    size = value["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise InvalidAnnotation(field_name, f"size must be [height, width], got {_shown(size)}")
    if list(size) != [height, width]:
        raise InvalidAnnotation(field_name, f"size {list(size)} differs from the image size [{height}, {width}]")
    counts = value["counts"]
    runs = _plain_runs(counts, height * width, field_name)
    if runs is None:
        return _validate_mask_decoded(counts, width, height, field_name, allow_empty=allow_empty)
    if min(runs) < 0 or sum(runs) != height * width:
        raise InvalidAnnotation(field_name, "counts do not cover the image exactly (corrupt RLE)"
                                if isinstance(counts, str) else "uncompressed counts must be non-negative runs covering every pixel")
    if not any(runs[1::2]):
        if allow_empty:
            return None
        raise InvalidAnnotation(field_name, "mask is empty (no foreground pixel)")
    return {"size": [height, width], "counts": canonical_counts(runs, height, width)}


# pycocotools holds a run and an image's pixel count in 32 bits; past this the masks take the decoding way.
_PLAIN_PIXELS = 2**31


def _plain_runs(counts: Any, pixels: int, field_name: str) -> list[int] | None:
    """The runs of ``counts`` when they are read without pycocotools: a list of ints, or a
    string pycocotools could have written (:func:`core.masks.rle_string_runs_plain`) no longer
    than ``EMOVERSE_MAX_MASK_RUNS`` (so with no more runs than that), after the same run-count
    check as :func:`_check_run_count`; None for anything else, which
    :func:`_validate_mask_decoded` checks the slow way with its own errors."""
    if pixels >= _PLAIN_PIXELS:
        return None
    if isinstance(counts, str):
        return rle_string_runs_plain(counts) if 0 < len(counts) <= settings.EMOVERSE_MAX_MASK_RUNS else None
    if isinstance(counts, list) and counts:
        _check_run_limit(len(counts), field_name)
        return counts if all(type(c) is int for c in counts) else None
    return None


def _validate_mask_decoded(counts: Any, width: int, height: int, field_name: str, *, allow_empty: bool) -> dict | None:
    """:func:`validate_mask`'s checks of ``counts`` through a decoded mask: any counts at all."""
    _check_run_count(counts, field_name)
    try:
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
                raise InvalidAnnotation(field_name, "uncompressed counts must be non-negative runs covering every pixel")
        elif isinstance(counts, str) and counts:
            if not rle_string_covers(counts, height * width):
                raise InvalidAnnotation(field_name, "counts do not cover the image exactly (corrupt RLE)")
        else:
            raise InvalidAnnotation(field_name, "counts must be a non-empty string or a list of run lengths")
        decoded = decode_mask({"size": [height, width], "counts": counts})
    except (UnicodeEncodeError, ValueError, TypeError) as exc:
        raise InvalidAnnotation(field_name, f"counts are not valid COCO RLE ({exc})") from exc
    if decoded.shape != (height, width):
        raise InvalidAnnotation(field_name, "counts do not decode to the stated size")
    # Re-encode: canonical compressed counts, and a check that the runs covered the image.
    canonical = encode_mask(decoded)
    if not decoded.any():
        if allow_empty:
            return None
        raise InvalidAnnotation(field_name, "mask is empty (no foreground pixel)")
    return {"size": [height, width], "counts": canonical["counts"]}


def _check_run_count(counts: Any, field_name: str) -> None:
    """Refuse more runs than ``EMOVERSE_MAX_MASK_RUNS``, and a string longer than its runs need."""
    if isinstance(counts, list):
        runs = len(counts)
    elif isinstance(counts, str):
        try:
            runs = rle_string_run_count(counts)
        except UnicodeEncodeError as exc:
            raise InvalidAnnotation(field_name, f"counts are not valid COCO RLE ({exc})") from exc
        if len(counts) > MAX_RLE_CHARS_PER_RUN * max(runs, 1):
            raise InvalidAnnotation(field_name, "counts are not valid COCO RLE (a run longer than any image)")
    else:
        return
    _check_run_limit(runs, field_name)


def _check_run_limit(runs: int, field_name: str) -> None:
    limit = settings.EMOVERSE_MAX_MASK_RUNS
    if runs > limit:
        raise InvalidAnnotation(field_name, f"the mask has {runs:,} runs, more than the limit of {limit:,} (EMOVERSE_MAX_MASK_RUNS)")


def validate_des(value: Any) -> bytes:
    """A list of 1024 finite numbers → 4096 bytes of little-endian float32."""
    if not isinstance(value, (list, tuple)):
        raise InvalidAnnotation("des", f"must be a list of {DES_DIM} numbers")
    if len(value) != DES_DIM:
        raise InvalidAnnotation("des", f"has {len(value)} values, expected {DES_DIM}")
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # past float32's range: inf, refused below
            array = np.asarray(value, dtype="<f4")
    except OverflowError as exc:  # an integer past what a float holds (10**400)
        raise InvalidAnnotation("des", "values must be finite numbers (one is too large for a float)") from exc
    except (TypeError, ValueError) as exc:
        raise InvalidAnnotation("des", "values must be numbers") from exc
    if array.ndim != 1 or not np.isfinite(array).all():
        raise InvalidAnnotation("des", "values must be finite numbers")
    return array.tobytes()


def des_to_list(data: bytes | memoryview | None) -> list[float] | None:
    if data is None:
        return None
    return np.frombuffer(bytes(data), dtype="<f4").astype(float).tolist()


def _score(value: Any, field_name: str) -> float | None:
    if value is None:
        return None
    if not _is_number(value) or not 0 <= value <= 1:
        raise InvalidAnnotation(field_name, f"must be a number in [0, 1], got {_shown(value)}")
    return float(value)


def validate_element(value: Any, role: str, width: int, height: int, field_name: str) -> ElementInput:
    if isinstance(value, str):
        value = {"phrase": value}
    if not isinstance(value, Mapping):
        raise InvalidAnnotation(field_name, "must be an object with a phrase")
    phrase = value.get("phrase")
    if not isinstance(phrase, str) or is_blank(validate_text(phrase, f"{field_name}.phrase")):
        raise InvalidAnnotation(f"{field_name}.phrase", "must be a non-empty string")
    phrase = " ".join(phrase.split())
    if len(phrase) > MAX_PHRASE_LENGTH:
        raise InvalidAnnotation(f"{field_name}.phrase", f"is longer than {MAX_PHRASE_LENGTH} characters")
    box = value.get("box")
    mask = value.get("mask")
    status = value.get("status", "pending")
    if not isinstance(status, str) or status not in ELEMENT_STATUSES:
        raise InvalidAnnotation(f"{field_name}.status", f"unknown status {_shown(status)}; expected one of {', '.join(sorted(ELEMENT_STATUSES))}")
    return ElementInput(
        role=role,
        phrase=phrase,
        box=None if box is None else validate_box(box, width, height, f"{field_name}.box"),
        box_score=_score(value.get("box_score"), f"{field_name}.box_score"),
        mask=None if mask is None else validate_mask(mask, width, height, f"{field_name}.mask"),
        mask_score=_score(value.get("mask_score"), f"{field_name}.mask_score"),
        status=status,
    )


def validate_triplet_keys(triplets: Sequence[TripletInput], prefix: str = "") -> None:
    """Each given ``key`` is a UUID string (as the database stores it), none twice.

    Raises :class:`InvalidAnnotation` for ``{prefix}triplets[i].key``. Separate from
    :func:`validate_annotation` so that each caller names the field its own way (the
    review services check keys under ``annotation.``).
    """
    seen: set[uuid.UUID] = set()
    for i, triplet in enumerate(triplets):
        if triplet.key is None:
            continue
        field_name = f"{prefix}triplets[{i}].key"
        try:
            key = uuid.UUID(triplet.key)
        except ValueError:
            raise InvalidAnnotation(
                field_name, f"must be a UUID string such as 0f8fad5b-d9cb-469f-a165-70867728950e, got {_shown(triplet.key)}"
            ) from None
        if key in seen:
            raise InvalidAnnotation(field_name, "appears twice")
        seen.add(key)


def validate_triplets(value: Any, width: int, height: int) -> tuple[TripletInput, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidAnnotation("triplets", "must be a list")
    if len(value) > MAX_TRIPLETS:
        raise InvalidAnnotation("triplets", f"more than {MAX_TRIPLETS} triplets")
    triplets = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidAnnotation(f"triplets[{i}]", "must be an object with background, attribute, subject")
        unknown = sorted(set(item) - set(ROLES) - {"key"})
        if unknown:
            raise InvalidAnnotation(f"triplets[{i}]", f"unknown key(s) {', '.join(unknown)}")
        elements = tuple(
            validate_element(item[role], role, width, height, f"triplets[{i}].{role}") for role in ROLES if item.get(role) is not None
        )
        if not elements:
            raise InvalidAnnotation(f"triplets[{i}]", "has no element")
        key = item.get("key")
        if key is not None and not isinstance(key, str):
            raise InvalidAnnotation(f"triplets[{i}].key", f"must be a UUID string, got {_shown(key)}")
        triplets.append(TripletInput(elements=elements, key=key))
    return tuple(triplets)


def validate_annotation(value: Mapping[str, Any], width: int, height: int, taxonomy: Taxonomy = MIKELS, *,
                        synonyms: bool = False) -> AnnotationInput:
    """Validate the annotation part of one EmoVerse JSONL object (see docs/emoverse-jsonl.md);
    the CES is over ``taxonomy`` (its synonym map applied with ``synonyms``: the importer)."""
    ces = value.get("ces")
    des = value.get("des")
    rationale = validate_text(value.get("rationale") or "", "rationale")
    return AnnotationInput(
        triplets=validate_triplets(value.get("triplets"), width, height),
        ces=None if ces is None else validate_ces(ces, taxonomy, synonyms=synonyms),
        des=None if des is None else validate_des(des),
        rationale=rationale,
    )
