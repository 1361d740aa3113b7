"""The shared scoring arrays (``coldbrew.scoring``): pure functions checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from coldbrew import scoring
from coldbrew.config import BlendConfig
from coldbrew.scoring import SOURCES, Batch


def _batch(n: int, n_items: int, n_history=None, allowed=None) -> Batch:
    return Batch(
        strengths=sp.csr_matrix((n, n_items), dtype=np.float32),
        n_history=np.zeros(n, np.int64) if n_history is None else np.asarray(n_history),
        text_vectors=np.zeros((n, 2), np.float32), has_text=np.zeros(n, bool),
        allowed=np.ones((n, n_items), bool) if allowed is None else np.asarray(allowed, bool),
        last_seen=np.full(n, -1, np.int64),
    )


def test_standardise_is_a_z_score_over_the_allowed_items_only():
    scores = np.array([[1.0, 2.0, 3.0, 100.0], [5.0, 5.0, 5.0, 5.0]], np.float32)
    allowed = np.array([[True, True, True, False], [True, True, True, True]])
    z = scoring.standardise(scores, allowed)
    np.testing.assert_allclose(z[0, :3], [-np.sqrt(1.5), 0.0, np.sqrt(1.5)], rtol=1e-6)
    assert z[0, 3] == 0.0  # a disallowed item is 0, and does not move the others
    assert np.all(z[1] == 0.0)  # a constant row
    assert z.dtype == np.float32


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_standardise_in_row_blocks_equals_all_rows_at_once(n, m, seed):
    """The cache-sized row blocks change nothing: the same values bit for bit."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n, m)).astype(np.float32)
    allowed = rng.random((n, m)) > 0.2
    whole = scoring.standardise(scores, allowed)
    old = scoring._CACHE_FLOATS
    try:
        scoring._CACHE_FLOATS = m * 3  # three rows per block
        blocked = scoring.standardise(scores, allowed)
    finally:
        scoring._CACHE_FLOATS = old
    assert np.array_equal(whole, blocked)


def test_top_k_is_best_first_and_capped_at_the_row_width():
    scores = np.array([[0.1, 0.9, 0.5, -np.inf], [3.0, 1.0, 2.0, 0.0]], np.float32)
    assert scoring.top_k(scores, 2).tolist() == [[1, 2], [0, 2]]
    assert scoring.top_k(scores, 10).shape == (2, 4)


def test_item_scores_are_the_product_for_few_and_many_rows():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((50, 8)).astype(np.float32)
    for n in (3, 70):  # below and above the direct product's threshold
        queries = rng.standard_normal((n, 8)).astype(np.float32)
        got = scoring.item_scores(queries, items)
        assert got.flags.c_contiguous and got.shape == (n, 50)
        np.testing.assert_allclose(got, queries @ items.T, rtol=1e-5, atol=1e-5)


def test_normalise_keeps_zero_rows_zero():
    x = np.array([[3.0, 4.0], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(scoring.normalise(x), [[0.6, 0.8], [0.0, 0.0]])


def test_sparse_row_at_sums_duplicates_and_misses_give_zero():
    got = scoring.sparse_row_at(np.array([4, 1, 4]), np.array([1.0, 2.0, 0.5]), np.array([4, 0, 1, 9]))
    assert got.tolist() == [1.5, 0.0, 2.0, 0.0]
    assert scoring.sparse_row_at(np.zeros(0, np.int64), np.zeros(0), np.array([1])).tolist() == [0.0]


def test_blend_weights_move_from_cold_to_warm_with_the_history():
    b = BlendConfig(warmth_half=5.0, cold_content=2.0, cold_cooccurrence=0.0, cold_cf=0.0, cold_popularity=1.0,
                    warm_content=0.0, warm_cooccurrence=1.0, warm_cf=2.0, warm_popularity=0.0)
    w = scoring.blend_weights(np.array([0.0, 5.0, 1e9]), b)
    np.testing.assert_allclose(w[0], [2.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(w[1], [1.0, 0.5, 1.0, 0.5])  # half way at warmth_half events
    np.testing.assert_allclose(w[2], [0.0, 1.0, 2.0, 0.0], atol=1e-6)
    assert w.dtype == np.float32


def test_item_weights_use_the_shelf_weights_on_shelves_and_no_cooccurrence():
    b = BlendConfig(new_item_content=0.25, new_item_cf=1.0, new_item_popularity=0.5,
                    shelf_content=3.0, shelf_cf=None, shelf_popularity=2.0)
    w = scoring.item_weights(b, np.array([False, True]))
    np.testing.assert_allclose(w[0], [0.25, 0.0, 1.0, 0.5])
    np.testing.assert_allclose(w[1], [3.0, 0.0, 1.0, 2.0])  # shelf_cf unset: new_item_cf


def test_blend_sums_weighted_z_scores_and_blocks_disallowed_items():
    n_items = 4
    item_warm = np.array([True, True, True, False])
    allowed = np.array([[True, True, True, True], [True, False, True, True]])
    batch = _batch(2, n_items, n_history=[0, 1_000_000], allowed=allowed)
    rng = np.random.default_rng(1)
    sources = {name: rng.standard_normal((2, n_items)).astype(np.float32) for name in SOURCES}
    b = BlendConfig()
    total = scoring.blend(sources, batch, b, item_warm)
    weights = scoring.blend_weights(batch.n_history, b)
    cold_weights = scoring.item_weights(b, scoring.shelf_rows(batch, item_warm))
    z = {name: scoring.standardise(sources[name], allowed) for name in SOURCES}
    for r in range(2):
        for i in range(n_items):
            if not allowed[r, i]:
                assert total[r, i] == -np.inf
                continue
            w = weights[r] if item_warm[i] else cold_weights[r]
            expected = sum(w[s] * z[name][r, i] for s, name in enumerate(SOURCES))
            assert total[r, i] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # the parts behind the shown items are what the blend summed
    items = np.array([[0, 3], [2, 3]])
    parts = scoring.source_parts(sources, batch, items, b, item_warm)
    assert parts.shape == (2, len(SOURCES), 2)
    np.testing.assert_allclose(parts.sum(axis=1), np.take_along_axis(total, items, axis=1), rtol=1e-5, atol=1e-6)
    assert np.all(parts[:, SOURCES.index("cooccurrence"), 1] == 0)  # a new item has no co-occurrence


def test_shelf_rows_are_rows_whose_every_allowed_item_is_new():
    item_warm = np.array([True, False, False])
    batch = _batch(2, 3, allowed=[[False, True, True], [True, True, False]])
    assert scoring.shelf_rows(batch, item_warm).tolist() == [True, False]


def test_the_batch_standardises_each_source_array_once():
    batch = _batch(1, 3)
    raw = np.array([[1.0, 2.0, 3.0]], np.float32)
    first = batch.standardised("cf", raw)
    assert batch.standardised("cf", raw) is first
    assert batch.standardised("cf", raw.copy()) is not first  # a new array is standardised anew
