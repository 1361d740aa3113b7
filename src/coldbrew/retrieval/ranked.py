"""Retrieve-then-rank for catalogs above ``retrieval.dense_limit`` items.

Each source proposes candidates (an ANN index over CF factors, one over text vectors,
co-occurrence neighbours, popular items); only the pooled candidates are scored, exactly as
the dense path scores them, standardised with each user's score mean and variance over the
whole catalog computed in closed form (:func:`moments`) instead of by scoring it. The indexes
and the running statistics are kept on the model (``_indexes``, ``_stats``) and grow with
``add_items`` instead of being rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coldbrew import scoring
from coldbrew.reasons import reasons
from coldbrew.requests import Recommendation, Request
from coldbrew.scoring import SOURCES
from coldbrew.shelves import shelf_content

__all__ = ["recommend_retrieved", "score_given_items", "retrieval_indexes", "index_of", "moments", "popular"]


def index_of(model, name: str):
    """ANN index over item CF factors ("cf") or text vectors ("content"), built lazily."""
    from coldbrew.retrieval import make_index

    vectors = model.item_factors_ if name == "cf" else model.text_vectors_
    if not hasattr(model, "_indexes"):  # a loaded model builds its indexes on first use
        model._indexes = {}
    index = model._indexes.get(name)
    if index is None:
        r = model.config.retrieval
        index = make_index(r.index, vectors.shape[1], exact_below=r.exact_below, nprobe=r.nprobe)
        model._indexes[name] = index
    if hasattr(index, "refine_with"):  # approximate codes are re-scored with the item vectors
        index.refine_with(vectors)
    if len(index) < len(vectors):  # new items are appended, so only the tail is added
        index.add(np.ascontiguousarray(vectors[len(index):], dtype=np.float32))
    return index


def retrieval_indexes(model) -> dict[str, object]:
    """The "cf" and "content" indexes, built now, when the catalog is above ``dense_limit``
    (``{}`` otherwise: small catalogs are scored densely). What a model directory saves."""
    if len(model.item_map_) <= model.config.retrieval.dense_limit:
        return {}
    return {name: index_of(model, name) for name in ("cf", "content")}


def moments(model, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of item vectors: exact per-user score statistics.

    Kept as float64 running sums (count, sum, sum of outer products), so items appended by
    ``add_items`` are folded in at O(new items) instead of a pass over the catalog.
    """
    vectors = model.item_factors_ if name == "cf" else model.text_vectors_
    n, d = vectors.shape
    count, total, outer = model._stats.get(name, (0, np.zeros(d), np.zeros((d, d))))
    if count < n:
        total, outer = total.copy(), outer.copy()
        for start in range(count, n, 65_536):  # bounded float64 copies
            block = vectors[start : min(start + 65_536, n)].astype(np.float64)
            total += block.sum(axis=0)
            outer += block.T @ block
        count = n
        model._stats[name] = (count, total, outer)
    cached = model._stats.get(f"{name}-moments")
    if cached is None or cached[0] != count:
        mean = total / max(count, 1)
        cached = model._stats[f"{name}-moments"] = (count, mean, outer / max(count, 1) - np.outer(mean, mean))
    return cached[1], cached[2]


def popular(model, m: int) -> np.ndarray:
    """The ``m`` most popular items, most popular first (ties: lower index), cached."""
    n = len(model.popularity_)
    cached = model._stats.get("popular")
    if cached is not None and cached[1] == m and cached[0] <= n:
        # rows before cached[0] kept their popularity: only the appended ones can enter
        pool = np.concatenate([cached[2], np.arange(cached[0], n)])
        top = pool[np.lexsort((pool, -model.popularity_[pool]))[:m]]
    else:
        top = np.argsort(-model.popularity_, kind="stable")[:m]
    model._stats["popular"] = (n, m, top)
    return top


def catalog_stats(model) -> tuple[int, float, float]:
    """(warm items, popularity mean, popularity std), computed once per change of the items."""
    cached = model._stats.get("catalog")
    if cached is None or cached[0] != len(model.popularity_):
        cached = model._stats["catalog"] = (len(model.popularity_), int(model.item_warm_.sum()),
                                           float(model.popularity_.mean()), float(model.popularity_.std()))
    return cached[1:]


def recommend_retrieved(model, chunk: Sequence[Request], k: int, mode: str) -> list[Recommendation]:
    """Retrieve-then-rank for catalogs above ``retrieval.dense_limit`` items.

    Each source proposes ``per_source`` candidates (ANN over CF factors, ANN over text
    vectors, co-occurrence neighbours, popular items); the pooled candidates are scored
    exactly as the dense path does, standardised with each user's score mean and
    variance over the whole catalog (computed in closed form, without scoring it).
    """
    m = model.config.retrieval.per_source
    n_items = len(model.item_map_)
    batch = model.batch(chunk, dense=False)
    user_factors, damped, profile = model._profiles(batch)
    cooc = (damped @ model.cooccurrence_).tocsr()
    n_warm, pop_mean, pop_std = catalog_stats(model)
    blocked_all, pools = [], []
    shelf = np.zeros(len(chunk), dtype=bool)  # as scoring.shelf_rows: no item with interactions allowed
    for r, req in enumerate(chunk):
        blocked = model.item_map_.lookup([h.item_id for h in req.history] + list(req.exclude))
        blocked_all.append(np.unique(blocked[blocked >= 0]))
        if req.candidates is not None:
            pool = model.item_map_.lookup(req.candidates)
            pools.append(np.setdiff1d(pool[pool >= 0], blocked_all[r]))
            shelf[r] = not model.item_warm_[pools[r]].any()
        else:
            pools.append(None)
            shelf[r] = int(model.item_warm_[blocked_all[r]].sum()) == n_warm
    new_items = shelf_content(model, batch, profile, shelf)
    # History and excluded items are excluded inside the ANN search so they use no slots.
    _, cf_ids = index_of(model, "cf").search(user_factors, m, exclude=blocked_all)
    _, text_ids = index_of(model, "content").search(profile, m, exclude=blocked_all)
    popular_ids = popular(model, m)
    weights = scoring.blend_weights(batch.n_history, model.config.blend)
    b = model.config.blend
    stats = {}
    for name, queries in (("cf", user_factors), ("content", profile)):
        mean, cov = moments(model, name)
        q = queries.astype(np.float64)
        stats[name] = (q @ mean, np.sqrt(np.maximum(np.einsum("nd,de,ne->n", q, cov, q), 0.0)))
    rerank_users = None
    if getattr(model, "reranker_", None) is not None and mode != "similar":
        rerank_users = model.reranker_.user_table(model, chunk, batch)
    out = []
    for r, req in enumerate(chunk):
        lo, hi = cooc.indptr[r], cooc.indptr[r + 1]
        pool = pools[r]
        if pool is None:
            pool = np.concatenate([cf_ids[r], text_ids[r], cooc.indices[lo:hi], popular_ids])
            pool = np.setdiff1d(pool[pool >= 0], blocked_all[r])
        row_cooc = scoring.sparse_row_at(cooc.indices[lo:hi], cooc.data[lo:hi], pool)
        c_sum, c_sq = cooc.data[lo:hi].sum(), np.square(cooc.data[lo:hi]).sum()
        c_mean = c_sum / n_items
        c_std = np.sqrt(max(c_sq / n_items - c_mean**2, 0.0))
        content = profile[r] @ model.text_vectors_[pool].T
        if new_items is not None and shelf[r]:
            at = new_items[0][pool]
            content[at >= 0] = new_items[1][r, at[at >= 0]]
        raw = {
            "content": (content, *(v[r] for v in stats["content"])),
            "cooccurrence": (row_cooc, c_mean, c_std),
            "cf": (user_factors[r] @ model.item_factors_[pool].T, *(v[r] for v in stats["cf"])),
            "popularity": (model.popularity_[pool], pop_mean, pop_std),
        }
        cold = ~model.item_warm_[pool]
        item_weights = scoring.item_weights(b, shelf[r : r + 1])[0]
        parts = np.zeros((len(SOURCES), len(pool)), dtype=np.float32)
        zs = np.zeros((len(pool), len(SOURCES)), dtype=np.float32)
        for s_i, name in enumerate(SOURCES):
            values, mean, std = raw[name]
            z = (values - mean) / std if std > 1e-9 else np.zeros(len(pool))
            zs[:, s_i] = z
            parts[s_i] = np.where(cold, item_weights[s_i], weights[r, s_i]) * z
        total = parts.sum(axis=0)
        if rerank_users is not None:
            total = model.reranker_.rerank_pool(model, rerank_users, r, pool, total, zs, batch.text_vectors[r], k)
        order = np.argsort(-total, kind="stable")[:k]
        order = order[np.isfinite(total[order])]
        items = pool[order]
        out.append(Recommendation(
            request_id=req.request_id, user_id=req.user_id,
            items=model.item_map_.ids(items), scores=[float(total[o]) for o in order],
            reasons=reasons(model, req, batch, r, items, parts[:, order], mode),
        ))
    return out


def score_given_items(model, requests: Sequence[Request], items: np.ndarray) -> np.ndarray:
    """The blended recommendation score of given items per request (to re-rank other lists).

    ``items`` int64 ``(n, m)`` item indices per request (``-1`` = no item). Unlike
    ``recommend``, history items are scored too. Each source is standardised over the
    row's items and mixed with the request's warmth weights (``new_item_*`` for items
    without interactions; ``shelf_*``, and the nearest-history-item content, on rows whose
    valid items all lack them). Returns float32 ``(n, m)``, ``-inf`` where ``items`` is -1.
    """
    model._check_fitted()
    items = np.asarray(items, dtype=np.int64)
    if items.ndim != 2 or len(items) != len(requests):
        raise ValueError(f"items: expected shape ({len(requests)}, m), got {items.shape}")
    valid = items >= 0
    safe = np.where(valid, items, 0)
    batch = model.batch(requests, dense=False)
    user_factors, damped, profile = model._profiles(batch)
    cooc = (damped @ model.cooccurrence_).tocsr()
    content = np.einsum("nd,nmd->nm", profile, model.text_vectors_[safe])
    cold = ~model.item_warm_[safe]
    shelf = ~(valid & ~cold).any(axis=1)
    new_items = shelf_content(model, batch, profile, shelf)
    if new_items is not None:
        at = np.where(valid & shelf[:, None], new_items[0][safe], -1)
        rows = np.broadcast_to(np.arange(len(safe))[:, None], safe.shape)
        content[at >= 0] = new_items[1][rows[at >= 0], at[at >= 0]]
    raw = {
        "content": content,
        "cooccurrence": np.vstack([cooc[r].toarray()[0, safe[r]] for r in range(len(safe))]) if len(safe) else safe.astype(np.float32),
        "cf": np.einsum("nf,nmf->nm", user_factors, model.item_factors_[safe]),
        "popularity": model.popularity_[safe],
    }
    b = model.config.blend
    weights = scoring.blend_weights(batch.n_history, model.config.blend)
    item_weights = scoring.item_weights(b, shelf)
    total = np.zeros(items.shape, dtype=np.float32)
    for s, name in enumerate(SOURCES):
        w = np.where(cold, item_weights[:, s, None], weights[:, s, None])
        total += w * scoring.standardise(raw[name].astype(np.float32), valid)
    total[~valid] = -np.inf
    return total
