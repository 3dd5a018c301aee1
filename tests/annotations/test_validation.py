"""Validation of untrusted annotation values: each bad value gets a clear, located error."""

import copy

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from annotations.errors import InvalidAnnotation
from annotations.validation import (
    validate_annotation,
    validate_box,
    validate_ces,
    validate_des,
    validate_distribution,
    validate_mask,
    validate_triplet_keys,
)
from tests.factories import annotation_payload, distribution_for, rect_mask_rle


def test_a_good_payload_is_normalised():
    data = validate_annotation(annotation_payload(64, 48), 64, 48)
    assert data.ces.label == "fear" and data.ces.confidence == pytest.approx(0.72)
    roles = [e.role for e in data.triplets[0].elements]
    assert roles == ["background", "attribute", "subject"]
    assert data.triplets[0].elements[2].box == (16.0, 12.0, 32.0, 24.0)


@pytest.mark.parametrize(
    ("ces", "field", "message"),
    [
        ({"label": "joy"}, "ces.label", "unknown emotion"),
        ({"label": "fear", "confidence": 1.5}, "ces.confidence", "[0, 1]"),
        ({"label": "fear", "distribution": {"fear": 0.5, "awe": 0.3}}, "ces.distribution", "sum to 0.8"),
        ({"label": "fear", "distribution": {"fear": 0.5, "happiness": 0.5}}, "ces.distribution", "unknown emotion"),
        ({"label": "fear", "distribution": {"fear": 1.2, "awe": -0.2}}, "ces.distribution", "probability"),
        ("fear", "ces", "object"),
    ],
)
def test_bad_ces_values_name_the_field(ces, field, message):
    with pytest.raises(InvalidAnnotation) as info:
        validate_ces(ces)
    assert info.value.field == field
    assert message in info.value.message


def test_distribution_within_tolerance_is_accepted_and_missing_emotions_are_zero():
    dist = validate_distribution({"fear": 0.6004, "sadness": 0.4})
    assert dist["awe"] == 0.0 and sum(dist.values()) == pytest.approx(1.0004)
    with pytest.raises(InvalidAnnotation):
        validate_distribution({"fear": 0.602, "sadness": 0.4})


def test_confidence_defaults_to_the_labels_probability():
    ces = validate_ces({"label": "awe", "distribution": distribution_for("awe", 0.6)})
    assert ces.confidence == pytest.approx(0.6)


@pytest.mark.parametrize(
    "box",
    [[0, 0, 65, 10], [-1, 0, 10, 10], [10, 10, 10, 20], [20, 10, 10, 20], [0, 0, 10], [0, 0, "a", 1],
     [0, 0, float("nan"), 1], [True, 0, 1, 1]],
)
def test_bad_boxes_are_refused(box):
    with pytest.raises(InvalidAnnotation):
        validate_box(box, 64, 48)


def test_a_box_on_the_image_border_is_fine():
    assert validate_box([0, 0, 64, 48], 64, 48) == (0.0, 0.0, 64.0, 48.0)


def test_mask_of_another_size_is_refused():
    with pytest.raises(InvalidAnnotation, match=r"differs from the image size \[48, 64\]"):
        validate_mask(rect_mask_rle(32, 32, (0, 0, 8, 8)), 64, 48)


def test_empty_mask_is_refused_unless_allowed():
    empty = mask_utils.encode(np.asfortranarray(np.zeros((48, 64), np.uint8)))
    rle = {"size": [48, 64], "counts": empty["counts"].decode()}
    with pytest.raises(InvalidAnnotation, match="empty"):
        validate_mask(rle, 64, 48)
    assert validate_mask(rle, 64, 48, allow_empty=True) is None


def test_uncompressed_counts_are_converted_and_must_cover_the_image():
    m = np.zeros((48, 64), np.uint8)
    m[:, :2] = 1  # column-major runs: 0 zeros, then 96 ones, then the rest
    out = validate_mask({"size": [48, 64], "counts": [0, 96, 48 * 64 - 96]}, 64, 48)
    assert (mask_utils.decode({"size": [48, 64], "counts": out["counts"].encode()}) == m).all()
    with pytest.raises(InvalidAnnotation, match="cover"):
        validate_mask({"size": [48, 64], "counts": [0, 96]}, 64, 48)


@pytest.mark.parametrize("counts", ["", 12, "\u00e9\u00e9"])
def test_garbage_counts_are_refused(counts):
    with pytest.raises(InvalidAnnotation):
        validate_mask({"size": [48, 64], "counts": counts}, 64, 48)


def test_des_must_have_1024_finite_numbers():
    assert len(validate_des([0.5] * 1024)) == 4096
    with pytest.raises(InvalidAnnotation, match="1023 values"):
        validate_des([0.5] * 1023)
    with pytest.raises(InvalidAnnotation, match="finite"):
        validate_des([float("inf")] + [0.0] * 1023)
    with pytest.raises(InvalidAnnotation, match="numbers"):
        validate_des(["x"] * 1024)


def test_triplet_errors_point_at_the_element():
    payload = annotation_payload(64, 48)
    payload["triplets"][0]["subject"]["box"] = [0, 0, 100, 10]
    with pytest.raises(InvalidAnnotation) as info:
        validate_annotation(payload, 64, 48)
    assert info.value.field == "triplets[0].subject.box"
    payload = annotation_payload(64, 48)
    payload["triplets"][0]["attribute"]["phrase"] = "   "
    with pytest.raises(InvalidAnnotation, match=r"triplets\[0\].attribute.phrase"):
        validate_annotation(payload, 64, 48)
    with pytest.raises(InvalidAnnotation, match="unknown key"):
        validate_annotation({"triplets": [{"scene": {"phrase": "x"}}]}, 64, 48)


@pytest.mark.parametrize("counts", ["abc", "zzzzzzzzzz", "0", "~~~~", "PPPPPP", "0\x7f"])
def test_corrupt_compressed_counts_never_decode_to_garbage(counts):
    with pytest.raises(InvalidAnnotation, match="RLE"):
        validate_mask({"size": [48, 64], "counts": counts}, 64, 48)


HUGE = 10**400  # a JSON integer Python reads exactly but that no float holds


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p["triplets"][0]["subject"]["box"].__setitem__(2, HUGE), "triplets[0].subject.box"),
        (lambda p: p["triplets"][0]["subject"].__setitem__("box_score", HUGE), "triplets[0].subject.box_score"),
        (lambda p: p["triplets"][0]["subject"].__setitem__("mask_score", -HUGE), "triplets[0].subject.mask_score"),
        (lambda p: p["ces"].__setitem__("confidence", HUGE), "ces.confidence"),
        (lambda p: p["ces"]["distribution"].__setitem__("awe", HUGE), "ces.distribution"),
        (lambda p: p.__setitem__("des", [HUGE] * 1024), "des"),
        (lambda p: p["triplets"][0].__setitem__("key", 12), "triplets[0].key"),
        (lambda p: p["triplets"][0]["subject"].__setitem__("status", ["accepted"]), "triplets[0].subject.status"),
    ],
)
def test_values_no_float_or_uuid_holds_are_refused_with_their_field(change, field):
    payload = annotation_payload(64, 48)
    change(payload)
    with pytest.raises(InvalidAnnotation) as info:
        validate_annotation(payload, 64, 48)
    assert info.value.field == field
    assert len(str(info.value)) < 300  # a 400-digit number is not repeated in full


def test_triplet_keys_are_uuid_strings_none_twice():
    key = "0f8fad5b-d9cb-469f-a165-70867728950e"
    payload = annotation_payload(64, 48)
    payload["triplets"].append(copy.deepcopy(payload["triplets"][0]))
    payload["triplets"][0]["key"] = key
    data = validate_annotation(payload, 64, 48)
    validate_triplet_keys(data.triplets)
    assert data.triplets[0].key == key and data.triplets[1].key is None
    payload["triplets"][1]["key"] = key.upper()  # the same UUID
    with pytest.raises(InvalidAnnotation, match=r"^triplets\[1\].key: appears twice"):
        validate_triplet_keys(validate_annotation(payload, 64, 48).triplets)
    payload["triplets"][1]["key"] = key[:-1]
    with pytest.raises(InvalidAnnotation, match=r"^annotation.triplets\[1\].key: must be a UUID string"):
        validate_triplet_keys(validate_annotation(payload, 64, 48).triplets, prefix="annotation.")
