import numpy as np
import pytest
import scipy.sparse as sp

from coldbrew.models.cooccurrence import cooccurrence_neighbors


def test_cosine_with_shrinkage_by_hand():
    # users x items: item 0 and 1 bought together by 2 users; item 2 alone.
    m = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 5]], dtype=np.float32))
    s = cooccurrence_neighbors(m, neighbors=2, shrink=1.0).toarray()
    # cosine(0,1) = 2 / (sqrt2*sqrt2) = 1; shrink factor 2 / (2 + 1)
    assert s[0, 1] == pytest.approx(2 / 3, rel=1e-6)
    assert s[1, 0] == pytest.approx(2 / 3, rel=1e-6)
    assert s[0, 0] == 0 and s[2, 2] == 0
    assert s[0, 2] == 0 and s[2, 0] == 0


def test_keeps_only_top_neighbours_and_blocks_agree():
    rng = np.random.default_rng(0)
    m = sp.csr_matrix((rng.random((50, 30)) < 0.2).astype(np.float32))
    full = cooccurrence_neighbors(m, neighbors=5, block=1000)
    blocked = cooccurrence_neighbors(m, neighbors=5, block=7)
    assert np.all(np.diff(full.indptr) <= 5)
    np.testing.assert_allclose(full.toarray(), blocked.toarray(), rtol=1e-6)


def _dense_reference(m, neighbors, shrink):
    """The former dense computation (full co-count matrix), ties: higher sim, then lower column."""
    b = (m.toarray() != 0).astype(np.float32)
    common = b.T @ b
    norms = np.sqrt(np.maximum(b.sum(axis=0), 1e-12)).astype(np.float32)
    sims = common / (norms[:, None] * norms[None, :])
    sims *= common / (common + np.float32(shrink))
    np.fill_diagonal(sims, 0.0)
    out = np.zeros_like(sims)
    n = sims.shape[0]
    k = min(neighbors, n - 1)
    for i in range(n):
        order = np.lexsort((np.arange(n), -sims[i]))[:k]
        order = order[sims[i, order] > 0]
        out[i, order] = sims[i, order]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_equals_dense_on_random_fixture(seed):
    rng = np.random.default_rng(seed)
    # ties at the cut are frequent: few users, binary rows
    m = sp.random(80, 120, density=0.06, random_state=seed, format="csr", dtype=np.float32)
    m.data = rng.integers(1, 4, size=m.nnz).astype(np.float32)
    expected = _dense_reference(m, neighbors=7, shrink=3.0)
    for block, budget in [(2048, 10**9), (5, 10**9), (2048, 50), (1, 1)]:
        got = cooccurrence_neighbors(m, neighbors=7, shrink=3.0, block=block, max_block_nonzeros=budget)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.toarray(), expected)
        assert np.all(np.diff(got.indptr) <= 7)


def test_items_without_users_and_tiny_catalogs():
    m = sp.csr_matrix(np.array([[1, 0, 1, 0]], dtype=np.float32))
    s = cooccurrence_neighbors(m, neighbors=10).toarray()
    assert s[0, 2] > 0 and s[2, 0] > 0 and s[1].sum() == 0 and s[3].sum() == 0
    one = cooccurrence_neighbors(sp.csr_matrix(np.ones((2, 1), np.float32)))
    assert one.shape == (1, 1) and one.nnz == 0


def test_the_part_fits_to_the_function_s_neighbours():
    from coldbrew.models.cooccurrence import Cooccurrence

    m = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 5]], dtype=np.float32))
    part = Cooccurrence(neighbors=2, shrink=1.0)
    assert part.fit(m) is part
    np.testing.assert_array_equal(part.neighbors_.toarray(), cooccurrence_neighbors(m, 2, 1.0).toarray())
