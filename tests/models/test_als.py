import numpy as np
import pytest
import scipy.sparse as sp

from coldbrew.config import ALSConfig
from coldbrew.errors import NotFittedError
from coldbrew.models.als import ALSModel, confidence


def _matrix(seed=0, users=60, items=40):
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < 0.15) * rng.integers(1, 5, (users, items))
    return sp.csr_matrix(dense.astype(np.float32))


def test_confidence_is_alpha_log1p():
    m = sp.csr_matrix(np.array([[0, 1, 3]], dtype=np.float32))
    c = confidence(m, alpha=2.0)
    np.testing.assert_allclose(c.toarray(), [[0, 2 * np.log(2), 2 * np.log(4)]], rtol=1e-6)
    assert m.toarray()[0, 2] == 3  # input untouched


def test_fold_in_matches_the_closed_form_solution():
    conf = confidence(_matrix(), 5.0)
    model = ALSModel(ALSConfig(factors=8, iterations=5, regularization=0.1)).fit(conf, progress=False)
    rows = conf[:5]
    got = model.fold_in(rows)
    y = model.item_factors_.astype(np.float64)
    for r in range(5):
        c = rows[r].toarray().ravel().astype(np.float64)
        cu = np.where(c > 0, c, 1.0)  # unobserved items have confidence 1 and preference 0
        p = (c > 0).astype(np.float64)
        a = y.T @ (cu[:, None] * y) + 0.1 * np.eye(8)
        expected = np.linalg.solve(a, y.T @ (cu * p))
        np.testing.assert_allclose(got[r], expected, rtol=1e-3, atol=1e-5)


def test_fold_in_of_trained_user_is_close_to_trained_factor():
    conf = confidence(_matrix(1), 5.0)
    model = ALSModel(ALSConfig(factors=8, iterations=20, regularization=0.1)).fit(conf, progress=False)
    folded = model.fold_in(conf[:10])
    trained = model.user_factors_[:10]
    cos = (folded * trained).sum(1) / (np.linalg.norm(folded, axis=1) * np.linalg.norm(trained, axis=1))
    assert np.all(cos > 0.95)


def test_fold_in_empty_row_gives_zeros_and_blocks_agree(monkeypatch):
    """Rows are solved in length-sorted, padded blocks: any block size gives one answer,
    the same as each row folded in alone, in the caller's row order."""
    import coldbrew.models.als as als_module

    conf = confidence(_matrix(2), 5.0)
    model = ALSModel(ALSConfig(factors=4, iterations=3)).fit(conf, progress=False)
    rows = sp.vstack([sp.csr_matrix((1, conf.shape[1]), dtype=np.float32), conf[:40]]).tocsr()
    together = model.fold_in(rows)
    assert np.all(together[0] == 0) and np.all(np.abs(together[1:]).sum(axis=1) > 0)
    alone = np.vstack([model.fold_in(rows[i : i + 1]) for i in range(rows.shape[0])])
    np.testing.assert_allclose(alone, together, rtol=1e-4, atol=1e-6)
    monkeypatch.setattr(als_module, "_BLOCK_ROWS", 3)
    np.testing.assert_allclose(model.fold_in(rows), together, rtol=1e-4, atol=1e-6)
    monkeypatch.setattr(als_module, "_BLOCK_FLOATS", 1)  # one row per block
    np.testing.assert_allclose(model.fold_in(rows), together, rtol=1e-4, atol=1e-6)


def test_fold_in_before_fit_raises():
    with pytest.raises(NotFittedError):
        ALSModel().fold_in(sp.csr_matrix((1, 3)))
