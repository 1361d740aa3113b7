"""LightGCN-style graph collaborative filtering in numpy/scipy (no torch needed).

LightGCN (He et al. 2020) keeps one layer-0 embedding per user and per item and propagates
them over the symmetric-normalised user-item graph ``A_hat = D^-1/2 A D^-1/2`` without any
weights or non-linearity: ``E_(k+1) = A_hat E_k``. The final embedding averages the layers,
``E = (E_0 + ... + E_K) / (K + 1)``, and a user-item score is the dot product of their final
embeddings. Training minimises the BPR loss with one uniformly sampled negative item per
observed edge, plus L2 on the layer-0 embeddings of each batch, with Adam. Gradients flow
back through the propagation with the same sparse products (``A_hat`` is symmetric), so a
mini-batch costs ``2 K`` sparse-dense products and no per-sample Python loop.

**Fold-in.** A user who is not in the graph has no layer-0 embedding, but the propagation
reaches them like any user: with history items ``H`` (degree ``d_u = |H|``) the layers
``k >= 1`` are ``sum_(i in H) E_(k-1)[i] / sqrt(d_u d_i)``, so their final embedding is
``sum_(i in H) S[i] / sqrt(d_u)`` with the per-item *source* vectors
``S[i] = (E_0[i] + ... + E_(K-1)[i]) / (sqrt(d_i) (K + 1))``. For a user in the graph this is
exactly their final embedding minus the layer-0 term ``E_0[u] / (K + 1)`` (the part that only
training could have given them). Items are folded in from users the same way.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from coldbrew.config import GraphConfig
from coldbrew.errors import NotFittedError

__all__ = ["LightGCN", "edge_weights", "fold_in", "normalised_adjacency"]

_K_EVAL = 20


def edge_weights(interactions: sp.csr_matrix, weighted: bool) -> sp.csr_matrix:
    """Graph edges from interaction strengths: 1 per stored value > 0, or ``log1p(strength)``."""
    r = sp.csr_matrix(interactions).astype(np.float32, copy=True)
    r.data = np.where(r.data > 0, np.log1p(np.maximum(r.data, 0.0)) if weighted else 1.0, 0.0).astype(np.float32)
    r.eliminate_zeros()
    return r


def normalised_adjacency(interactions: sp.csr_matrix) -> sp.csr_matrix:
    """``D^-1/2 A D^-1/2`` of the bipartite graph, float32 CSR ``(n_users + n_items)^2``.

    ``interactions`` (n_users, n_items): edge weights (use :func:`edge_weights`); the degree
    of a node is the sum of its edge weights. Nodes without edges keep an all-zero row and column.
    """
    r = sp.csr_matrix(interactions, dtype=np.float32)
    n_users, n_items = r.shape
    adjacency = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    adjacency.resize((n_users + n_items, n_users + n_items))
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    scale = sp.diags(inv_sqrt.astype(np.float32))
    return (scale @ adjacency @ scale).astype(np.float32).tocsr()


def fold_in(sources: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
    """Final embeddings (n, f) float32 of nodes outside the graph, one propagation away.

    ``sources`` (m, f): the source vectors of the other side (item sources to fold in users,
    user sources to fold in items). ``history`` (n, m) CSR: edge weights (1 for a plain
    edge); a row's degree is the sum of its weights. An empty row gives zeros.
    """
    rows = sp.csr_matrix(history, dtype=np.float32)
    if rows.shape[1] != sources.shape[0]:
        raise ValueError(f"fold_in: history has {rows.shape[1]} columns, expected {sources.shape[0]}")
    rows.data = np.maximum(rows.data, 0.0)
    degree = np.asarray(rows.sum(axis=1)).ravel()
    scale = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    return np.asarray(rows @ sources, dtype=np.float32) * scale.astype(np.float32)[:, None]


@dataclass
class _Adam:
    """Dense Adam state for one parameter matrix."""

    learning_rate: float
    m: np.ndarray
    v: np.ndarray
    step: int = 0

    def update(self, param: np.ndarray, grad: np.ndarray) -> None:
        beta1, beta2 = 0.9, 0.999
        self.step += 1
        self.m *= beta1
        self.m += (1 - beta1) * grad
        self.v *= beta2
        self.v += (1 - beta2) * np.square(grad)
        correction = np.sqrt(1 - beta2**self.step) / (1 - beta1**self.step)
        param -= (self.learning_rate * correction) * self.m / (np.sqrt(self.v) + 1e-8)


class LightGCN:
    """Graph CF with linear propagation; BPR-trained; users and items foldable in.

    After ``fit``: ``user_embeddings_`` (n_users, f) and ``item_embeddings_`` (n_items, f)
    are the final (layer-averaged) embeddings; ``user_sources_`` / ``item_sources_`` the
    fold-in source vectors (see the module docstring); ``curve_`` the per-epoch
    ``{"epoch", "loss", "val_ndcg"}``; ``best_epoch_`` the epoch whose embeddings were kept.
    """

    def __init__(self, config: GraphConfig | None = None) -> None:
        self.config = config or GraphConfig()

    # ------------------------------------------------------------------ propagation
    def _propagate(self, adjacency: sp.csr_matrix, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(final embeddings, sum of layers 0..K-1), both (n_nodes, f) float32."""
        layers = self.config.layers
        total = base.copy()
        partial = base.copy() if layers > 0 else np.zeros_like(base)
        current = base
        for k in range(layers):
            current = adjacency @ current
            total += current
            if k < layers - 1:
                partial += current
        return total / np.float32(layers + 1), partial

    def _set_embeddings(self, r: sp.csr_matrix, base: np.ndarray) -> None:
        adjacency = normalised_adjacency(r)
        n_users = r.shape[0]
        final, partial = self._propagate(adjacency, base)
        degree = np.concatenate([np.asarray(r.sum(axis=1)).ravel(), np.asarray(r.sum(axis=0)).ravel()]).astype(np.float32)
        inv_sqrt = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
        sources = partial * (inv_sqrt / np.float32(self.config.layers + 1))[:, None]
        self.user_embeddings_ = np.ascontiguousarray(final[:n_users], dtype=np.float32)
        self.item_embeddings_ = np.ascontiguousarray(final[n_users:], dtype=np.float32)
        self.user_sources_ = np.ascontiguousarray(sources[:n_users], dtype=np.float32)
        self.item_sources_ = np.ascontiguousarray(sources[n_users:], dtype=np.float32)
        self.base_embeddings_ = np.ascontiguousarray(base, dtype=np.float32)

    # ------------------------------------------------------------------ training
    def loss_and_gradient(
        self, adjacency: sp.csr_matrix, base: np.ndarray, users: np.ndarray,
        positives: np.ndarray, negatives: np.ndarray, n_users: int,
    ) -> tuple[float, np.ndarray]:
        """Mean BPR loss + L2 of one batch and its gradient w.r.t. ``base`` (n_nodes, f).

        ``users``, ``positives``, ``negatives``: (b,) int64 user and item indices (items are
        node ``n_users + i``). The L2 term is ``l2 / 2`` times the mean over the batch of the
        squared norms of the three layer-0 embeddings involved.
        """
        final, _ = self._propagate(adjacency, base)
        b = len(users)
        pos_nodes, neg_nodes = positives + n_users, negatives + n_users
        eu, ep, en = final[users], final[pos_nodes], final[neg_nodes]
        diff = ep - en
        x = np.einsum("bf,bf->b", eu, diff).astype(np.float64)
        loss = float(np.mean(np.logaddexp(0.0, -x)))
        g = (-1.0 / (1.0 + np.exp(x)) / b).astype(np.float32)[:, None]  # d loss / d x
        n_nodes = base.shape[0]
        # d loss / d final, scattered onto the nodes: users get g (ep - en), positive items
        # g eu, negative items -g eu; two sparse scatters (no stacked 3b copy).
        rows = np.arange(b)
        to_users = sp.csr_matrix((np.ones(b, dtype=np.float32), (users, rows)), shape=(n_nodes, b))
        to_items = sp.csr_matrix(
            (np.concatenate([np.ones(b, np.float32), -np.ones(b, np.float32)]),
             (np.concatenate([pos_nodes, neg_nodes]), np.concatenate([rows, rows]))), shape=(n_nodes, b)
        )
        diff *= g
        eu = eu * g
        upstream = np.asarray(to_users @ diff, dtype=np.float32)
        upstream += np.asarray(to_items @ eu, dtype=np.float32)
        # A_hat is symmetric, so the backward pass is the forward propagation of the gradient.
        grad, _ = self._propagate(adjacency, upstream)
        l2 = self.config.l2
        if l2 > 0:
            # Each of the batch's 3b node slots adds l2/b * its layer-0 row: count x row per node.
            count = np.bincount(np.concatenate([users, pos_nodes, neg_nodes]), minlength=n_nodes).astype(np.float32)
            loss += float(0.5 * l2 * np.dot(count, np.einsum("nf,nf->n", base, base)) / b)
            grad += ((l2 / b) * count)[:, None] * base
        return loss, grad

    def fit(self, interactions: sp.csr_matrix, progress: bool | None = None,
            init: np.ndarray | None = None) -> LightGCN:
        """Train on a users x items CSR of strengths (values > 0 are edges). Returns ``self``.

        ``init`` (n_users + n_items, factors), optional: layer-0 embeddings to start from (a
        warm start, e.g. the model of an earlier period's events, rows mapped to this
        matrix's users and items); rows that are NaN, and nodes without edges here, start
        random as in a cold start. A warm start is validated before its first epoch too, so
        training keeps it when no epoch beats it.
        """
        cfg = self.config
        r = edge_weights(interactions, cfg.weighted)
        n_users, n_items = r.shape
        if r.nnz == 0:
            raise ValueError("LightGCN.fit: the interaction matrix has no edges")
        rng = np.random.default_rng(cfg.random_state)
        train, val_users, val_items = _hold_out(r, cfg.validation_users, rng)
        adjacency = normalised_adjacency(train)
        coo = train.tocoo()
        edge_users, edge_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        base = (rng.standard_normal((n_users + n_items, cfg.factors)) * 0.1).astype(np.float32)
        if init is not None:
            init = np.asarray(init, dtype=np.float32)
            if init.shape != base.shape:
                raise ValueError(f"LightGCN.fit: init has shape {init.shape}, expected {base.shape}")
            degree = np.concatenate([np.diff(r.indptr), np.bincount(r.indices, minlength=n_items)])
            use = (degree > 0) & np.isfinite(init).all(axis=1)
            base[use] = init[use]
        if not cfg.user_embeddings:
            base[:n_users] = 0.0
        adam = _Adam(cfg.learning_rate, np.zeros_like(base), np.zeros_like(base))
        show = sys.stderr.isatty() if progress is None else progress
        from tqdm.auto import tqdm

        bar = tqdm(range(1, cfg.epochs + 1), desc="LightGCN", unit="epoch", disable=not show, leave=False)
        self.curve_: dict[str, list[float]] = {"epoch": [], "loss": [], "val_ndcg": []}
        best, best_base, waited = -np.inf, base.copy(), 0
        self.best_epoch_ = 0
        if init is not None:  # epoch 0: the warm start itself
            best = self._validate(adjacency, base, train, val_users, val_items)
            best = best if np.isfinite(best) else -np.inf
        for epoch in bar:
            order = rng.permutation(len(edge_users))
            losses = []
            for start in range(0, len(order), cfg.batch_size):
                sel = order[start : start + cfg.batch_size]
                negatives = rng.integers(0, n_items, size=len(sel))
                loss, grad = self.loss_and_gradient(
                    adjacency, base, edge_users[sel], edge_items[sel], negatives, n_users
                )
                if not cfg.user_embeddings:  # users stay what propagation makes of them
                    grad[:n_users] = 0.0
                adam.update(base, grad)
                losses.append(loss * len(sel))
            epoch_loss = float(np.sum(losses) / len(order))
            val = self._validate(adjacency, base, train, val_users, val_items)
            self.curve_["epoch"].append(epoch)
            self.curve_["loss"].append(round(epoch_loss, 6))
            self.curve_["val_ndcg"].append(round(val, 6) if np.isfinite(val) else float("nan"))
            bar.set_postfix(loss=f"{epoch_loss:.4f}", val_ndcg=f"{val:.4f}")
            if not np.isfinite(val):  # no validation users: keep the last epoch
                best_base, self.best_epoch_ = base, epoch
                continue
            if val > best + 1e-5:
                best, best_base, waited, self.best_epoch_ = val, base.copy(), 0, epoch
            else:
                waited += 1
                if waited > cfg.patience:
                    break
        bar.close()
        # The held-out validation edges rejoin the graph for the final embeddings.
        self._set_embeddings(r, best_base)
        return self

    def _validate(
        self, adjacency: sp.csr_matrix, base: np.ndarray, train: sp.csr_matrix,
        users: np.ndarray, items: np.ndarray,
    ) -> float:
        """NDCG@20 of each validation user's held-out item among items outside their graph edges."""
        if len(users) == 0:
            return float("nan")
        final, _ = self._propagate(adjacency, base)
        n_users = train.shape[0]
        scores = final[users] @ final[n_users:].T
        seen = train[users]
        scores[seen.nonzero()] = -np.inf
        target = scores[np.arange(len(users)), items]
        rank = (scores > target[:, None]).sum(axis=1)
        gains = np.where(rank < _K_EVAL, 1.0 / np.log2(rank + 2.0), 0.0)
        return float(gains.mean())

    # ------------------------------------------------------------------ use
    @classmethod
    def from_arrays(
        cls, config: GraphConfig, user_embeddings: np.ndarray, item_embeddings: np.ndarray,
        user_sources: np.ndarray, item_sources: np.ndarray,
    ) -> LightGCN:
        """Rebuild a fitted model from its saved arrays (all float32, users or items by f)."""
        model = cls(config)
        model.user_embeddings_ = np.ascontiguousarray(user_embeddings, dtype=np.float32)
        model.item_embeddings_ = np.ascontiguousarray(item_embeddings, dtype=np.float32)
        model.user_sources_ = np.ascontiguousarray(user_sources, dtype=np.float32)
        model.item_sources_ = np.ascontiguousarray(item_sources, dtype=np.float32)
        return model

    def _check(self) -> None:
        if not hasattr(self, "item_sources_"):
            raise NotFittedError("LightGCN used before fit: call fit() or load a model directory")

    def fold_in_users(self, history: sp.csr_matrix) -> np.ndarray:
        """Final embeddings (n, f) of users known by a history (n, n_items) of edge weights."""
        self._check()
        return fold_in(self.item_sources_, history)

    def fold_in_items(self, users: sp.csr_matrix) -> np.ndarray:
        """Final embeddings (n, f) of items known by their users (n, n_users) of edge weights."""
        self._check()
        return fold_in(self.user_sources_, users)


def _hold_out(
    r: sp.csr_matrix, max_users: int, rng: np.random.Generator
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Remove one random edge from up to ``max_users`` users with at least 3 edges.

    Returns the training matrix, the validation users (v,) and their held-out items (v,).
    """
    counts = np.diff(r.indptr)
    eligible = np.flatnonzero(counts >= 3)
    if max_users == 0 or len(eligible) == 0:
        return r, np.zeros(0, np.int64), np.zeros(0, np.int64)
    users = np.sort(rng.choice(eligible, size=min(max_users, len(eligible)), replace=False))
    offsets = (rng.random(len(users)) * counts[users]).astype(np.int64)
    positions = r.indptr[users] + offsets
    items = r.indices[positions].astype(np.int64)
    keep = np.ones(r.nnz, dtype=bool)
    keep[positions] = False
    coo = r.tocoo()
    train = sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=r.shape, dtype=np.float32
    )
    return train, users.astype(np.int64), items
