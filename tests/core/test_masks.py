"""COCO RLE through core.masks: encode, decode, str/bytes/list counts, area, box, IoU, runs."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from core.masks import (
    decode_mask,
    encode_mask,
    mask_area,
    mask_areas,
    mask_bbox,
    mask_iou,
    normalize_rle,
    rle_string_covers,
    rle_string_run_array,
    rle_string_runs,
    to_pycocotools,
)


def rect(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((height, width), dtype=bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


def test_rle_round_trip():
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:4, 2:6] = True
    rle = encode_mask(mask)
    assert rle["size"] == [5, 7] and isinstance(rle["counts"], str)
    decoded = decode_mask(rle)
    assert decoded.dtype == np.uint8 and decoded.shape == (5, 7)
    assert np.array_equal(decoded, mask.astype(np.uint8))
    assert np.array_equal(decode_mask({"size": [5, 7], "counts": rle["counts"].encode()}), decoded)
    with pytest.raises(ValueError, match="2-D"):
        encode_mask(np.zeros((2, 2, 1), dtype=bool))


def test_counts_as_str_bytes_or_runs_decode_to_the_same_mask():
    mask = rect(3, 4, (1, 0, 3, 2))  # column-major: 3 off, 2 on, 1 off, 2 on, 4 off
    rle = encode_mask(mask)
    assert rle_string_runs(rle["counts"]) == [3, 2, 1, 2, 4]
    as_bytes = {"size": [3, 4], "counts": rle["counts"].encode("ascii")}
    as_runs = {"size": [3, 4], "counts": [3, 2, 1, 2, 4]}
    for form in (rle, as_bytes, as_runs):
        assert decode_mask(form).tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert normalize_rle(as_bytes) == rle
    assert normalize_rle(rle) == rle
    assert to_pycocotools(rle) == as_bytes
    assert to_pycocotools(as_runs)["counts"] == as_bytes["counts"]


def test_a_uint8_array_encodes_like_a_bool_one():
    mask = rect(6, 9, (2, 1, 7, 5))
    assert encode_mask(mask.astype(np.uint8)) == encode_mask(mask)
    assert encode_mask(mask)["counts"] == mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def test_non_ascii_counts_are_refused():
    with pytest.raises(UnicodeEncodeError):
        decode_mask({"size": [2, 2], "counts": "é"})


def test_area_and_box():
    rle = encode_mask(rect(30, 40, (10, 5, 30, 25)))
    assert mask_area(rle) == 400
    assert mask_bbox(rle) == [10.0, 5.0, 20.0, 20.0]
    assert mask_area(encode_mask(np.zeros((4, 4), dtype=bool))) == 0


def test_mask_iou_of_known_rectangles():
    a = encode_mask(rect(30, 40, (0, 0, 20, 30)))  # 600 px
    b = encode_mask(rect(30, 40, (10, 0, 30, 30)))  # 600 px, 300 shared
    far = encode_mask(rect(30, 40, (35, 0, 40, 5)))
    assert mask_iou(a, b) == pytest.approx(300 / 900)
    assert mask_iou(a, a) == pytest.approx(1.0)
    assert mask_iou(a, far) == 0.0
    assert mask_iou(a, {"size": b["size"], "counts": b["counts"].encode()}) == pytest.approx(300 / 900)
    assert mask_iou(a, None) == 0.0 and mask_iou(None, b) == 0.0
    with pytest.raises(ValueError, match="sizes differ"):
        mask_iou(a, encode_mask(rect(30, 41, (0, 0, 5, 5))))


def test_runs_of_a_real_mask_match_pycocotools():
    rng = np.random.default_rng(3)
    for _ in range(20):
        m = (rng.random((37, 53)) > 0.6).astype(np.uint8)
        counts = mask_utils.encode(np.asfortranarray(m))["counts"].decode()
        runs = rle_string_runs(counts)
        assert sum(runs) == 37 * 53
        flat = m.flatten(order="F")
        assert runs[0] == int(np.argmax(flat != 0)) if flat.any() else runs[0] == flat.size


@pytest.mark.parametrize(("counts", "message"), [("P", "middle of a number"), ("0\x7f", "RLE alphabet")])
def test_runs_of_a_broken_string_raise(counts, message):
    with pytest.raises(ValueError, match=message):
        rle_string_runs(counts)


def test_mask_areas_of_many_masks_match_one_by_one():
    """More than 255 masks at once (pycocotools' own list limit) in the sizes they have."""
    rng = np.random.default_rng(3)
    rles = [encode_mask(rng.random((6 + i % 5, 9)) > 0.5) for i in range(600)]
    assert mask_areas(rles) == [mask_area(rle) for rle in rles]
    assert mask_areas([]) == []


def _runs_or_error(read, counts):
    try:
        return [int(v) for v in read(counts)]
    except ValueError as exc:
        return str(exc)


@pytest.mark.parametrize("counts", [
    "", "0", "P", "1", "`", "o", "00", "0\x7f", "/", "p", "PP0", "PPPPPPPP1",  # 9 characters: read one by one
    "PPPPPPP1", "_", "3a?", "0[0[0[", "12345", "ooooooo?", "W", "N0", "k1Z2",
])
def test_the_vectorised_runs_match_the_reference_on_tricky_strings(counts):
    """Negative deltas (the sign bit), continuation bits, long numbers, characters outside
    the alphabet and a string cut in a number: the same runs or the same error."""
    assert _runs_or_error(rle_string_run_array, counts) == _runs_or_error(rle_string_runs, counts)


def test_the_vectorised_runs_match_the_reference_on_random_strings():
    rng = np.random.default_rng(5)
    for _ in range(3000):
        counts = "".join(chr(c) for c in rng.integers(44, 116, size=int(rng.integers(0, 14))))
        assert _runs_or_error(rle_string_run_array, counts) == _runs_or_error(rle_string_runs, counts), counts
    for seed in range(20):
        m = (np.random.default_rng(seed).random((37, 53)) > 0.6).astype(np.uint8)
        counts = mask_utils.encode(np.asfortranarray(m))["counts"].decode()
        assert rle_string_run_array(counts).tolist() == rle_string_runs(counts)


@pytest.mark.parametrize("size", [(24, 32), (200, 300)])  # read in Python, and vectorised
def test_covers_tells_runs_that_fill_the_image_exactly(size):
    m = (np.random.default_rng(7).random(size) > 0.7).astype(np.uint8)
    counts = encode_mask(m)["counts"]
    pixels = size[0] * size[1]
    assert rle_string_covers(counts, pixels)
    assert not rle_string_covers(counts, pixels + 1)
    negative = "000@?"  # a run of -16 (the sign bit), then 15: they sum to -1
    assert rle_string_runs(negative) == [0, 0, 0, -16, 15] and not rle_string_covers(negative, -1)
    with pytest.raises(ValueError, match="middle of a number"):
        rle_string_covers(counts + "P", pixels)
