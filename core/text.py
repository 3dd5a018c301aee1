"""The one text and number policy of every boundary: query parameters, JSON bodies,
JSON stored as JSON (drafts, raw model output, critic verdicts), imports, admin forms.

Refused wherever it comes from, in the same words:

- text with a NUL character (PostgreSQL's text and jsonb cannot hold one);
- text with an unpaired UTF-16 surrogate (a ``"\\ud83d"`` escape without its pair:
  no UTF-8 encodes it, so no database stores it and no response can carry it);
- a number that is not finite: ``NaN``, ``Infinity``, or one past a double
  (``1e400`` reads as infinity);
- an integer outside what its column holds (ids: signed 64 bits);
- a datetime with a UTC offset no time zone has (beyond ±14:00), or one that leaves
  the years 1 to 9999 once it is moved to UTC.

Text made only of whitespace and invisible characters (zero-width space, joiners,
word joiner, byte-order mark, direction marks) is blank where blank is refused
(:func:`is_blank`). Integers inside JSON trees are stored as they are (jsonb and
SQLite keep any size); the fields that use them check their own range.

The API and the importer apply these same functions, so whatever the API accepts an
export writes and the importer reads back. Callers turn :class:`TextPolicyError` into
their own answer: a 400 ``{"detail", "field"}``, a refused import line.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Invisible although not whitespace (``str.isspace``) nor a format character (category Cf,
# which holds U+200B-U+200D, U+2060, U+FEFF and the direction marks): combining grapheme
# joiner, the Hangul fillers and the blank Braille pattern.
_INVISIBLE_OTHER = frozenset("\u034f\u115f\u1160\u3164\uffa0\u2800")
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
MAX_UTC_OFFSET = timedelta(hours=14)  # the widest real time zones run from -12:00 to +14:00
NOT_FINITE = "number is not finite (NaN, Infinity, or too large for a double)"


class TextPolicyError(Exception):
    """A value that no boundary accepts. ``field`` names where it is, as the caller sees
    it: a query parameter (``dataset``) or a JSON path (``element_decisions[0].before``);
    ``detail`` says what is wrong, for a person."""

    def __init__(self, field: str, detail: str):
        super().__init__(f"{field}: {detail}" if field else detail)
        self.field = field
        self.detail = detail


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored (a NUL, an unpaired surrogate), or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    char = found.group()
    if char == "\x00":
        return "text contains a NUL character"
    return f"text contains an unpaired surrogate (\\u{ord(char):04x})"


def check_text(value: Any, *, field: str) -> str:
    """``value`` when it is text that can be stored; raises :class:`TextPolicyError` otherwise."""
    if not isinstance(value, str):
        raise TextPolicyError(field, "must be a string")
    problem = text_problem(value)
    if problem:
        raise TextPolicyError(field, problem)
    return value


def _invisible(char: str) -> bool:
    return char.isspace() or char in _INVISIBLE_OTHER or unicodedata.category(char) in _INVISIBLE_CATEGORIES


def is_blank(value: str) -> bool:
    """True for text that shows nothing: empty, whitespace, zero-width and other invisible characters."""
    return all(map(_invisible, value))


def _shown_key(key: str) -> str:
    return ascii(key)[1:-1]  # a bad key written with escapes: ``a\x00``, ``\ud83d``


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check_json_tree(value: Any, *, path: str = "") -> None:
    """Refuse what no database stores anywhere in parsed JSON: every string value and
    key is checked with :func:`text_problem`, every float must be finite. Raises
    :class:`TextPolicyError` naming the first place (``payload.note``,
    ``triplets[0].subject.phrase``). Iterative, so as deep as ``json`` nests."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                raise TextPolicyError(where, problem)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise TextPolicyError(where, NOT_FINITE)
        elif isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    continue  # only Python callers make such keys; json.dumps writes them as text
                problem = text_problem(key)
                if problem:
                    raise TextPolicyError(_join(where, _shown_key(key)), f"the key's {problem}")
            stack.extend((_join(where, key), child) for key, child in reversed(item.items()))
        elif isinstance(item, (list, tuple)):
            stack.extend((f"{where}[{i}]", child) for i, child in reversed(list(enumerate(item))))


def parse_json(raw: str | bytes) -> Any:
    """JSON text (or UTF-8/16/32 bytes) as Python values, through :func:`check_json_tree`.

    Malformed JSON raises ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``,
    an integer of more digits than Python converts) or ``RecursionError`` (nested too
    deeply); the policy raises :class:`TextPolicyError`.
    """
    data = json.loads(raw)  # NaN and Infinity read as floats; check_json_tree names where they are
    check_json_tree(data)
    return data


# orjson reads an integer of 19 digits or more as a float where ``json`` keeps it exact, and
# nests deeper than ``json`` before refusing: such texts take :func:`parse_json`. A number
# starts a value (after ``[``, ``:`` or ``,``); digits inside a string (an RLE mask's counts)
# rarely do, and when they do the text only takes the slower way.
_LONG_INTEGER = re.compile(r"(?:^|[\[:,])\s*-?[0-9]{19}")
_LONG_INTEGER_BYTES = re.compile(rb"(?:^|[\[:,])\s*-?[0-9]{19}")
_MAX_FAST_NESTING = 256


def load_json(raw: str | bytes) -> Any:
    """:func:`parse_json`, with the same result and the same errors, in a fraction of its time
    for the usual text (an import line, an API body). orjson accepts a subset of what ``json``
    reads (no NaN, Infinity, number past a double, lone surrogate, invalid UTF-8, byte-order
    mark), and what it accepts it reads to the same values, but for the long integers and the
    deep nesting kept off it above. So a text orjson reads follows the text and number policy
    unless it holds a NUL, which only the escape ``\\u0000`` can write; anything else, or any
    text orjson refuses, goes through ``parse_json``, which says why in its words."""
    text = isinstance(raw, str)
    null, long_integer, brackets = ("\\u0000", _LONG_INTEGER, "[{") if text else (b"\\u0000", _LONG_INTEGER_BYTES, (b"[", b"{"))
    if null not in raw and raw.count(brackets[0]) + raw.count(brackets[1]) <= _MAX_FAST_NESTING \
            and long_integer.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return parse_json(raw)


def check_int(value: Any, *, field: str, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int:
    """``value`` when it is an integer (not a bool) in ``minimum..maximum`` (default: signed 64 bits)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TextPolicyError(field, "must be a whole number")
    if not minimum <= value <= maximum:
        raise TextPolicyError(field, f"must be a whole number from {minimum} to {maximum}")
    return value


def check_datetime(value: datetime, *, field: str) -> datetime:
    """An aware datetime moved to UTC (naive ones are returned as they are).

    Raises :class:`TextPolicyError` for a UTC offset beyond :data:`MAX_UTC_OFFSET`
    (Python reads up to ±23:59, PostgreSQL refuses past ±15:59) and for a moment that
    leaves the years 1 to 9999 in UTC. Normalised, no database sees an offset at all.
    """
    offset = value.utcoffset() if value.tzinfo is not None else None
    if offset is None:
        return value
    if abs(offset) > MAX_UTC_OFFSET:
        sign, minutes = ("-" if offset < timedelta(0) else "+"), int(abs(offset).total_seconds()) // 60
        raise TextPolicyError(field, f"UTC offset {sign}{minutes // 60:02d}:{minutes % 60:02d} is beyond ±14:00, "
                                     "the widest real time zones")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise TextPolicyError(field, "date and time out of range (years 1 to 9999 in UTC)") from None
