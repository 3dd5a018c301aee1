"""core.text: the text and number policy, as plain functions (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.text import (
    INT64_MAX,
    TextPolicyError,
    check_datetime,
    check_int,
    check_json_tree,
    check_text,
    is_blank,
    load_json,
    parse_json,
    text_problem,
)


@pytest.mark.parametrize("value, problem", [
    ("calm sea", None),
    ("\U0001f30a", None),
    ("a\x00b", "text contains a NUL character"),
    ("\ud83d", "text contains an unpaired surrogate (\\ud83d)"),
    ("ok \udc80", "text contains an unpaired surrogate (\\udc80)"),
])
def test_text_problem_names_what_cannot_be_stored(value, problem):
    assert text_problem(value) == problem


def test_check_text_raises_with_the_field_and_returns_good_text():
    assert check_text("bahr \u0628\u062d\u0631", field="x") == "bahr \u0628\u062d\u0631"
    with pytest.raises(TextPolicyError) as caught:
        check_text("a\x00", field="reason")
    assert (caught.value.field, caught.value.detail, str(caught.value)) == (
        "reason", "text contains a NUL character", "reason: text contains a NUL character")
    with pytest.raises(TextPolicyError, match="must be a string"):
        check_text(3, field="reason")


@pytest.mark.parametrize("value", ["", " ", "\t\n", "\u200b", "\u200c\u200d", "\u2060", "\ufeff", "\u200e\u200f",
                                   "\u00a0\u3000", "\u3164", "\u2800", "\u034f", " \u200b \ufeff "])
def test_invisible_only_text_is_blank(value):
    assert is_blank(value)


@pytest.mark.parametrize("value", ["a", "boat\u200b", "\U0001f30a", "e\u0301", "\u0301", "\u0628", "."])
def test_visible_text_is_not_blank(value):
    assert not is_blank(value)


@pytest.mark.parametrize("tree, field, detail", [
    ({"payload": {"note": "\ud83d"}}, "payload.note", "text contains an unpaired surrogate (\\ud83d)"),
    ({"element_decisions": [{"before": "x"}, {"before": {"phrase": "a\x00"}}]},
     "element_decisions[1].before.phrase", "text contains a NUL character"),
    ({"scores": [0.5, float("nan")]}, "scores[1]", "number is not finite (NaN, Infinity, or too large for a double)"),
    ({"x": float("-inf")}, "x", "number is not finite (NaN, Infinity, or too large for a double)"),
    ({"notes": {"a\x00": 1}}, "notes.a\\x00", "the key's text contains a NUL character"),
    ({"\udc80": 1}, "\\udc80", "the key's text contains an unpaired surrogate (\\udc80)"),
])
def test_check_json_tree_names_the_first_bad_place(tree, field, detail):
    with pytest.raises(TextPolicyError) as caught:
        check_json_tree(tree)
    assert (caught.value.field, caught.value.detail) == (field, detail)


def test_check_json_tree_accepts_good_trees_of_any_depth_and_prefixes_the_path():
    deep: list = []
    for _ in range(50_000):
        deep = [deep]
    check_json_tree({"deep": deep, "n": 10**30, "ok": True, "none": None, "emoji": "\U0001f468\u200d\U0001f469"})
    with pytest.raises(TextPolicyError) as caught:
        check_json_tree({"note": "\x00"}, path="payload")
    assert caught.value.field == "payload.note"


def test_parse_json_reads_json_and_applies_the_policy():
    assert parse_json(b'{"a": "\\ud83c\\udf0a"}') == {"a": "\U0001f30a"}  # a pair is one character
    for raw, field in (('{"a": NaN}', "a"), ('{"a": [1e400]}', "a[0]"), ('{"a": "\\u0000"}', "a")):
        with pytest.raises(TextPolicyError) as caught:
            parse_json(raw)
        assert caught.value.field == field
    with pytest.raises(ValueError):
        parse_json("{")


def _outcome(load, raw):
    try:
        value = load(raw)
    except Exception as exc:  # JSONDecodeError, RecursionError, TextPolicyError, ValueError
        return type(exc).__name__, str(exc), getattr(exc, "field", None)
    return "ok", repr(value), repr(json.dumps(value) if not isinstance(value, float) else value)


TEXTS = ['{"a": 1234567890123456789, "b": -98765432109876543210}', "[ 12345678901234567890.5]", '{"a": 2e308}',
         "[NaN]", '"\\ud800"', '"\ud800"', '{"k\\u0000": 1}', '"\\\\u0000"', "\ufeff[1]", "[1, 2,]", "[" * 300 + "]" * 300,
         "[" * 2000 + "]" * 2000, "1" * 5000, '{"a": 1, "a": 2}', '"h\u00e9 \u65e5"', '"\\ud83d\\ude00"', "", " {} ",
         '{"s": "x,1234567890123456789"}', "[0.1, 1e-400, -0.0, 5e-324, 1E+2]", '"a\tb"', '{"a":\n -1234567890123456789}']


@pytest.mark.parametrize("raw", TEXTS, ids=range(len(TEXTS)))
def test_load_json_reads_text_as_parse_json_does(raw):
    """API bodies reach load_json as text (decoded by the parser), import lines as bytes."""
    assert _outcome(load_json, raw) == _outcome(parse_json, raw)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats()
    | st.text(alphabet=st.characters(codec=None), max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=500, deadline=None)
@given(_values, st.booleans())
def test_load_json_agrees_with_parse_json_on_any_json(value, ascii_only):
    raw = json.dumps(value, ensure_ascii=ascii_only)  # NaN, Infinity, surrogates and NULs included
    assert _outcome(load_json, raw) == _outcome(parse_json, raw)
    if ascii_only:
        assert _outcome(load_json, raw.encode()) == _outcome(parse_json, raw.encode())


def test_a_usual_api_body_takes_the_fast_way(monkeypatch):
    import core.text

    monkeypatch.setattr(core.text, "parse_json", lambda raw: pytest.fail("took the slow way"))
    body = {"expected_version": 3, "annotation": {"triplets": [{"subject": {"phrase": "boat", "box": [1.5, 2, 30, 40.25],
            "mask": {"size": [48, 64], "counts": "V6<<000000000000000000000j5"}}}], "ces": {"label": "fear"}}}
    assert load_json(json.dumps(body)) == body


def test_check_int_holds_an_integer_to_its_range():
    assert check_int(INT64_MAX, field="id") == INT64_MAX
    for bad in (INT64_MAX + 1, -(2**63) - 1, True, 1.0):
        with pytest.raises(TextPolicyError):
            check_int(bad, field="id")
    with pytest.raises(TextPolicyError, match="from 1 to 10"):
        check_int(0, field="n", minimum=1, maximum=10)


def test_check_datetime_moves_to_utc_and_refuses_what_no_database_keeps():
    moment = datetime(2026, 1, 31, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert check_datetime(moment, field="since") == datetime(2026, 1, 31, 6, 30, tzinfo=UTC)
    assert check_datetime(datetime(2026, 1, 1), field="since") == datetime(2026, 1, 1)  # naive: the caller's
    assert check_datetime(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-12))), field="x").hour == 12
    with pytest.raises(TextPolicyError, match=r"UTC offset -20:11 is beyond ±14:00"):
        check_datetime(datetime(40, 1, 10, 19, 48, 31, tzinfo=timezone(-timedelta(hours=20, minutes=11))), field="x")
    with pytest.raises(TextPolicyError, match="out of range"):
        check_datetime(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))), field="x")
    with pytest.raises(TextPolicyError, match="out of range"):
        check_datetime(datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=2))), field="x")
