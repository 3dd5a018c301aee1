"""COCO RLE masks through pycocotools (no Django).

A mask is stored and passed around as ``{"size": [h, w], "counts": str}``: pycocotools'
compressed run-length string, column-major, ``size`` in rows then columns. Functions
here also accept ``counts`` as ``bytes`` (what pycocotools returns) and, where they say
so, as an uncompressed list of run lengths. Arrays are ``(H, W)``, boolean or 0/1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def to_pycocotools(rle: Mapping[str, Any]) -> dict[str, Any]:
    """The RLE in the form pycocotools reads: ``size`` as ints, ``counts`` as compressed ``bytes``.

    ``counts`` may be a ``str`` (ASCII; a ``UnicodeEncodeError`` otherwise), ``bytes``, or
    a list of run lengths (compressed here).
    """
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return {"size": [height, width], "counts": counts}


def normalize_rle(rle: Mapping[str, Any]) -> dict[str, Any]:
    """``{"size": [h, w], "counts": str}`` of an RLE whose compressed ``counts`` are ``str`` or ``bytes``."""
    counts = rle["counts"]
    return {
        "size": [int(v) for v in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of an ``(H, W)`` boolean or 0/1 array: ``{"size": [H, W], "counts": str}``."""
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: Mapping[str, Any]) -> np.ndarray:
    """The ``(H, W)`` ``uint8`` 0/1 array of an RLE (``counts`` as str, bytes or a list of runs)."""
    return mask_utils.decode(to_pycocotools(rle))


def mask_area(rle: Mapping[str, Any]) -> int:
    """Foreground pixels of an RLE."""
    return int(mask_utils.area(to_pycocotools(rle)))


# pycocotools' ``area`` of a list builds a uint8 array of its length first: at most 255 per call.
_AREA_BATCH = 255


def mask_areas(rles: Sequence[Mapping[str, Any]]) -> list[int]:
    """Foreground pixels of each RLE, in one pycocotools call per 255."""
    out: list[int] = []
    for start in range(0, len(rles), _AREA_BATCH):
        batch = [to_pycocotools(rle) for rle in rles[start : start + _AREA_BATCH]]
        out += [int(v) for v in mask_utils.area(batch)]
    return out


def mask_bbox(rle: Mapping[str, Any]) -> list[float]:
    """The tight box ``[x, y, width, height]`` (COCO's ``bbox``) of an RLE's foreground."""
    return [float(v) for v in mask_utils.toBbox(to_pycocotools(rle))]


def mask_iou(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> float:
    """IoU of two RLE masks of the same size; 0 when either is missing.

    Raises ``ValueError`` when the sizes differ.
    """
    if not a or not b:
        return 0.0
    if list(a["size"]) != list(b["size"]):
        raise ValueError(f"mask sizes differ: {a['size']} vs {b['size']}")
    return float(mask_utils.iou([to_pycocotools(a)], [to_pycocotools(b)], [0])[0][0])


def rle_string_run_count(counts: str) -> int:
    """How many runs a compressed COCO RLE string encodes: its characters without the
    continuation bit, counted in one vectorised pass (a cheap bound before :func:`rle_string_runs`).
    Characters outside the RLE alphabet are not checked here."""
    data = np.frombuffer(counts.encode("ascii"), dtype=np.uint8)
    return int(np.count_nonzero((data - 48) & 0x20 == 0))


def rle_string_covers(counts: str, pixels: int) -> bool:
    """Whether the runs of a compressed COCO RLE string are all non-negative and cover exactly
    ``pixels`` (``ValueError`` for a broken string, as :func:`rle_string_runs`). Short strings
    are read in Python, long ones vectorised (:func:`rle_string_run_array`), whichever is faster."""
    if len(counts) < _PYTHON_CHARS:
        runs = rle_string_runs(counts)
        return min(runs, default=0) >= 0 and sum(runs) == pixels
    array = rle_string_run_array(counts)
    return not (array < 0).any() and array.sum() == pixels


_PYTHON_CHARS = 128  # below this length a string is read faster in Python than with numpy's fixed costs
# A number of at most this many characters fits an int64 (35 bits), and so do the sums of
# fewer than 2**27 of them; longer numbers (never written by pycocotools) are read one by one.
_VECTOR_CHARS = 7


def rle_string_run_array(counts: str) -> np.ndarray:
    """:func:`rle_string_runs` as an ``int64`` array, read in a few vectorised passes (the same
    runs and the same ``ValueError`` for a broken string). A number longer than pycocotools
    writes goes through :func:`rle_string_runs` (its runs then may not fit an int64: an object array)."""
    data = np.frombuffer(counts.encode("ascii"), dtype=np.uint8)
    if not data.size:
        return np.zeros(0, dtype=np.int64)
    c = data.astype(np.int64) - 48
    bad = (c < 0) | (c >= 64)
    if bad.any():
        raise ValueError(f"character {chr(data[int(np.argmax(bad))])!r} is not in the RLE alphabet")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("counts end in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if int(lengths.max()) > _VECTOR_CHARS or len(ends) >= 2**27:
        return np.array(rle_string_runs(counts), dtype=object)
    shift = 5 * (np.arange(len(c)) - np.repeat(starts, lengths))
    x = np.add.reduceat((c & 0x1F) << shift, starts)
    x -= np.where((c[ends] & 0x10) != 0, np.left_shift(1, 5 * lengths), 0)  # the sign bit of the last character
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])  # each run from the third on is a delta to the run two before it
    runs[2::2] = np.cumsum(x[2::2])
    return runs


def rle_string_runs(counts: str) -> list[int]:
    """Run lengths encoded in a compressed COCO RLE string (pycocotools' ``rleFrString``).

    pycocotools decodes any string without checking that the runs cover the image
    exactly, and then returns uninitialised memory, so validation needs the runs.
    """
    runs: list[int] = []
    data = counts.encode("ascii")
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            if p >= len(data):
                raise ValueError("counts end in the middle of a number")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {chr(data[p])!r} is not in the RLE alphabet")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs


# One number of a compressed string: continuation characters ('P'..'o') then a last one
# ('0'..'O'); at most 7 characters, the most pycocotools writes for a 32-bit run.
_RLE_NUMBER = re.compile("[\x50-\x6f]{0,6}[\x30-\x4f]")


def _number_value(token: str) -> int:
    x = 0
    for k, char in enumerate(token.encode("ascii")):
        x |= ((char - 48) & 0x1F) << (5 * k)
    if (token.encode("ascii")[-1] - 48) & 0x10:
        x |= -1 << (5 * len(token))
    return x


class _NumberValues(dict):
    """Value of each number of up to 2 characters, precomputed; longer ones computed when met."""

    def __missing__(self, token: str) -> int:
        return _number_value(token)


_NUMBER_VALUES = _NumberValues(
    {chr(48 + a): _number_value(chr(48 + a)) for a in range(32)}
    | {chr(80 + a) + chr(48 + b): _number_value(chr(80 + a) + chr(48 + b)) for a in range(32) for b in range(32)}
)


def rle_string_runs_plain(counts: str) -> list[int] | None:
    """:func:`rle_string_runs` of a string that pycocotools itself could have written (every
    character in the RLE alphabet, every number complete and of at most 7 characters): short
    strings read with one regular expression and a table, long ones vectorised; None for any
    other string (read it with :func:`rle_string_runs`, which says what is wrong)."""
    if len(counts) >= _PYTHON_CHARS:
        return _plain_run_array(counts)
    tokens = _RLE_NUMBER.findall(counts)
    if len("".join(tokens)) != len(counts):
        return None
    runs = list(map(_NUMBER_VALUES.__getitem__, tokens))
    runs[1::2] = accumulate(runs[1::2])  # each run from the third on is a delta to the run two before it
    runs[2::2] = accumulate(runs[2::2])
    return runs


def _plain_run_array(counts: str) -> list[int] | None:
    """:func:`rle_string_runs_plain` of a long string: :func:`rle_string_run_array`'s runs, None
    where it refuses the string or reads a number longer than pycocotools writes."""
    try:
        runs = rle_string_run_array(counts)
    except ValueError:  # UnicodeEncodeError included
        return None
    return None if runs.dtype == object else runs.tolist()


def canonical_counts(runs: list[int], height: int, width: int) -> str:
    """The compressed counts pycocotools' ``encode`` writes for the mask that non-negative
    ``runs`` (covering ``height * width`` pixels, background first) decode to: zero-length
    runs after the first merged away, without building the mask."""
    merged = runs if runs.count(0) == (runs[0] == 0) else _merge_empty_runs(runs)  # usually none to merge
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": merged}, height, width)
    return rle["counts"].decode("ascii")


def _merge_empty_runs(runs: list[int]) -> list[int]:
    merged = [runs[0]]
    for i in range(1, len(runs)):
        run = runs[i]
        if not run:
            continue
        if (i - len(merged)) % 2:  # the value of the last kept run (runs alternate 0, 1, ...): an empty run lay between
            merged[-1] += run
        else:
            merged.append(run)
    return merged
