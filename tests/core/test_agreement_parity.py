"""The agreement score's cheaper arithmetic (issue 16) gives the same floats as the numpy
and dataclass forms it replaced: recorded outputs of seeded inputs, and properties against
the vectorised forms over random inputs."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from core.alignment import PAIR_MIN_SIMILARITY, _assign
from core.distributions import _js_distance_numpy, argmax_label, as_vector, js_distance
from tests.core.agreement_cases import N_CASES, outputs

RECORDED = json.loads((Path(__file__).resolve().parents[1] / "data" / "agreement_scores.json").read_text("utf-8"))


def same_float(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # an all-zero distribution divides by zero, as before
def test_agreement_and_alignment_give_the_recorded_outputs():
    assert len(RECORDED) == N_CASES
    for seed in range(N_CASES):
        assert outputs(seed) == RECORDED[str(seed)], seed


finite = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)
weights = st.one_of(st.just(0.0), finite, st.floats(min_value=1e-300, max_value=1e-3))


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=1, max_value=140).flatmap(lambda n: st.tuples(st.lists(weights, min_size=n, max_size=n),
                                                                          st.lists(weights, min_size=n, max_size=n))))
def test_js_distance_is_the_vectorised_float(pq):
    labels = [f"l{i}" for i in range(len(pq[0]))]
    p, q = dict(zip(labels, pq[0])), dict(zip(labels, pq[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert same_float(js_distance(p, q, labels), _js_distance_numpy(p, q, labels))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(weights, st.sampled_from([0.5, 1.0, float("nan"), -1.0])), min_size=1, max_size=25))
def test_argmax_label_is_numpys_argmax(values):
    labels = [f"l{i}" for i in range(len(values))]
    distribution = dict(zip(labels, values))
    assert argmax_label(distribution, labels) == labels[int(np.argmax(as_vector(distribution, labels)))]


def solver_pairs(matrix: list[list[float]]) -> list[tuple[int, int]]:
    """The assignment as it was always made: the solver over the usable weights."""
    usable = np.where(np.array(matrix) >= PAIR_MIN_SIMILARITY, np.array(matrix), 0.0)
    rows, cols = linear_sum_assignment(usable, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if usable[i, j] >= PAIR_MIN_SIMILARITY]


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.lists(
    st.lists(st.sampled_from([0.0, 0.2, 0.49, 0.5, 0.6, 0.75, 1.0]) | st.floats(0, 1), min_size=n, max_size=n),
    min_size=1, max_size=4)))
def test_the_assignment_is_the_solvers(matrix):
    assert sorted(_assign(matrix)) == sorted(solver_pairs(matrix))
