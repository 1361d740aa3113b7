"""Nearest-history-item text similarity for new products (coldbrew.models.neighbors)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from coldbrew.models.neighbors import (
    match_quantiles,
    merge_neighbors,
    nearest_scores,
    neighbor_matrix,
    text_neighbors,
)


def _unit(rng: np.random.Generator, n: int, d: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_text_neighbors_are_the_most_similar_other_items_best_first():
    v = _unit(np.random.default_rng(0), 40)
    cols = np.array([3, 17, 39])
    ids, sims = text_neighbors(v, cols, k=5)
    assert ids.shape == sims.shape == (3, 5)
    full = v[cols] @ v.T
    for r, c in enumerate(cols):
        full[r, c] = -np.inf
        expected = np.argsort(-full[r])[:5]
        assert ids[r].tolist() == expected.tolist()
        assert c not in ids[r]
        np.testing.assert_allclose(sims[r], full[r, expected], rtol=1e-5)


def test_k_larger_than_the_catalog_keeps_every_other_item():
    v = _unit(np.random.default_rng(1), 4)
    ids, _ = text_neighbors(v, np.array([0]), k=100)
    assert sorted(ids[0].tolist()) == [1, 2, 3]


def test_merging_added_items_equals_a_fresh_search_over_the_grown_catalog():
    rng = np.random.default_rng(2)
    v = _unit(rng, 60)
    cols = np.array([1, 5, 9, 30])
    old_ids, old_sims = text_neighbors(v[:45], cols, k=6)
    ids, sims = merge_neighbors(old_ids, old_sims, v, cols, np.arange(45, 60), k=6)
    fresh_ids, fresh_sims = text_neighbors(v, cols, k=6)
    assert ids.tolist() == fresh_ids.tolist()
    np.testing.assert_allclose(sims, fresh_sims, rtol=1e-5)


def test_nearest_scores_are_a_soft_maximum_over_the_history():
    rng = np.random.default_rng(3)
    v = _unit(rng, 30)
    cold = np.array([25, 26, 27])
    ids, sims = text_neighbors(v, cold, k=29)  # every other item: exact soft maximum
    weights = neighbor_matrix(ids, sims, 30, temperature=0.05)
    history = sp.csr_matrix(np.array([[1, 0, 2.5] + [0] * 27, [0] * 30], dtype=np.float32))
    out = nearest_scores(history, weights, temperature=0.05)
    cos = v[[0, 2]] @ v[cold].T
    expected = 0.05 * np.log(np.exp((cos - 1) / 0.05).sum(axis=0) + np.exp(-20.0))
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)
    assert out[0].max() <= cos.max(axis=0).max() - 1 + 0.05 * np.log(2) + 1e-6  # close to the max
    np.testing.assert_allclose(out[1], -1.0, atol=1e-6)  # no history, no words


def test_a_requests_own_words_count_as_one_more_history_item():
    rng = np.random.default_rng(4)
    v = _unit(rng, 10)
    ids, sims = text_neighbors(v, np.array([8, 9]), k=9)
    weights = neighbor_matrix(ids, sims, 10)
    empty = sp.csr_matrix((2, 10), dtype=np.float32)
    words = np.array([[0.9, 0.2], [np.nan, np.nan]], dtype=np.float32)
    out = nearest_scores(empty, weights, words)
    assert out[0, 0] > out[0, 1]
    assert np.allclose(out[1], -1.0)


def test_match_quantiles_keeps_each_rows_values_in_the_order_of_scores():
    rng = np.random.default_rng(6)
    target = rng.normal(size=(4, 15)).astype(np.float32)
    scores = rng.normal(size=(4, 15)).astype(np.float32)
    scores[3] = 1.0
    out = match_quantiles(target, scores)
    for r in range(3):
        np.testing.assert_array_equal(np.sort(out[r]), np.sort(target[r]))
        assert (np.argsort(out[r]) == np.argsort(scores[r])).all()
    np.testing.assert_array_equal(out[3], target[3])
    assert match_quantiles(target[:, :0], scores[:, :0]).shape == (4, 0)


def test_ties_in_the_scores_keep_the_targets_order():
    target = np.array([[0.1, 0.9, 0.5, 0.3]], dtype=np.float32)
    scores = np.array([[1.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    out = match_quantiles(target, scores)
    assert out[0, 0] == out[0].max()
    assert out[0, 1] > out[0, 2] > out[0, 3]


def test_merge_neighbors_in_chunks_equals_one_product():
    from coldbrew.models import neighbors as nbm

    rng = np.random.default_rng(3)
    v = rng.normal(size=(300, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    columns = np.arange(0, 250, 3)
    ids, sims = nbm.text_neighbors(v[:250], columns, k=8)
    added = np.arange(250, 300)
    merged = nbm.merge_neighbors(ids, sims, v, columns, added, k=8, chunk=7)
    full_ids, full_sims = nbm.text_neighbors(v, columns, k=8)
    np.testing.assert_array_equal(merged[0], full_ids)
    np.testing.assert_allclose(merged[1], full_sims, rtol=1e-5)
