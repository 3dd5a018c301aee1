"""Box IoU (core.boxes): one pair, all pairs, aligned pairs."""

import numpy as np
import pytest

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
