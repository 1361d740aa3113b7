"""The semantic index follows the model's text vectors: appends are incremental."""

from __future__ import annotations

import numpy as np

from coldbrew.search import SemanticIndex


def _unit(rows):
    x = np.asarray(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_sync_appends_then_rebuilds_on_change():
    index = SemanticIndex(dim=2, kind="exact")
    vectors = _unit([[1, 0], [0, 1]])
    assert index.sync(vectors) and len(index) == 2
    assert not index.sync(vectors)
    grown = np.vstack([vectors, _unit([[1, 1]])])
    inner = index._index
    assert index.sync(grown) and index._index is inner and len(index) == 3  # appended
    changed = grown.copy()
    changed[0] = _unit([[0, 1]])[0]
    assert index.sync(changed) and index._index is not inner  # rebuilt


def test_search_leaves_out_non_positive_matches():
    index = SemanticIndex(dim=2, kind="exact")
    index.sync(np.vstack([_unit([[1, 0], [1, 1]]), np.zeros((1, 2), np.float32), _unit([[-1, 0]])]))
    scores, ids = index.search(_unit([[1, 0]]), k=4)
    assert ids.tolist() == [[0, 1, -1, -1]]
    np.testing.assert_allclose(scores[0, :2], [1.0, np.sqrt(0.5)], rtol=1e-5)
