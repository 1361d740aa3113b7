"""Item-to-item co-occurrence (cosine) neighbours: the strongest few-shot signal in baskets."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["Cooccurrence", "cooccurrence_neighbors"]

#: Upper bound on the co-count nonzeros one block of item rows may produce (memory ~ 40 B each).
MAX_BLOCK_NONZEROS = 8_000_000


class Cooccurrence:
    """The co-occurrence part: ``fit(user_items) -> self``; ``neighbors_`` (items x items CSR,
    float32) are :func:`cooccurrence_neighbors` of the interactions."""

    def __init__(self, neighbors: int = 100, shrink: float = 10.0) -> None:
        self.neighbors = neighbors
        self.shrink = shrink

    def fit(self, user_items: sp.csr_matrix) -> Cooccurrence:
        self.neighbors_ = cooccurrence_neighbors(user_items, self.neighbors, self.shrink)
        return self


def cooccurrence_neighbors(
    user_items: sp.csr_matrix, neighbors: int = 100, shrink: float = 10.0, block: int = 2048,
    max_block_nonzeros: int = MAX_BLOCK_NONZEROS,
) -> sp.csr_matrix:
    """Top-``neighbors`` cosine similarities between items, items x items CSR (float32).

    Uses the binarised users x items matrix. ``shrink`` damps pairs with few common users
    (``sim * n / (n + shrink)``). The diagonal is zero; only pairs with a common user can be
    neighbours. Ties are broken deterministically: higher similarity first, then the lower
    item index.

    Everything stays sparse: item rows are taken in blocks of at most ``block`` rows whose
    co-count nonzeros are at most ``max_block_nonzeros`` (bounded per item row by the sum
    of its users' degrees; a single heavier row is a block of its own), so memory does not
    grow with ``n_items`` squared.
    """
    binary = user_items.tocsc(copy=True).astype(np.float32)
    binary.data[:] = 1.0
    binary.eliminate_zeros()
    n_items = binary.shape[1]
    counts = np.asarray(binary.sum(axis=0)).ravel()
    norms = np.sqrt(np.maximum(counts, 1e-12))
    binary_t = binary.T.tocsr()
    k = min(neighbors, max(n_items - 1, 0))
    if k == 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    binary = binary.tocsr()  # users x items: CSR rows make the block products cheap
    user_degree = np.diff(binary.indptr).astype(np.float64)
    bound = binary_t @ user_degree  # (n_items,) >= nonzeros of each item's co-count row
    rows, cols, vals = [], [], []
    for start, stop in _blocks(bound, block, max_block_nonzeros):
        common = (binary_t[start:stop] @ binary).tocsr()  # (b, n_items) sparse co-counts
        r, c, v = _top_of_block(common, start, norms, shrink, k)
        rows.append(r)
        cols.append(c)
        vals.append(v)
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    return matrix


def _blocks(bound: np.ndarray, block: int, budget: int):
    """``(start, stop)`` row ranges of at most ``block`` rows and ``budget`` bounded nonzeros."""
    n = len(bound)
    cumulative = np.concatenate([[0.0], np.cumsum(bound)])
    start = 0
    while start < n:
        # the furthest stop whose rows' bounds fit the budget (at least one row)
        stop = int(np.searchsorted(cumulative, cumulative[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), start + max(block, 1), n)
        yield start, stop
        start = stop


def _top_of_block(common: sp.csr_matrix, start: int, norms: np.ndarray, shrink: float, k: int):
    """Global ``(rows, cols, sims)`` of the best ``k`` positive similarities per row of ``common``."""
    common.sum_duplicates()
    lengths = np.diff(common.indptr)
    local = np.repeat(np.arange(common.shape[0], dtype=np.int64), lengths)
    row = local + start
    col = common.indices.astype(np.int64)
    co = common.data.astype(np.float32)
    # the dense formula, element by element in float32 (same values bit for bit)
    sims = co / (norms[row] * norms[col])
    sims *= co / (co + np.float32(shrink))
    keep = (col != row) & (sims > 0)
    row, col, sims = row[keep], col[keep], sims[keep]
    local = local[keep]
    per_row = np.bincount(local, minlength=common.shape[0])
    long_rows = per_row > k
    if long_rows.any():
        heavy = long_rows[local]
        h_row, h_col, h_sim = row[heavy], col[heavy], sims[heavy]
        # Per row: higher sim, then lower column. The pairs come in CSR order (rows, then
        # columns, ascending), so one stable sort by (row, -sim) keeps ties by lower column;
        # the key packs both in a uint64 (a positive float32's bits order like its value).
        sim_bits = h_sim.astype(np.float32).view(np.uint32).astype(np.uint64)
        key = (h_row.astype(np.uint64) << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - sim_bits)
        order = np.argsort(key, kind="stable")
        h_row, h_col, h_sim = h_row[order], h_col[order], h_sim[order]
        first = np.flatnonzero(np.r_[True, h_row[1:] != h_row[:-1]])
        rank = np.arange(len(h_row)) - np.repeat(first, np.diff(np.r_[first, len(h_row)]))
        top = rank < k
        light = ~heavy
        row = np.concatenate([row[light], h_row[top]])
        col = np.concatenate([col[light], h_col[top]])
        sims = np.concatenate([sims[light], h_sim[top]])
    return row, col, sims.astype(np.float32)
