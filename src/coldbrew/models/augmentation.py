"""Data augmentation for sparse interaction data (all switchable by ``[augmentation]``).

* **Pseudo-interactions** (:func:`pseudo_user_rows`, :func:`pseudo_interactions`): an item
  with few or no interactions borrows weak interactions from the users of its text-nearest
  warm items (strength ``weight * similarity``). Used before CF training for sparse items,
  and at ``add_items`` time to fold new items into the CF space from those pseudo users.
* **Bootstrap ensemble** (:func:`bootstrap_als`): ALS fitted on resampled users' rows; the
  item factors of each member are rotated onto the first member's (orthogonal Procrustes;
  ALS is defined up to a rotation) and averaged.
* **Generative densification** (:func:`markov_transitions`, :func:`generative_interactions`):
  a first-order item-transition model of the users' time-ordered histories samples a few
  synthetic next items for users with short histories.

Everything is index space: users x items CSR matrices, float32.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from coldbrew.config import ALSConfig

__all__ = [
    "align_factors",
    "bootstrap_als",
    "generative_interactions",
    "markov_transitions",
    "pseudo_interactions",
    "pseudo_user_rows",
    "text_neighbors",
]

_MAX_PSEUDO_USERS_PER_NEIGHBOR = 5

#: From this many pool rows on, :func:`text_neighbors` searches a faiss IVF index (approximate)
#: instead of comparing every query with every pool row; below it results are exact.
ANN_FROM = 50_000
#: ... and at least this many queries (fewer are compared exactly, in bounded blocks, unless
#: an index over the same pool is already built): training and filling an IVF index over 1M
#: rows costs more than comparing a few thousand queries with every row.
ANN_MIN_QUERIES = 4096
#: IVF lists scanned per query in these batch searches (of about ``sqrt(pool)``).
ANN_NPROBE = 8


def text_neighbors(
    queries: np.ndarray, pool: np.ndarray, k: int, exclude_self: np.ndarray | None = None,
    floor: float | None = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar pool rows of each query, best first.

    ``queries`` (n, d) and ``pool`` (m, d) float32, L2-normalised (zero rows have no
    neighbours: similarity 0). ``exclude_self`` (n,) int: a pool row to skip per query (-1
    for none). Returns ``(indices (n, k) int64, similarities (n, k) float32)``, similarities
    clipped at ``floor`` (``None``: the cosines as they are); ``k`` is capped at the pool size.

    Exact below ``ANN_FROM`` pool rows; from there on the candidates come from a faiss IVF
    index (:func:`_ann_neighbors`: approximate lists, exact cosines).
    """
    n, m = len(queries), len(pool)
    k = min(k, m)
    indices = np.zeros((n, k), dtype=np.int64)
    sims = np.zeros((n, k), dtype=np.float32)
    if k == 0:
        return indices, sims
    if m >= ANN_FROM and (n >= ANN_MIN_QUERIES or (n > 0 and _cached_index(pool) is not None)):
        return _ann_neighbors(queries, pool, k, exclude_self, floor)
    rows_per_block = 1024 if m <= 65_536 else max(16, (1 << 26) // m)  # a block: <= 256 MB
    for start in range(0, n, rows_per_block):
        stop = start + rows_per_block
        block = np.asarray(queries[start:stop] @ pool.T, dtype=np.float32)
        if exclude_self is not None:
            own = exclude_self[start:stop]
            rows = np.flatnonzero(own >= 0)
            block[rows, own[rows]] = -np.inf
        top = np.argpartition(-block, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        indices[start:stop] = np.take_along_axis(top, order, axis=1)
        values = np.take_along_axis(values, order, axis=1)
        sims[start:stop] = values if floor is None else np.maximum(values, floor)
    return indices, sims


_POOL_INDEXES: list[tuple[str, object]] = []  # (key, index), most recent last; at most 2


def _pool_key(pool: np.ndarray) -> str:
    import hashlib

    pool = np.ascontiguousarray(pool, dtype=np.float32)
    return f"{pool.shape}:{hashlib.blake2b(memoryview(pool).cast('B'), digest_size=16).hexdigest()}"


def _cached_index(pool: np.ndarray):
    key = _pool_key(pool)
    return next((index for k, index in _POOL_INDEXES if k == key), None)


def pool_index(pool: np.ndarray):
    """A faiss IVF index over ``pool`` (float32), kept for the last two pools seen.

    ``add_items`` asks for neighbours among the same warm items (or the bridge's training
    items) again and again; an index is reused while the pool's bytes are the same (checked
    by a hash: about a second over 1 GB, against ten or more to train and fill the index)."""
    from coldbrew.retrieval import FaissIndex

    key = _pool_key(pool)
    for i, (k, index) in enumerate(_POOL_INDEXES):
        if k == key:
            _POOL_INDEXES.append(_POOL_INDEXES.pop(i))
            return index
    index = FaissIndex(pool.shape[1], kind="ivf", nprobe=ANN_NPROBE)
    index.add(np.ascontiguousarray(pool, dtype=np.float32))
    _POOL_INDEXES.append((key, index))
    del _POOL_INDEXES[:-2]
    return index


def _ann_neighbors(
    queries: np.ndarray, pool: np.ndarray, k: int, exclude_self: np.ndarray | None, floor: float | None,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`text_neighbors` through a faiss IVF index over ``pool`` (``ANN_NPROBE`` lists).

    ``k + 1`` candidates are fetched when a query has a row to skip; the returned cosines are
    recomputed exactly from the vectors (the index stores 8-bit codes) and re-sorted. A query
    the index finds fewer than ``k`` rows for is padded with row 0 at similarity ``-inf``
    (then clipped to ``floor``).
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    pool = np.ascontiguousarray(pool, dtype=np.float32)
    index = pool_index(pool)
    n = len(queries)
    extra = 1 if exclude_self is not None else 0
    fetch = min(k + extra, len(pool))
    indices = np.zeros((n, k), dtype=np.int64)
    sims = np.zeros((n, k), dtype=np.float32)
    for start in range(0, n, chunk):
        q = queries[start : start + chunk]
        _, ids = index.search(q, fetch)
        if extra:
            own = np.asarray(exclude_self[start : start + chunk], dtype=np.int64)
            ids[(ids == own[:, None]) & (own[:, None] >= 0)] = -1
        valid = ids >= 0
        exact = np.einsum("nd,nkd->nk", q, pool[np.where(valid, ids, 0)]).astype(np.float32)
        exact[~valid] = -np.inf
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        ids = np.take_along_axis(np.where(valid, ids, 0), order, axis=1)
        values = np.take_along_axis(exact, order, axis=1)
        indices[start : start + chunk] = ids
        sims[start : start + chunk] = values if floor is None else np.maximum(values, floor)
    return indices, sims


def pseudo_user_rows(
    interactions: sp.csr_matrix, text_vectors: np.ndarray, targets: np.ndarray,
    sources: np.ndarray, neighbors: int, weight: float,
) -> sp.csr_matrix:
    """Pseudo-interactions of target items with the users of their text neighbours.

    ``interactions`` (n_users, n_items): stored values > 0 are interactions.
    ``text_vectors`` (n_items, d) L2-normalised; ``targets`` (t,) item indices to augment;
    ``sources`` (s,) item indices allowed as neighbours (warm items). Each target takes its
    ``neighbors`` most text-similar sources (itself excluded); a user of a neighbour with
    similarity ``s`` gets ``weight * s`` with the target (a user of several neighbours keeps
    the largest); only each neighbour's ``5`` most active users are used, so a best-seller does
    not hand its whole audience to every look-alike. Returns (t, n_users) float32 CSR.
    """
    n_users = interactions.shape[0]
    targets = np.asarray(targets, dtype=np.int64)
    sources = np.asarray(sources, dtype=np.int64)
    if len(targets) == 0 or len(sources) == 0:
        return sp.csr_matrix((len(targets), n_users), dtype=np.float32)
    position = np.full(text_vectors.shape[0], -1, dtype=np.int64)
    position[sources] = np.arange(len(sources))
    idx, sims = text_neighbors(text_vectors[targets], text_vectors[sources], neighbors, position[targets])
    by_item = sp.csc_matrix(interactions > 0, dtype=np.float32)
    activity = np.asarray((interactions > 0).sum(axis=1)).ravel()
    rows, cols, vals = [], [], []
    for t in range(len(targets)):
        for n_i, s in zip(sources[idx[t]], sims[t]):
            if s <= 0:
                continue
            users = by_item.indices[by_item.indptr[n_i] : by_item.indptr[n_i + 1]]
            if len(users) > _MAX_PSEUDO_USERS_PER_NEIGHBOR:
                users = users[np.argsort(-activity[users], kind="stable")[:_MAX_PSEUDO_USERS_PER_NEIGHBOR]]
            rows.append(np.full(len(users), t, dtype=np.int64))
            cols.append(users.astype(np.int64))
            vals.append(np.full(len(users), weight * s, dtype=np.float32))
    if not rows:
        return sp.csr_matrix((len(targets), n_users), dtype=np.float32)
    coo = sp.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(len(targets), n_users)
    )
    # Duplicates (a user of two neighbours) keep the largest weight, not the sum.
    frame = np.lexsort((-coo.data, coo.col, coo.row))
    r, c, v = coo.row[frame], coo.col[frame], coo.data[frame]
    first = np.ones(len(r), dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    return sp.csr_matrix((v[first], (r[first], c[first])), shape=(len(targets), n_users), dtype=np.float32)


def pseudo_interactions(
    interactions: sp.csr_matrix, text_vectors: np.ndarray, max_events: int,
    neighbors: int, weight: float,
) -> sp.csr_matrix:
    """``interactions`` plus pseudo-interactions for items with at most ``max_events`` users.

    ``interactions`` (n_users, n_items) float32 strengths. Sparse items with text get
    :func:`pseudo_user_rows` from warm items (more than ``max_events`` users), scaled by the
    median observed strength; observed entries are never lowered. Returns the same shape.
    """
    r = sp.csr_matrix(interactions, dtype=np.float32)
    users_per_item = np.asarray((r > 0).sum(axis=0)).ravel()
    has_text = np.any(text_vectors != 0, axis=1)
    targets = np.flatnonzero((users_per_item <= max_events) & has_text)
    sources = np.flatnonzero((users_per_item > max_events) & has_text)
    if len(targets) == 0 or len(sources) == 0:
        return r
    scale = float(np.median(r.data[r.data > 0])) if r.nnz else 1.0
    pseudo = pseudo_user_rows(r, text_vectors, targets, sources, neighbors, weight * scale).tocoo()
    extra = sp.csr_matrix(
        (pseudo.data, (pseudo.col, targets[pseudo.row])), shape=r.shape, dtype=np.float32
    )
    return r.maximum(extra).tocsr()


def markov_transitions(
    user_idx: np.ndarray, item_idx: np.ndarray, timestamps: np.ndarray, n_items: int
) -> sp.csr_matrix:
    """Row-normalised first-order transitions between consecutive distinct items of a user.

    Inputs are (e,) arrays of one event log (any order). Returns (n_items, n_items) float32
    CSR; ``T[i, j]`` = share of the moves out of ``i`` that went to ``j``.
    """
    user_idx = np.asarray(user_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    order = np.lexsort((item_idx, np.asarray(timestamps), user_idx))
    u, i = user_idx[order], item_idx[order]
    move = (u[1:] == u[:-1]) & (i[1:] != i[:-1])
    counts = sp.csr_matrix(
        (np.ones(int(move.sum()), dtype=np.float32), (i[:-1][move], i[1:][move])), shape=(n_items, n_items)
    )
    totals = np.asarray(counts.sum(axis=1)).ravel()
    inv = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return (sp.diags(inv.astype(np.float32)) @ counts).astype(np.float32).tocsr()


def generative_interactions(
    interactions: sp.csr_matrix, transitions: sp.csr_matrix, last_items: np.ndarray,
    max_history: int, n_events: int, weight: float, seed: int = 0,
) -> sp.csr_matrix:
    """``interactions`` plus synthetic next items for users with short histories.

    Users with 1..``max_history`` distinct items walk the transition chain from their
    ``last_items`` (n_users,) int (-1 = none) for ``n_events`` steps, each step sampled from
    the current item's row of ``transitions`` (a walk stops at an item with no moves).
    Sampled items not already in the history get ``weight`` times the median observed
    strength. Returns the same shape as ``interactions``, float32 CSR.
    """
    r = sp.csr_matrix(interactions, dtype=np.float32)
    counts = np.diff(r.indptr)
    users = np.flatnonzero((counts >= 1) & (counts <= max_history) & (np.asarray(last_items) >= 0))
    if len(users) == 0 or transitions.nnz == 0:
        return r
    rng = np.random.default_rng(seed)
    t = transitions.tocsr()
    cdf = t.data.astype(np.float64).copy()
    for row in range(t.shape[0]):  # per-row cumulative sums: one pass over the rows
        lo, hi = t.indptr[row], t.indptr[row + 1]
        if hi > lo:
            cdf[lo:hi] = np.cumsum(cdf[lo:hi])
    current = np.asarray(last_items, dtype=np.int64)[users]
    rows, cols = [], []
    for _ in range(n_events):
        lo, hi = t.indptr[current], t.indptr[current + 1]
        alive = hi > lo
        if not alive.any():
            break
        draw = rng.random(int(alive.sum()))
        nxt = np.empty(int(alive.sum()), dtype=np.int64)
        for j, (a, b, x) in enumerate(zip(lo[alive], hi[alive], draw)):
            nxt[j] = t.indices[a + min(np.searchsorted(cdf[a:b], x * cdf[b - 1]), b - a - 1)]
        rows.append(users[alive])
        cols.append(nxt)
        users, current = users[alive], nxt
    scale = float(np.median(r.data[r.data > 0])) if r.nnz else 1.0
    rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
    extra = sp.csr_matrix(
        (np.full(len(rows_a), weight * scale, dtype=np.float32), (rows_a, cols_a)), shape=r.shape
    )
    extra.sum_duplicates()
    extra.data = np.minimum(extra.data, weight * scale)
    return r.maximum(extra).tocsr()


def align_factors(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` (n, f) rotated to best match ``reference`` (n, f): orthogonal Procrustes."""
    return (other.astype(np.float64) @ _rotation(reference, other)).astype(np.float32)


def _rotation(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The orthogonal (f, f) matrix ``R`` minimising ``||other R - reference||``."""
    u, _, vt = np.linalg.svd(other.astype(np.float64).T @ reference.astype(np.float64))
    return u @ vt


def bootstrap_als(
    confidences: sp.csr_matrix, config: ALSConfig, members: int, seed: int = 0,
    progress: bool | None = None,
):
    """An ALS model whose item factors average ``members`` fits on bootstrap row resamples.

    Each member resamples the users' rows with replacement; its item factors are aligned to
    the first member's (an item a member never saw is left out of that item's average). User
    factors are then recomputed for every user by fold-in. Returns an ``ALSModel``.
    """
    from dataclasses import replace

    from coldbrew.models.als import ALSModel

    rng = np.random.default_rng(seed)
    c = confidences.tocsr()
    n_users, n_items = c.shape
    total = np.zeros((n_items, config.factors), dtype=np.float64)
    seen_count = np.zeros(n_items, dtype=np.float64)
    reference = None
    for m in range(members):
        rows = rng.integers(0, n_users, size=n_users)
        sample = c[rows]
        seen = np.asarray((sample > 0).sum(axis=0)).ravel() > 0
        member = ALSModel(replace(config, random_state=config.random_state + m)).fit(sample, progress=progress)
        factors = member.item_factors_
        if reference is None:
            reference, reference_seen = factors, seen
        else:
            both = seen & reference_seen
            if both.sum() >= config.factors:  # fewer shared items cannot pin a rotation down
                rotation = _rotation(reference[both], factors[both])
                factors = (factors.astype(np.float64) @ rotation).astype(np.float32)
        total[seen] += factors[seen]
        seen_count[seen] += 1
    averaged = np.divide(total, seen_count[:, None], out=np.zeros_like(total), where=seen_count[:, None] > 0)
    model = ALSModel.from_factors(config, averaged.astype(np.float32), np.zeros((0, config.factors), np.float32))
    model.user_factors_ = model.fold_in(c)
    return model
