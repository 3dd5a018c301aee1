"""validate_mask reads a mask's runs without decoding it (issue 16): the same masks, the same
canonical counts and the same errors as the decoding way (``_validate_mask_decoded``), which
still checks whatever pycocotools could not have written."""

import re

import numpy as np
import pytest
from django.test import override_settings
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

import annotations.validation as validation
from annotations.errors import InvalidAnnotation
from annotations.validation import _validate_mask_decoded, validate_mask
from core.masks import encode_mask, rle_string_runs, rle_string_runs_plain

sizes = st.tuples(st.integers(1, 9), st.integers(1, 9))
ALPHABET = "".join(chr(c) for c in range(48, 112))


def _outcome(check, *args, **kwargs):
    try:
        return "ok", check(*args, **kwargs)
    except InvalidAnnotation as exc:
        return "error", exc.field, exc.message


def _assert_same(counts, height, width, *, allow_empty=False, max_runs=1_000_000):
    with override_settings(EMOVERSE_MAX_MASK_RUNS=max_runs):
        new = _outcome(validate_mask, {"size": [height, width], "counts": counts}, width, height, "m", allow_empty=allow_empty)
        old = _outcome(_validate_mask_decoded, counts, width, height, "m", allow_empty=allow_empty)
    assert new == old, (counts, height, width)


@st.composite
def run_lists(draw):
    """Runs (zeros among them) that cover a small image exactly, or nearly."""
    height, width = draw(sizes)
    runs = draw(st.lists(st.integers(0, 6), min_size=1, max_size=20))
    runs.append(max(height * width - sum(runs), 0))
    if draw(st.booleans()):
        runs[draw(st.integers(0, len(runs) - 1))] += draw(st.sampled_from([-7, -1, 1]))
    return runs, height, width


@given(sizes, st.data(), st.booleans())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_a_mask_written_by_pycocotools_reads_the_same(size, data, allow_empty):
    height, width = size
    pixels = data.draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    counts = encode_mask(np.array(pixels, dtype=bool).reshape(height, width))["counts"]
    _assert_same(counts, height, width, allow_empty=allow_empty)
    _assert_same(rle_string_runs(counts), height, width, allow_empty=allow_empty)


@given(run_lists(), st.booleans(), st.sampled_from([1_000_000, 3]))
@settings(max_examples=400)
@example(([0, 0, 0, 4], 2, 2), False, 1_000_000)  # empty runs only
@example(([0, 4, 0], 2, 2), False, 1_000_000)  # all foreground, a trailing empty run
@example(([True, 3], 2, 2), False, 1_000_000)  # a bool among the runs
def test_runs_with_empty_ones_give_the_same_mask_or_error(case, allow_empty, max_runs):
    runs, height, width = case
    _assert_same(runs, height, width, allow_empty=allow_empty, max_runs=max_runs)
    if min(runs) >= 0 and all(type(r) is int for r in runs):  # the same runs compressed, empty ones kept
        counts = mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width)["counts"].decode()
        _assert_same(counts, height, width, allow_empty=allow_empty, max_runs=max_runs)


@given(sizes, st.text(ALPHABET + "/p~ é\x00", max_size=30), st.booleans())
@settings(max_examples=400)
@example((1, 2), "0" + "P" * 7 + "2", False)  # a number longer than pycocotools writes
@example((2, 2), "04", False)
@example((2, 2), "", False)
@example((2, 2), "0P", False)  # ends in the middle of a number
def test_any_string_gives_the_same_mask_or_error(size, counts, allow_empty):
    _assert_same(counts, *size, allow_empty=allow_empty)


@given(st.integers(0, 2**32 - 1), st.integers(8, 48), st.integers(8, 48), st.floats(0.0, 1.0), st.booleans())
@settings(max_examples=200)
def test_a_large_mask_reads_the_same(seed, height, width, density, runs_given):
    """Strings past 128 characters are read vectorised: speckled masks write many numbers of 2+ characters."""
    mask = np.random.default_rng(seed).random((height, width)) < density
    counts = encode_mask(mask)["counts"]
    _assert_same(rle_string_runs(counts) if runs_given else counts, height, width)


def _runs_or_none(counts):
    try:
        runs = rle_string_runs(counts)
    except ValueError:
        return None
    return None if re.search("[P-o]{7}", counts) else runs


@given(st.text(st.sampled_from(ALPHABET[:32] * 6 + ALPHABET[32:] + "/p~é"), max_size=400) | st.text(ALPHABET[:32], min_size=127, max_size=300).map(lambda s: s + "p" + s))
@settings(max_examples=400)
@example("0" * 127 + "P" * 7 + "1")
@example("0" * 200 + "P")
@example("0" * 200 + "o" * 6 + "O")
def test_plain_strings_read_as_rle_string_runs_and_others_not_at_all(counts):
    assert rle_string_runs_plain(counts) == _runs_or_none(counts)


@pytest.mark.parametrize("counts", ["0P", "0" + "P" * 7 + "2", "0/", "04é"])
def test_a_string_pycocotools_could_not_write_is_left_to_the_decoding_way(counts):
    assert rle_string_runs_plain(counts) is None


@pytest.mark.parametrize("counts", [np.array([2, 2]), (2, 2), None, 4])
def test_counts_of_another_type_get_the_old_error(counts):
    _assert_same(counts, 2, 2)


def test_a_usual_mask_is_not_decoded(monkeypatch):
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 5:40] = True
    rle = encode_mask(mask)
    monkeypatch.setattr(validation, "decode_mask", None)  # any call would fail
    assert validate_mask(rle, 64, 48) == rle
    assert validate_mask({"size": [48, 64], "counts": rle_string_runs(rle["counts"])}, 64, 48) == rle
