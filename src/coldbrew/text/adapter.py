"""Adapting the frozen text space to a shop's behaviour: a residual low-rank adapter.

The encoder's vectors say which products are *described* alike; a shop's events say which
products are *bought* alike (a gift bag goes with wrapping paper, not with other bags). The
adapter is a small map over frozen encoder outputs,

    f(x) = normalise(x + (x A) B),     A (d, r), B (r, d),

trained contrastively on (user history -> next item) pairs taken from the training events:
the query is the normalised, time-decayed sum of the adapted vectors of the user's previous
items (exactly how the pipeline builds a text profile), the positive is the adapted vector of
the item that came next, and the other positives of the batch are the negatives (InfoNCE with
a temperature). ``B`` starts at zero, so training starts from the encoder's own space; the
epoch with the best next-item NDCG@20 on a temporal hold-out of the pairs is kept, and if no
epoch beats the untouched space (epoch 0) the adapter stays the identity. Everything is numpy
(hand-written gradients, Adam), so it trains on a CPU in minutes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from coldbrew.config import AdapterConfig
from coldbrew.errors import NotFittedError

__all__ = [
    "NextItemPairs",
    "TextAdapter",
    "adapt",
    "contrastive_loss",
    "next_item_metrics",
    "next_item_pairs",
    "train_adapter",
]

_DAY = 86_400.0
_K = 20
_MAX_VALIDATION = 5_000


@dataclass(frozen=True)
class NextItemPairs:
    """Training pairs in index space, sorted by the time of the next item.

    ``history`` (n, n_items) float32 CSR: decayed weights of the previous items of the user;
    ``targets`` (n,) int64: the item that came next; ``timestamps`` (n,) int64: its time.
    """

    history: sp.csr_matrix
    targets: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, rows: np.ndarray) -> NextItemPairs:
        """The pairs at ``rows`` (int positions), in that order."""
        return NextItemPairs(self.history[rows], self.targets[rows], self.timestamps[rows])


def next_item_pairs(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    timestamps: np.ndarray,
    n_items: int,
    *,
    history_length: int = 20,
    half_life_days: float = 30.0,
    max_pairs: int | None = None,
    seed: int = 0,
) -> NextItemPairs:
    """(history -> next item) pairs from positive events.

    Each user's events are ordered by time (ties keep row order, so items of one basket
    follow each other); every event after a user's first becomes a pair whose history is
    the user's ``history_length`` previous events, each weighted by
    ``0.5 ** (age_days / half_life_days)`` relative to the next item's time (repeats add up).
    Pairs whose next item is already in the history are dropped (the pipeline never
    recommends history items). ``max_pairs`` keeps a random subset (drawn with ``seed``).

    Parameters
    ----------
    user_idx, item_idx: (n,) int arrays of the events (dense indices).
    timestamps: (n,) int64 Unix seconds.
    n_items: size of the item index space.

    Returns
    -------
    NextItemPairs sorted by the next item's time (ties by event order).
    """
    user_idx = np.asarray(user_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    if not len(user_idx) == len(item_idx) == len(timestamps):
        raise ValueError("next_item_pairs: user_idx, item_idx and timestamps must have the same length")
    if history_length < 1:
        raise ValueError(f"next_item_pairs: history_length must be >= 1, got {history_length}")
    order = np.lexsort((np.arange(len(user_idx)), timestamps, user_idx))
    users, items, times = user_idx[order], item_idx[order], timestamps[order]
    n = len(users)
    has_history = np.zeros(n, dtype=bool)
    repeat = np.zeros(n, dtype=bool)
    for lag in range(1, history_length + 1):
        same = np.zeros(n, dtype=bool)
        same[lag:] = users[lag:] == users[:-lag]
        has_history |= same
        shifted = np.full(n, -1, dtype=np.int64)
        shifted[lag:] = items[:-lag]
        repeat |= same & (shifted == items)
    rows = np.flatnonzero(has_history & ~repeat)
    if max_pairs is not None and len(rows) > max_pairs:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_pairs, replace=False))
    # Sort the pairs by the next item's time so that a temporal hold-out is a suffix.
    rows = rows[np.argsort(times[rows], kind="stable")]
    pair_rows, cols, weights = [], [], []
    rate = np.log(2.0) / (half_life_days * _DAY) if half_life_days > 0 else 0.0
    for lag in range(1, history_length + 1):
        prev = rows - lag
        ok = prev >= 0
        ok[ok] = users[prev[ok]] == users[rows[ok]]
        age = np.maximum(times[rows[ok]] - times[prev[ok]], 0).astype(np.float64)
        pair_rows.append(np.flatnonzero(ok))
        cols.append(items[prev[ok]])
        weights.append(np.exp(-rate * age))
    history = sp.csr_matrix(
        (np.concatenate(weights).astype(np.float32), (np.concatenate(pair_rows), np.concatenate(cols))),
        shape=(len(rows), n_items), dtype=np.float32,
    )
    history.sum_duplicates()
    return NextItemPairs(history, items[rows], times[rows])


def adapt(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``normalise(x + (x A) B)`` row-wise: (n, d) in, (n, d) out, zero rows stay zero."""
    return _forward(vectors, a, b)[0]


def _forward(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = x @ a
    z = x + h @ b
    norm = np.sqrt(np.einsum("ij,ij->i", z, z))[:, None]
    y = np.divide(z, norm, out=np.zeros_like(z), where=norm > 0)
    return y, h, norm


def _normalise_backward(y: np.ndarray, norm: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Gradient through ``y = z / ||z||`` (rows with ``||z|| = 0`` get zero)."""
    dz = dy - y * np.einsum("ij,ij->i", y, dy)[:, None]
    return np.divide(dz, norm, out=np.zeros_like(dz), where=norm > 0)


def contrastive_loss(
    a: np.ndarray,
    b: np.ndarray,
    vectors: np.ndarray,
    history: sp.csr_matrix,
    targets: np.ndarray,
    temperature: float,
    log_q: np.ndarray | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """InfoNCE loss of a batch of pairs with in-batch negatives, and its gradients.

    Parameters
    ----------
    a: (d, r) and b: (r, d) the adapter's weights (float32 or float64).
    vectors: (n_items, d) frozen encoder outputs, same dtype.
    history: (n, n_items) CSR of history weights; targets: (n,) int next items.
    temperature: the softmax temperature.
    log_q: (n_items,) optional log sampling probability of each item as an in-batch
        negative; subtracted from its logits (the "logQ" correction: in-batch negatives are
        drawn by popularity, so without it the loss over-penalises popular items, while the
        pipeline ranks against the whole catalog).

    Returns
    -------
    (mean loss, dL/dA (d, r), dL/dB (r, d)). Another pair with the same next item is not
    used as a negative (it would be a false one).
    """
    dtype = vectors.dtype
    targets = np.asarray(targets, dtype=np.int64)
    n = len(targets)
    cols = np.unique(np.concatenate([history.indices, targets]))
    local = sp.csr_matrix(
        (history.data.astype(dtype), np.searchsorted(cols, history.indices), history.indptr),
        shape=(n, len(cols)),
    )
    local_t = np.searchsorted(cols, targets)
    x = vectors[cols]
    y, h, norm = _forward(x, a, b)
    s = np.asarray(local @ y)
    s_norm = np.sqrt(np.einsum("ij,ij->i", s, s))[:, None]
    q = np.divide(s, s_norm, out=np.zeros_like(s), where=s_norm > 0)
    p = y[local_t]
    logits = (q @ p.T) / temperature
    if log_q is not None:
        logits -= log_q[targets][None, :]
    false_negative = (local_t[:, None] == local_t[None, :]) & ~np.eye(n, dtype=bool)
    logits[false_negative] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    prob = exp / exp.sum(axis=1, keepdims=True)
    diag = np.arange(n)
    loss = float(-np.mean(np.log(np.maximum(prob[diag, diag], np.finfo(dtype).tiny))))
    g = prob
    g[diag, diag] -= 1.0
    g /= n * temperature
    dq = g @ p
    dp = g.T @ q
    ds = _normalise_backward(q, s_norm, dq)
    dy = np.asarray(local.T @ ds)
    np.add.at(dy, local_t, dp)
    dz = _normalise_backward(y, norm, dy)
    grad_a = x.T @ (dz @ b.T)
    grad_b = h.T @ dz
    return loss, grad_a.astype(dtype), grad_b.astype(dtype)


def next_item_metrics(adapted: np.ndarray, pairs: NextItemPairs, k: int = _K) -> tuple[float, float]:
    """Next-item (recall@k, NDCG@k) of profile -> item retrieval in a vector space.

    ``adapted`` (n_items, d): item vectors; each pair's query is the normalised history sum
    of them; items in the history are not ranked (as in the pipeline).
    """
    if len(pairs) == 0:
        return float("nan"), float("nan")
    hits, gains = [], []
    for start in range(0, len(pairs), 1024):
        chunk = pairs.take(np.arange(start, min(start + 1024, len(pairs))))
        q = np.asarray(chunk.history @ adapted)
        q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        scores = q @ adapted.T
        rows = np.repeat(np.arange(len(chunk)), np.diff(chunk.history.indptr))
        scores[rows, chunk.history.indices] = -np.inf
        target = scores[np.arange(len(chunk)), chunk.targets]
        rank = (scores > target[:, None]).sum(axis=1)
        hit = rank < k
        hits.append(hit)
        gains.append(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0))
    return float(np.concatenate(hits).mean()), float(np.concatenate(gains).mean())


class TextAdapter:
    """The residual low-rank adapter ``f(x) = normalise(x + (x A) B)`` over text vectors.

    Attributes after :meth:`fit`: ``a_`` (d, r) and ``b_`` (r, d) float32; ``curve_`` the
    per-epoch ``{"epoch", "loss", "val_recall", "val_ndcg", "seconds"}`` (epoch 0 = the
    untouched space); ``best_epoch_`` the epoch whose weights were kept.
    """

    def __init__(self, config: AdapterConfig | None = None) -> None:
        self.config = config or AdapterConfig()

    @classmethod
    def from_arrays(cls, config: AdapterConfig, a: np.ndarray, b: np.ndarray) -> TextAdapter:
        """Rebuild a fitted adapter from its saved weights."""
        a = np.ascontiguousarray(a, dtype=np.float32)
        b = np.ascontiguousarray(b, dtype=np.float32)
        if a.ndim != 2 or b.ndim != 2 or a.shape != b.shape[::-1]:
            raise ValueError(f"adapter weights: expected shapes (d, r) and (r, d), got {a.shape} and {b.shape}")
        adapter = cls(config)
        adapter.a_, adapter.b_ = a, b
        adapter.curve_ = {}
        adapter.best_epoch_ = -1
        return adapter

    @property
    def dim(self) -> int:
        """Dimension d of the vectors the adapter maps."""
        self._check_fitted()
        return int(self.a_.shape[0])

    def _check_fitted(self) -> None:
        if not hasattr(self, "a_"):
            raise NotFittedError("TextAdapter used before fit")

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Adapted vectors: float32 (n, d) in, float32 (n, d) unit rows out (zero rows stay zero)."""
        self._check_fitted()
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.a_.shape[0]:
            raise ValueError(f"TextAdapter.transform: expected (n, {self.a_.shape[0]}) vectors, got {x.shape}")
        return np.ascontiguousarray(adapt(x, self.a_, self.b_), dtype=np.float32)

    def fit(self, vectors: np.ndarray, pairs: NextItemPairs, progress: bool | None = None) -> TextAdapter:
        """Train on ``pairs`` over frozen item ``vectors`` (n_items, d) float32. Returns ``self``.

        The latest ``validation_share`` of the pairs (by time, at most 5,000) are held out for
        early stopping; the remaining ones are shuffled into batches every epoch.
        """
        cfg = self.config
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        d = x.shape[1]
        rng = np.random.default_rng(cfg.seed)
        a = (rng.standard_normal((d, cfg.rank)) / np.sqrt(d)).astype(np.float32)
        b = np.zeros((cfg.rank, d), dtype=np.float32)
        n_valid = min(int(round(len(pairs) * cfg.validation_share)), _MAX_VALIDATION)
        if len(pairs) - n_valid < 2:
            raise ValueError(f"adapter: too few (history -> next item) pairs to train ({len(pairs)})")
        train = pairs.take(np.arange(len(pairs) - n_valid))
        valid = pairs.take(np.arange(len(pairs) - n_valid, len(pairs)))
        started = time.perf_counter()
        batch = max(2, min(cfg.batch_size, len(train)))
        n_batches = len(train) // batch
        # Epoch 0 = the encoder's own space: its loss on a few batches, its validation metrics.
        probe = [train.take(np.arange(i * batch, (i + 1) * batch)) for i in range(min(n_batches, 8))]
        log_q = None
        if cfg.logq_correction:
            counts = np.bincount(train.targets, minlength=len(x)).astype(np.float64)
            log_q = np.log(np.maximum(counts, 1.0) / len(train)).astype(np.float32)
        loss0 = float(np.mean([contrastive_loss(a, b, x, part.history, part.targets, cfg.temperature, log_q)[0]
                               for part in probe]))
        recall, ndcg = next_item_metrics(x, valid) if n_valid else (float("nan"), float("nan"))
        curve: dict[str, list[float]] = {
            "epoch": [0], "loss": [loss0], "val_recall": [recall], "val_ndcg": [ndcg], "seconds": [0.0],
        }
        best = (ndcg if n_valid else -np.inf, a.copy(), b.copy(), 0)
        moments = [np.zeros_like(a), np.zeros_like(a), np.zeros_like(b), np.zeros_like(b)]
        step, stale = 0, 0
        show = sys.stderr.isatty() if progress is None else progress
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=cfg.epochs, desc="text adapter", unit="epoch", file=sys.stderr)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        try:
            for epoch in range(1, cfg.epochs + 1):
                order = rng.permutation(len(train))
                losses = []
                for i in range(n_batches):
                    rows = np.sort(order[i * batch : (i + 1) * batch])
                    part = train.take(rows)
                    loss, grad_a, grad_b = contrastive_loss(a, b, x, part.history, part.targets, cfg.temperature, log_q)
                    losses.append(loss)
                    step += 1
                    for param, grad, m, v in ((a, grad_a, moments[0], moments[1]), (b, grad_b, moments[2], moments[3])):
                        if cfg.weight_decay > 0:
                            grad = grad + cfg.weight_decay * param
                        m *= beta1
                        m += (1 - beta1) * grad
                        v *= beta2
                        v += (1 - beta2) * grad * grad
                        m_hat = m / (1 - beta1**step)
                        v_hat = v / (1 - beta2**step)
                        param -= (cfg.learning_rate * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)
                recall, ndcg = next_item_metrics(adapt(x, a, b), valid) if n_valid else (float("nan"), float("nan"))
                curve["epoch"].append(epoch)
                curve["loss"].append(float(np.mean(losses)))
                curve["val_recall"].append(recall)
                curve["val_ndcg"].append(ndcg)
                curve["seconds"].append(round(time.perf_counter() - started, 3))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{curve['loss'][-1]:.3f}", val_ndcg=f"{ndcg:.4f}")
                if not n_valid:
                    best = (ndcg, a.copy(), b.copy(), epoch)
                elif ndcg > best[0] + 1e-5:
                    best, stale = (ndcg, a.copy(), b.copy(), epoch), 0
                else:
                    stale += 1
                    if stale >= cfg.patience:
                        break
        finally:
            if bar is not None:
                bar.close()
        _, self.a_, self.b_, self.best_epoch_ = best
        self.curve_ = curve
        return self


def train_adapter(
    config: AdapterConfig,
    vectors: np.ndarray,
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    timestamps: np.ndarray,
    progress: bool | None = None,
) -> TextAdapter | None:
    """Build the pairs of positive events and fit an adapter; ``None`` if there are too few.

    ``vectors`` (n_items, d) float32 frozen text vectors; ``user_idx``, ``item_idx``,
    ``timestamps`` (n,) the positive events. Pairs whose next item or whole history has no
    text (all-zero vectors) teach nothing and are dropped.
    """
    has_text = np.any(np.asarray(vectors) != 0, axis=1)
    pairs = next_item_pairs(
        user_idx, item_idx, timestamps, len(vectors),
        history_length=config.history_length, half_life_days=config.half_life_days,
        max_pairs=config.max_pairs, seed=config.seed,
    )
    useful = has_text[pairs.targets] & (np.asarray(pairs.history @ has_text.astype(np.float32)).ravel() > 0)
    pairs = pairs.take(np.flatnonzero(useful))
    if len(pairs) < max(2 * config.batch_size, 100):
        return None
    return TextAdapter(config).fit(vectors, pairs, progress=progress)
