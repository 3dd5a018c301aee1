"""annotations.api_input: the fast path accepts and converts exactly what the serializer does,
and leaves every other value to the serializer (which answers its own error)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from annotations.api_input import plain_validated, validated_input
from annotations.models import Decision
from review.apis import NextAPI, SubmitAPI


class Sample(serializers.Serializer):
    count = serializers.IntegerField(min_value=0, max_value=10)
    slug = serializers.SlugField()
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5)
    raw = serializers.CharField(trim_whitespace=False)
    pick = serializers.ChoiceField(choices=["a", "b"], allow_blank=True)
    items = serializers.ListField(child=serializers.JSONField(), max_length=3, required=False, default=list)
    blob = serializers.JSONField()


class WithHook(Sample):
    def validate_count(self, value):
        return value + 1


def drf(cls, data):
    serializer = cls(data=data)
    return serializer.validated_data if serializer.is_valid() else None


def same_as_drf(cls, data):
    fast = plain_validated(cls, data)
    if fast is not None:
        expected = drf(cls, data)
        assert expected is not None, f"fast path accepted what the serializer refuses: {data!r}"
        assert dict(expected) == fast
        assert [type(v) for v in dict(expected).values()] == [type(v) for v in fast.values()]
    return fast


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)
odd_text = st.sampled_from(["", " ", " x ", "x\x00", "\ud800", "bench", "be nch", "bench\n", "ok", "a", "b", "approved",
                            "rejected", "Approved", "x" * 6, "\u200b"])
values = json_values | odd_text | st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from([0, -1, 10, 11, 1.0, "3", True])


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(["count", "slug", "note", "raw", "pick", "items", "blob", "other"]), values))
def test_sample_serializer_agrees(data):
    same_as_drf(Sample, data)


@settings(max_examples=600, deadline=None)
@given(st.fixed_dictionaries(  # mostly plain bodies: the fast path's own answers are compared
    {"count": st.integers(-2, 12), "slug": st.sampled_from(["ab", " ab", "a b", "", "a\n"]), "raw": st.sampled_from(["x", " ", ""]),
     "pick": st.sampled_from(["a", "b", "c", ""]), "blob": values},
    optional={"note": st.sampled_from(["", "abc", "abcdefg", " "]), "items": st.lists(values, max_size=4)}))
def test_sample_plain_bodies_agree(data):
    same_as_drf(Sample, data)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["expected_version", "decision", "reason", "annotation", "element_decisions",
                                        "time_spent_ms"]), values))
def test_submit_input_agrees(data):
    same_as_drf(SubmitAPI.InputSerializer, data)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["dataset", "x"]), values))
def test_next_input_agrees(data):
    same_as_drf(NextAPI.InputSerializer, data)


def test_a_plain_submit_takes_the_fast_path():
    body = {"expected_version": 3, "decision": "approved", "annotation": {"triplets": []},
            "element_decisions": [{"role": "subject"}], "extra": 1}
    fast = same_as_drf(SubmitAPI.InputSerializer, body)
    assert fast == {"expected_version": 3, "decision": Decision.APPROVED, "reason": "", "annotation": {"triplets": []},
                    "element_decisions": [{"role": "subject"}], "time_spent_ms": 0}
    assert type(fast["decision"]) is Decision  # the choice as the serializer gives it
    assert same_as_drf(NextAPI.InputSerializer, {"dataset": " bench "}) == {"dataset": "bench"}


@pytest.mark.parametrize("data", [
    {"expected_version": "3", "decision": "approved", "annotation": {}},  # a string for a number
    {"expected_version": -1, "decision": "approved", "annotation": {}},
    {"expected_version": 2**64, "decision": "approved", "annotation": {}},
    {"expected_version": True, "decision": "approved", "annotation": {}},
    {"expected_version": 1, "decision": "approved"},  # annotation missing
    {"expected_version": 1, "decision": "approved", "annotation": None},
    {"expected_version": 1, "decision": "approved", "annotation": {}, "reason": " "},
    {"expected_version": 1, "decision": "approved", "annotation": {}, "element_decisions": [None]},
    {"expected_version": 1, "decision": "approved", "annotation": {}, "reason": "a\x00b"},
    {"expected_version": 1, "decision": "approved", "annotation": {"n": 2**70}},  # json.dumps takes it, orjson not
    [1, 2],
])
def test_anything_else_goes_to_the_serializer(data):
    assert plain_validated(SubmitAPI.InputSerializer, data) is None


def test_the_serializer_answers_what_the_fast_path_leaves():
    with pytest.raises(serializers.ValidationError) as refused:
        validated_input(SubmitAPI.InputSerializer, {"expected_version": -1, "decision": "approved", "annotation": {}})
    assert "expected_version" in refused.value.detail
    deep = {"expected_version": 1, "decision": "approved", "annotation": {"n": 2**70}}
    assert validated_input(SubmitAPI.InputSerializer, deep)["annotation"] == {"n": 2**70}


def test_a_serializer_with_hooks_never_takes_the_fast_path():
    data = {"count": 1, "slug": "a", "raw": "x", "pick": "a", "blob": 1}
    assert plain_validated(Sample, data) is not None
    assert plain_validated(WithHook, data) is None
    assert validated_input(WithHook, data)["count"] == 2
