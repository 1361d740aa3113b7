"""Implicit-feedback ALS (the ``implicit`` library) with batched fold-in of new users."""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse as sp

from coldbrew.config import ALSConfig, default_threads
from coldbrew.errors import NotFittedError

__all__ = ["ALSModel", "confidence"]

# Above this many floats the vectorised fold-in (items x factors^2) is replaced by a loop.
_VECTORISED_LIMIT = 64_000_000
# Up to this many users the per-row gather is cheaper than the items x factors^2 product.
_SMALL_BATCH = 32


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
        self._yy: np.ndarray | None = None

    def fold_in(self, confidences: sp.csr_matrix) -> np.ndarray:
        """User factors for rows of confidences (n x n_items CSR), float32 (n, factors).

        Solves ``(YtY + Yt (C - I) Y + reg I) x = Yt C p`` per row; an empty row gives zeros.
        """
        if not hasattr(self, "item_factors_"):
            raise NotFittedError("ALSModel.fold_in called before fit")
        y = self.item_factors_
        n_items, f = y.shape
        rows = confidences.tocsr()
        if rows.shape[1] != n_items:
            raise ValueError(f"fold_in: expected {n_items} columns, got {rows.shape[1]}")
        out = np.zeros((rows.shape[0], f), dtype=np.float32)
        nonempty = np.flatnonzero(np.diff(rows.indptr) > 0)
        if len(nonempty) == 0:
            return out
        base = self._yty + self.config.regularization * np.eye(f)
        y64 = getattr(self, "_y64", None)
        if y64 is None or y64.shape != y.shape:
            y64 = self._y64 = y.astype(np.float64)
        if len(nonempty) > _SMALL_BATCH and n_items * f * f <= _VECTORISED_LIMIT:
            if self._yy is None:
                self._yy = np.einsum("if,ig->ifg", y64, y64).reshape(n_items, f * f)
            for start in range(0, len(nonempty), 1024):
                sel = nonempty[start : start + 1024]
                c = rows[sel].astype(np.float64)
                cm1 = c.copy()
                cm1.data = cm1.data - 1.0
                a = base[None, :, :] + np.asarray(cm1 @ self._yy).reshape(len(sel), f, f)
                b = np.asarray(c @ y64)
                out[sel] = np.linalg.solve(a, b[:, :, None])[:, :, 0]
        else:  # few rows (a service request) or a huge catalog: gather each row's items
            a = np.empty((len(nonempty), f, f))
            b = np.empty((len(nonempty), f))
            for j, r in enumerate(nonempty):
                lo, hi = rows.indptr[r], rows.indptr[r + 1]
                idx, c = rows.indices[lo:hi], rows.data[lo:hi].astype(np.float64)
                yi = y64[idx]
                a[j] = base + (yi.T * (c - 1.0)) @ yi
                b[j] = yi.T @ c
            out[nonempty] = np.linalg.solve(a, b[:, :, None])[:, :, 0]
        return out
