"""Box IoU (core.boxes): one pair, all pairs, aligned pairs."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.boxes import box_iou, box_iou_matrix, paired_box_iou


def test_box_iou_matches_the_area_formula():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert box_iou([0, 0, 10, 10], None) == 0.0


def test_one_pair_is_a_plain_float_and_zero_for_an_empty_union():
    iou = box_iou((0.0, 0.0, 4.0, 4.0), (2.0, 2.0, 6.0, 6.0))
    assert type(iou) is float and iou == pytest.approx(4 / 28)
    assert box_iou([3, 3, 3, 3], [3, 3, 3, 3]) == 0.0
    assert box_iou([], [0, 0, 1, 1]) == 0.0


def test_one_pair_agrees_with_the_matrix():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (20, 2))
    boxes = np.hstack([xy, xy + rng.uniform(1, 30, (20, 2))])
    matrix = box_iou_matrix(boxes[:10], boxes[10:])
    for i in range(10):
        for j in range(10):
            assert box_iou(list(boxes[i]), list(boxes[10 + j])) == matrix[i, j]


def test_box_iou_pairwise_and_paired():
    a = [[0, 0, 10, 10], [0, 0, 4, 4]]
    b = [[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 30]]
    iou = box_iou_matrix(a, b)
    assert iou.shape == (2, 3)
    assert iou[0].tolist() == pytest.approx([25 / 175, 1.0, 0.0])
    assert iou[1].tolist() == pytest.approx([0.0, 16 / 100, 0.0])
    assert paired_box_iou(a, b[:2]).tolist() == pytest.approx([25 / 175, 16 / 100])
    assert np.isnan(paired_box_iou([[3, 3, 3, 3]], [[3, 3, 3, 3]])[0])  # empty union: undefined


def test_box_iou_rejects_bad_boxes():
    with pytest.raises(ValueError, match="x1 <= x2"):
        box_iou_matrix([[10, 0, 0, 10]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        box_iou_matrix([[0, 0, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="differ in length"):
        paired_box_iou([[0, 0, 1, 1]], [[0, 0, 1, 1], [0, 0, 2, 2]])


def _numpy_box_iou(a, b) -> float:
    """box_iou as it was: every pair through numpy's _iou."""
    from core.boxes import _iou

    if not a or not b:
        return 0.0
    with np.errstate(all="ignore"):  # 1e300 * 1e300: inf, as Python floats give it
        iou = float(_iou(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))
    return 0.0 if np.isnan(iou) else iou


_coordinate = st.one_of(st.integers(-3, 3), st.sampled_from([0.0, -0.0, 0.5, 1e-300, 1e300, 2.0**-1074]),
                        st.floats(-1e6, 1e6, allow_nan=False))


@settings(max_examples=3000, deadline=None)
@given(st.lists(_coordinate, min_size=8, max_size=8))
def test_one_pair_in_python_floats_is_numpys_bit_for_bit(coords):
    """Degenerate, touching, nested, negative, signed-zero and huge boxes: the same float (sign of
    zero included) as the numpy formula."""
    a, b = coords[:4], coords[4:]
    got, want = box_iou(a, b), _numpy_box_iou(a, b)
    assert type(got) is float and (got == want and math.copysign(1, got) == math.copysign(1, want)), (a, b, got, want)


@pytest.mark.parametrize("a", [[0, 0, float("nan"), 1], [0, 0, float("inf"), 1], (0, 0, 2, 2), np.array([0, 0, 2, 2]),
                               [True, 0, 2, 2], ["0", 0, 2, 2], [0, 0, 2]])
def test_other_boxes_take_the_numpy_path(a):
    b = [1, 1, 3, 3]
    try:
        want = _numpy_box_iou(a, b)
    except Exception as exc:  # noqa: BLE001 (the same error as before)
        with pytest.raises(type(exc)):
            box_iou(a, b)
        return
    assert box_iou(a, b) == want
