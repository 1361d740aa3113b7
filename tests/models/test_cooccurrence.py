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
