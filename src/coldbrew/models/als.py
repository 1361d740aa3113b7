"""Implicit-feedback ALS (the ``implicit`` library) with batched fold-in of new users."""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse as sp

from coldbrew.config import ALSConfig, default_threads
from coldbrew.errors import NotFittedError

__all__ = ["ALSModel", "confidence"]

# fold_in stacks up to this many rows (sorted by length) into one batched product, and at
# most this many gathered factor floats (rows x longest row x factors: 32 MB of float64).
_BLOCK_ROWS = 128
_BLOCK_FLOATS = 4_000_000


def confidence(strengths: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    """ALS confidence ``alpha * log1p(strength)`` (log damps wholesale-size repeats)."""
    out = strengths.astype(np.float32, copy=True)
    out.data = (alpha * np.log1p(out.data)).astype(np.float32)
    return out


class ALSModel:
    """Weighted matrix factorisation for implicit feedback (Hu, Koren & Volinsky 2008).

    Training is done by ``implicit``; ``fold_in`` solves the same per-user least-squares step
    for users known only by a history, so new events are reflected without retraining.
    """

    def __init__(self, config: ALSConfig | None = None) -> None:
        self.config = config or ALSConfig()

    def fit(self, confidences: sp.csr_matrix, progress: bool | None = None) -> ALSModel:
        """Fit on a users x items CSR of confidences (float32). Returns ``self``."""
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        cfg = self.config
        show = sys.stderr.isatty() if progress is None else progress
        # implicit's own threads do the work; BLAS threads on top only oversubscribe.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=cfg.factors,
                regularization=cfg.regularization,
                iterations=cfg.iterations,
                random_state=cfg.random_state,
                num_threads=default_threads(),
            )
            model.fit(confidences.astype(np.float32).tocsr(), show_progress=show)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self._prepare()
        return self

    @classmethod
    def from_factors(cls, config: ALSConfig, item_factors: np.ndarray, user_factors: np.ndarray) -> ALSModel:
        model = cls(config)
        model.item_factors_ = np.ascontiguousarray(item_factors, dtype=np.float32)
        model.user_factors_ = np.ascontiguousarray(user_factors, dtype=np.float32)
        model._prepare()
        return model

    def _prepare(self) -> None:
        y = self.item_factors_.astype(np.float64)
        self._y64 = y
        self._yty = y.T @ y

    def fold_in(self, confidences: sp.csr_matrix) -> np.ndarray:
        """User factors for rows of confidences (n x n_items CSR), float32 (n, factors).

        Solves ``(YtY + Yt (C - I) Y + reg I) x = Yt C p`` per row; an empty row gives zeros.
        Each row reads only its own items' factors: rows of similar length are stacked,
        padded to the longest, and their ``f x f`` systems built by one batched product.
        Time and memory grow with the rows' events, not with the catalog.
        """
        if not hasattr(self, "item_factors_"):
            raise NotFittedError("ALSModel.fold_in called before fit")
        y = self.item_factors_
        n_items, f = y.shape
        rows = confidences.tocsr()
        if rows.shape[1] != n_items:
            raise ValueError(f"fold_in: expected {n_items} columns, got {rows.shape[1]}")
        out = np.zeros((rows.shape[0], f), dtype=np.float32)
        lengths = np.diff(rows.indptr)
        nonempty = np.flatnonzero(lengths > 0)
        if len(nonempty) == 0:
            return out
        base = self._yty + self.config.regularization * np.eye(f)
        y64 = getattr(self, "_y64", None)
        if y64 is None or y64.shape != y.shape:
            y64 = self._y64 = y.astype(np.float64)
        order = nonempty[np.argsort(lengths[nonempty], kind="stable")]
        start = 0
        while start < len(order):
            end = min(start + _BLOCK_ROWS, len(order))
            longest = int(lengths[order[end - 1]])
            end = min(end, start + max(1, _BLOCK_FLOATS // (longest * f)))
            sel = order[start:end]
            longest = int(lengths[sel[-1]])
            lo = rows.indptr[sel]
            pos = lo[:, None] + np.arange(longest)[None, :]
            valid = pos < rows.indptr[sel + 1][:, None]
            pos = np.where(valid, pos, lo[:, None])
            c = np.where(valid, rows.data[pos].astype(np.float64), 0.0)  # (b, m); 0 = padding
            yi = y64[rows.indices[pos]]  # (b, m, f)
            weighted = yi * np.where(valid, c - 1.0, 0.0)[:, :, None]
            a = base[None, :, :] + np.matmul(weighted.transpose(0, 2, 1), yi)
            b = np.matmul(c[:, None, :], yi)[:, 0, :]
            out[sel] = np.linalg.solve(a, b[:, :, None])[:, :, 0]
            start = end
        return out
