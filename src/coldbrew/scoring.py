"""Candidate sources and the blend: the arrays every scoring path shares, as pure functions.

A *batch* (:class:`Batch`) is one chunk of requests in index space. Each candidate source
(:data:`SOURCES`) gives a raw score per (request, item); the blend standardises each source
over the request's allowed items (:func:`standardise`) and mixes them with weights that move
from the cold set to the warm set as the user's history grows (:func:`blend_weights`);
items without interactions use their own weights (:func:`item_weights`).

:class:`Scorer` is the protocol the fit-time learners (blend tuning, the ranker) work
against: a fitted model that turns requests into a batch, a batch into source scores, and
source scores into blended scores. They never import the pipeline that implements it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from coldbrew.config import BlendConfig, FitConfig
from coldbrew.requests import Request

__all__ = [
    "SOURCES", "Batch", "Scorer", "FitHost", "standardise", "allowed_count", "top_k", "item_scores", "normalise",
    "sparse_row_at", "blend_weights", "item_weights", "shelf_rows", "blend", "source_parts",
]

SOURCES = ("content", "cooccurrence", "cf", "popularity")


@dataclass
class Batch:
    """Per-request inputs in index space for one chunk of requests."""

    strengths: sp.csr_matrix  # (n, n_items) decayed, event-weighted history
    n_history: np.ndarray  # (n,) distinct known history items
    text_vectors: np.ndarray  # (n, d) request text (zeros when none)
    has_text: np.ndarray  # (n,) bool
    allowed: np.ndarray  # (n, n_items) bool
    last_seen: np.ndarray  # (n,) int64 newest history timestamp (any item), -1 without history
    # source name -> (its raw scores, their z-scores): the blend and the ranker share them
    _z: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _count: np.ndarray | None = field(default=None, repr=False)
    shelf: np.ndarray | None = field(default=None, repr=False)  # (n,) bool, see shelf_rows

    def standardised(self, name: str, scores: np.ndarray) -> np.ndarray:
        """``standardise(scores, allowed)``, computed once per source array of this batch."""
        cached = self._z.get(name)
        if cached is None or cached[0] is not scores:
            if self._count is None:
                self._count = allowed_count(self.allowed)
            cached = self._z[name] = (scores, standardise(scores, self.allowed, self._count))
        return cached[1]


class Scorer(Protocol):
    """A fitted model as the fit-time learners see it (implemented by ``Recommender``)."""

    config: FitConfig
    item_warm_: np.ndarray  # (n_items,) bool: items with interactions

    def batch(self, requests: Sequence[Request], dense: bool = True) -> Batch: ...

    def sources(self, batch: Batch, nearest: bool | None = None) -> dict[str, np.ndarray]: ...

    def blend(self, sources: dict[str, np.ndarray], batch: Batch, blend: BlendConfig | None = None) -> np.ndarray: ...


class FitHost(Scorer, Protocol):
    """The model being fitted, as blend tuning and the ranker's training see it: it hands out
    :class:`Scorer` s fitted on hold-out events (fitted once per set of events and settings)."""

    progress: bool | None  # show progress bars (None: only on a terminal)
    tuned_adapter: object  # the text adapter tuning trained (None: none)

    def fitted_on(self, config: FitConfig, catalog, train, text_vectors: np.ndarray, adapter=None,
                  name: str = "parts") -> Scorer: ...


def sparse_row_at(indices: np.ndarray, data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Values of a sparse row (``indices`` / ``data``, duplicates summed) at columns ``at``:
    O(nnz log nnz), where scipy's ``row[:, at]`` allocates as many entries as the row is wide."""
    out = np.zeros(len(at), dtype=np.float64)
    if not len(indices) or not len(at):
        return out
    cols, inverse = np.unique(indices, return_inverse=True)
    sums = np.bincount(inverse, weights=data, minlength=len(cols))
    pos = np.minimum(np.searchsorted(cols, at), len(cols) - 1)
    hit = cols[pos] == at
    out[hit] = sums[pos[hit]]
    return out


def item_scores(queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``queries @ items.T`` (n, n_items), C-ordered.

    For a few query rows it is computed as ``(items @ queries.T).T``: OpenBLAS picks a much
    slower kernel for a few rows against a transposed item matrix (4 x 512 against
    4,635 x 512: 1.46 ms, against 0.63 ms this way). From 64 rows on the direct product is
    fast and already C-ordered (no copy of the (n, n_items) result).
    """
    if len(queries) >= 64:
        return queries @ items.T
    return np.ascontiguousarray((items @ queries.T).T)


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def allowed_count(allowed: np.ndarray) -> np.ndarray:
    """(n, 1) allowed items per row, at least 1: the denominator of :func:`standardise`."""
    return np.maximum(allowed.sum(axis=1, keepdims=True), 1)


def standardise(scores: np.ndarray, allowed: np.ndarray, count: np.ndarray | None = None) -> np.ndarray:
    """Z-score each row over its allowed items; constant rows become 0.

    ``count``: :func:`allowed_count` of ``allowed`` when the caller already has it. Computed
    in blocks of rows that stay in the CPU's cache (the same values as all rows at once).
    """
    if count is None:
        count = allowed_count(allowed)
    out = np.zeros(scores.shape, dtype=np.result_type(scores.dtype, np.float32))
    for rows in _row_blocks(scores.shape):
        _standardise_rows(scores[rows], allowed[rows], count[rows], out[rows])
    return out


_CACHE_FLOATS = 131_072  # floats per row block of standardise and blend: about 512 KB of float32


def _row_blocks(shape: tuple[int, ...]):
    """Slices of whole rows of an ``(n, n_items)`` array, about ``_CACHE_FLOATS`` each (so a
    block's temporaries stay in the CPU's cache; every row is computed as it would be alone)."""
    step = max(1, _CACHE_FLOATS // max(shape[1], 1))
    for start in range(0, shape[0], step):
        yield slice(start, start + step)


def _standardise_rows(scores: np.ndarray, allowed: np.ndarray, count: np.ndarray, out: np.ndarray) -> None:
    masked = np.where(allowed, scores, np.float32(0.0))
    mean = masked.sum(axis=1, keepdims=True, dtype=np.float64) / count
    centred = np.where(allowed, scores - mean.astype(np.float32), np.float32(0.0))
    std = np.sqrt(np.einsum("ij,ij->i", centred, centred)[:, None] / count).astype(np.float32)
    np.divide(centred, std, out=out, where=std > 1e-6)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best per row, best first (ties broken by lower index)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def blend_weights(n_history: np.ndarray, b: BlendConfig) -> np.ndarray:
    """Blend weights (n, len(SOURCES)) interpolated by the user's warmth."""
    cold = np.array([b.cold_content, b.cold_cooccurrence, b.cold_cf, b.cold_popularity])
    warm = np.array([b.warm_content, b.warm_cooccurrence, b.warm_cf, b.warm_popularity])
    warmth = n_history / (n_history + b.warmth_half)
    return ((1 - warmth)[:, None] * cold + warmth[:, None] * warm).astype(np.float32)


def item_weights(b: BlendConfig, shelf: np.ndarray) -> np.ndarray:
    """Weights (n, len(SOURCES)) of items without interactions: ``shelf_*`` on rows where
    ``shelf`` (n,) is true (``None`` falls back to ``new_item_*``), ``new_item_*`` where
    new items compete with the rest of the catalog. Co-occurrence is 0: they have none."""
    listed = np.array([b.new_item_content, 0.0, b.new_item_cf, b.new_item_popularity], np.float32)
    shelved = np.array([listed[0] if b.shelf_content is None else b.shelf_content, 0.0,
                        listed[2] if b.shelf_cf is None else b.shelf_cf,
                        listed[3] if b.shelf_popularity is None else b.shelf_popularity], np.float32)
    return np.where(np.asarray(shelf, dtype=bool)[:, None], shelved, listed)


def shelf_rows(batch: Batch, item_warm: np.ndarray) -> np.ndarray:
    """(n,) bool: the batch's rows that may only get items without interactions (a
    new-arrivals shelf: candidates that are all new products); computed once per batch."""
    if batch.shelf is None:
        batch.shelf = ~batch.allowed[:, item_warm].any(axis=1)
    return batch.shelf


def blend(sources: dict[str, np.ndarray], batch: Batch, b: BlendConfig, item_warm: np.ndarray) -> np.ndarray:
    """Blended scores (n, n_items) float32, -inf on disallowed items.

    Items without interactions (new products) use the ``new_item_*`` weights (``shelf_*``
    on rows that may only get new products): their CF factors and popularity are the
    bridge's estimates, not observations. The per-source parts behind a score are in
    :func:`source_parts` (computed for the shown items only).
    """
    weights = blend_weights(batch.n_history, b)
    cold_weights = item_weights(b, shelf_rows(batch, item_warm))
    cold = np.flatnonzero(~item_warm)
    zs = [batch.standardised(name, sources[name]) for name in SOURCES]
    total = np.zeros(batch.allowed.shape, dtype=np.float32)
    for rows in _row_blocks(total.shape):
        block = total[rows]
        cold_total = np.zeros((len(block), len(cold)), dtype=np.float32)
        for s, z in enumerate(zs):
            block += weights[rows, s, None] * z[rows]
            cold_total += cold_weights[rows, s, None] * z[rows, cold]
        block[:, cold] = cold_total
        block[~batch.allowed[rows]] = -np.inf
    return total


def source_parts(sources: dict[str, np.ndarray], batch: Batch, items: np.ndarray, b: BlendConfig,
                 item_warm: np.ndarray) -> np.ndarray:
    """Weighted source scores (n, len(SOURCES), k) of each row's ``items`` (n, k): what
    :func:`blend` summed for them (the same float32 products)."""
    items = np.asarray(items, dtype=np.int64)
    weights = blend_weights(batch.n_history, b)
    cold_weights = item_weights(b, shelf_rows(batch, item_warm))
    cold = ~item_warm[items]
    parts = np.zeros((len(items), len(SOURCES), items.shape[1]), dtype=np.float32)
    for s, name in enumerate(SOURCES):
        z = np.take_along_axis(batch.standardised(name, sources[name]), items, axis=1)
        parts[:, s] = np.where(cold, cold_weights[:, s, None], weights[:, s, None]) * z
    return parts
