"""Reciprocal rank fusion: one ranking from several, using ranks only (Cormack et al., 2009).

``score(item) = sum over lists of weight / (rrf_k + rank)`` with 1-based ranks; an item
absent from a list gets nothing from it. Ranks rather than scores are fused because BM25
scores and cosine similarities live on unrelated scales.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["reciprocal_rank_fusion", "rank_contributions"]


def rank_contributions(ids: np.ndarray, weight: float, rrf_k: float) -> np.ndarray:
    """``weight / (rrf_k + rank)`` for each cell of a ranked id matrix int64 ``(q, m)``.

    Returns float64 ``(q, m)``; ``0`` where the id is ``-1`` (padding).
    """
    ids = np.asarray(ids)
    ranks = np.arange(1, ids.shape[1] + 1, dtype=np.float64)
    return np.where(ids >= 0, weight / (rrf_k + ranks)[None, :], 0.0)


def reciprocal_rank_fusion(
    rankings: Sequence[np.ndarray],
    k: int,
    weights: Sequence[float] | None = None,
    rrf_k: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse ranked lists of item ids into one top-``k`` list per query.

    Parameters
    ----------
    rankings: one int64 ``(q, m_i)`` matrix per source, best first, padded with ``-1``; an id
        must not repeat within a row of one matrix.
    k: length of the fused lists.
    weights: one weight per source (default: all 1).
    rrf_k: the rank offset (60 in the original paper); larger values flatten the ranks.

    Returns
    -------
    ``(scores, ids)``: float32 ``(q, k)`` and int64 ``(q, k)``, best first (ties broken by
    the lower id), padded with ``0`` / ``-1``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not rankings:
        raise ValueError("rankings: expected at least one ranked list")
    weights = [1.0] * len(rankings) if weights is None else list(weights)
    if len(weights) != len(rankings):
        raise ValueError(f"weights: expected {len(rankings)} values, got {len(weights)}")
    if rrf_k < 0:
        raise ValueError(f"rrf_k must be >= 0, got {rrf_k}")
    rankings = [np.asarray(r, dtype=np.int64) for r in rankings]
    n = rankings[0].shape[0]
    if any(r.ndim != 2 or r.shape[0] != n for r in rankings):
        raise ValueError("rankings: expected 2-D matrices with the same number of rows")
    ids = np.hstack(rankings)
    gains = np.hstack([rank_contributions(r, w, rrf_k) for r, w in zip(rankings, weights)])
    out_scores = np.zeros((n, k), dtype=np.float32)
    out_ids = np.full((n, k), -1, dtype=np.int64)
    for q in range(n):
        present = ids[q] >= 0
        if not present.any():
            continue
        unique, inverse = np.unique(ids[q, present], return_inverse=True)
        fused = np.bincount(inverse, weights=gains[q, present], minlength=len(unique))
        order = np.lexsort((unique, -fused))[:k]
        out_scores[q, : len(order)] = fused[order]
        out_ids[q, : len(order)] = unique[order]
    return out_scores, out_ids
