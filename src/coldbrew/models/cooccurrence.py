"""Item-to-item co-occurrence (cosine) neighbours: the strongest few-shot signal in baskets."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["cooccurrence_neighbors"]


def cooccurrence_neighbors(
    user_items: sp.csr_matrix, neighbors: int = 100, shrink: float = 10.0, block: int = 2048
) -> sp.csr_matrix:
    """Top-``neighbors`` cosine similarities between items, items x items CSR (float32).

    Uses the binarised users x items matrix. ``shrink`` damps pairs with few common users
    (``sim * n / (n + shrink)``). The diagonal is zero. Memory is ``block x n_items`` at a time.
    """
    binary = user_items.tocsc(copy=True).astype(np.float32)
    binary.data[:] = 1.0
    n_items = binary.shape[1]
    counts = np.asarray(binary.sum(axis=0)).ravel()
    norms = np.sqrt(np.maximum(counts, 1e-12))
    binary_t = binary.T.tocsr()
    rows, cols, vals = [], [], []
    k = min(neighbors, max(n_items - 1, 0))
    if k == 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        common = (binary_t[start:stop] @ binary).toarray()  # (b, n_items) co-counts
        sims = common / (norms[start:stop, None] * norms[None, :])
        sims *= common / (common + shrink)
        sims[np.arange(stop - start), np.arange(start, stop)] = 0.0
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_vals = np.take_along_axis(sims, top, axis=1)
        keep = top_vals > 0
        r = np.repeat(np.arange(start, stop), k).reshape(-1, k)
        rows.append(r[keep])
        cols.append(top[keep])
        vals.append(top_vals[keep].astype(np.float32))
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    return matrix
