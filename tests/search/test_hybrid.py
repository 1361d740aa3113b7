"""Reciprocal rank fusion: hand-checked values and invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldbrew.search import reciprocal_rank_fusion
from coldbrew.search.hybrid import rank_contributions


def test_fusion_by_hand():
    a = np.array([[5, 7, -1]])
    b = np.array([[7, 9, 5]])
    scores, ids = reciprocal_rank_fusion([a, b], k=4, rrf_k=0)
    # 7: 1/2 + 1/1 = 1.5; 5: 1/1 + 1/3 = 1.333; 9: 1/2
    assert ids.tolist() == [[7, 5, 9, -1]]
    np.testing.assert_allclose(scores[0], [1.5, 4 / 3, 0.5, 0.0], rtol=1e-6)


def test_weights_scale_each_list():
    a = np.array([[1, 2]])
    b = np.array([[2, 1]])
    _, ids = reciprocal_rank_fusion([a, b], k=2, weights=[1.0, 3.0], rrf_k=1)
    assert ids.tolist() == [[2, 1]]


def test_empty_rows_and_ties_by_lower_id():
    _, ids = reciprocal_rank_fusion([np.array([[-1, -1], [4, 3]]), np.array([[-1, -1], [3, 4]])], k=3)
    assert ids.tolist() == [[-1, -1, -1], [3, 4, -1]]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="k must"):
        reciprocal_rank_fusion([np.array([[1]])], k=0)
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([np.array([[1]])], k=1, weights=[1, 2])
    with pytest.raises(ValueError, match="rankings"):
        reciprocal_rank_fusion([], k=1)


def test_rank_contributions_ignore_padding():
    out = rank_contributions(np.array([[3, -1]]), 2.0, 1.0)
    np.testing.assert_allclose(out, [[1.0, 0.0]])


def _ranking(draw_ids):
    return st.lists(st.integers(0, 30), max_size=8, unique=True).map(
        lambda xs: np.array([xs + [-1] * (8 - len(xs))], dtype=np.int64)
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(_ranking(None), min_size=1, max_size=3), st.integers(1, 12))
def test_fused_lists_are_sorted_unique_and_drawn_from_the_inputs(rankings, k):
    scores, ids = reciprocal_rank_fusion(rankings, k=k)
    row, s = ids[0], scores[0]
    present = row[row >= 0]
    assert len(set(present.tolist())) == len(present)
    assert set(present.tolist()) <= set(np.hstack(rankings)[0].tolist()) - {-1}
    assert np.all(np.diff(s[: len(present)]) <= 1e-12)
    assert np.all(row[len(present):] == -1)
    union = set(np.hstack(rankings)[0].tolist()) - {-1}
    assert len(present) == min(k, len(union))
