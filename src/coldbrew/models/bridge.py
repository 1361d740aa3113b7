"""The new-item bridge: text vectors -> collaborative-filtering space.

Trained on warm items (those with interactions), it predicts for an item known only by its
text the CF factors and the popularity prior it would have had. Two estimators are mixed:
a ridge regression (smooth, generalises across words) and a text k-nearest-neighbour average
of warm items' targets (sharp where near-duplicates exist, e.g. colour variants).

The ridge penalty is chosen per shop (``ridge = "auto"``, the default) by exact
leave-one-out error on the warm items themselves: with the eigendecomposition
``Xc^T Xc = V diag(s) V^T`` every penalty on the grid costs one (n, d) product, and the
left-out residual of item i is ``(y_i - yhat_i) / (1 - h_ii)`` with the hat diagonal
``h_ii = sum_j (x_i . v_j)^2 / (s_j + lambda)`` (+ 1/n for the intercept). Each target column
counts relative to its variance, so the units of a target do not decide the choice. On UCI retail this picks 1 (new items 0.2406 -> 0.2456,
random cold items 0.3039 -> 0.3157 against the fixed 10); on MovieLens it picks 10
(benchmarks/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

from coldbrew.config import BridgeConfig
from coldbrew.errors import NotFittedError
from coldbrew.models.augmentation import ANN_FROM

__all__ = ["TextToCFBridge", "RIDGE_GRID", "choose_ridge"]

RIDGE_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
_MAX_CHOICE_ROWS = 20_000  # the choice reads at most this many warm items (seeded sample)


def choose_ridge(x: np.ndarray, y: np.ndarray, grid: tuple[float, ...] = RIDGE_GRID, seed: int = 0) -> tuple[float, dict[float, float]]:
    """The penalty of ``grid`` with the least leave-one-out error of a ridge from ``x`` to ``y``.

    ``x`` (n, d) and ``y`` (n, t) are centred here; the error is the mean over target columns
    of the left-out squared residual divided by that column's variance. Returns the chosen
    penalty and the error of each one. Needs n >= 3; ``grid`` must be non-empty.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) > _MAX_CHOICE_ROWS:
        keep = np.random.default_rng(seed).choice(len(x), _MAX_CHOICE_ROWS, replace=False)
        x, y = x[keep], y[keep]
    n = len(x)
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    evals, vecs = np.linalg.eigh(xc.T @ xc)
    z = xc @ vecs  # (n, d)
    zy = z.T @ yc  # (d, t)
    z2 = z * z
    scale = yc.var(axis=0)
    scale[scale <= 0] = 1.0
    errors: dict[float, float] = {}
    for lam in grid:
        inv = 1.0 / (np.maximum(evals, 0.0) + lam)
        h = np.minimum(z2 @ inv + 1.0 / n, 1.0 - 1e-9)
        residual = (yc - z @ (zy * inv[:, None])) / (1.0 - h)[:, None]
        errors[float(lam)] = float(((residual**2).mean(axis=0) / scale).mean())
    return min(errors, key=errors.__getitem__), errors


class TextToCFBridge:
    """Maps L2-normalised text vectors (n, d) to CF targets (n, t)."""

    def __init__(self, config: BridgeConfig | None = None) -> None:
        self.config = config or BridgeConfig()

    def fit(self, text_vectors: np.ndarray, targets: np.ndarray) -> TextToCFBridge:
        """Learn from warm items: ``text_vectors`` (n, d) float32, ``targets`` (n, t)."""
        x = np.asarray(text_vectors, dtype=np.float64)
        y = np.asarray(targets, dtype=np.float64)
        if len(x) != len(y) or len(x) == 0:
            raise ValueError("bridge: need the same positive number of text vectors and targets")
        self.target_mean_ = y.mean(axis=0)
        yc = y - self.target_mean_
        # Centring both sides gives the ridge an (unpenalised) intercept.
        self.input_mean_ = x.mean(axis=0).astype(np.float32)
        xc = x - self.input_mean_
        d = x.shape[1]
        ridge = self.config.ridge
        if ridge == "auto":
            ridge, self.ridge_errors_ = choose_ridge(x, y) if len(x) >= 3 else (10.0, {})
        self.ridge_ = float(ridge)
        gram = xc.T @ xc + self.ridge_ * np.eye(d)
        self.weights_ = np.linalg.solve(gram, xc.T @ yc).astype(np.float32)  # (d, t)
        self.train_vectors_ = np.ascontiguousarray(text_vectors, dtype=np.float32)
        self.train_targets_ = np.ascontiguousarray(yc, dtype=np.float32)
        return self

    @classmethod
    def from_arrays(
        cls, config: BridgeConfig, weights: np.ndarray, target_mean: np.ndarray,
        train_vectors: np.ndarray, train_targets: np.ndarray, input_mean: np.ndarray,
    ) -> TextToCFBridge:
        """Rebuild a fitted bridge from its saved arrays."""
        bridge = cls(config)
        bridge.input_mean_ = input_mean.astype(np.float32)
        bridge.weights_ = weights.astype(np.float32)
        bridge.target_mean_ = target_mean.astype(np.float64)
        bridge.train_vectors_ = train_vectors.astype(np.float32)
        bridge.train_targets_ = train_targets.astype(np.float32)
        return bridge

    def predict(self, text_vectors: np.ndarray) -> np.ndarray:
        """Predicted targets (n, t) float32; an all-zero text vector gets the mean target."""
        if not hasattr(self, "weights_"):
            raise NotFittedError("TextToCFBridge.predict called before fit")
        x = np.asarray(text_vectors, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, self.weights_.shape[1]), dtype=np.float32)
        linear = (x - self.input_mean_) @ self.weights_
        share = self.config.knn_share
        if share > 0 and len(self.train_vectors_) > 0:
            knn = np.zeros_like(linear)
            k = min(self.config.neighbors, len(self.train_vectors_))
            if len(self.train_vectors_) >= ANN_FROM:  # approximate neighbours, exact cosines
                from coldbrew.models.augmentation import text_neighbors

                top, sims = text_neighbors(x, self.train_vectors_, k, floor=0.0)
                w = sims**3
                w_sum = w.sum(axis=1, keepdims=True)
                w = np.divide(w, w_sum, out=np.zeros_like(w), where=w_sum > 0)
                for start in range(0, len(x), 1024):
                    part = slice(start, start + 1024)
                    knn[part] = np.einsum("nk,nkt->nt", w[part], self.train_targets_[top[part]])
            for start in range(0, len(x) if len(self.train_vectors_) < ANN_FROM else 0, 1024):
                sims = x[start : start + 1024] @ self.train_vectors_.T
                top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
                w = np.maximum(np.take_along_axis(sims, top, axis=1), 0.0) ** 3
                w_sum = w.sum(axis=1, keepdims=True)
                w = np.divide(w, w_sum, out=np.zeros_like(w), where=w_sum > 0)
                knn[start : start + 1024] = np.einsum("nk,nkt->nt", w, self.train_targets_[top])
            linear = (1 - share) * linear + share * knn
        empty = ~np.any(x != 0, axis=1)
        linear[empty] = 0.0
        return (linear + self.target_mean_).astype(np.float32)
