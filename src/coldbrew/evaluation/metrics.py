"""Ranking and rating metrics: pure functions of recommended lists and relevant sets.

Every ranking metric takes ``recommended`` (one ranked list of item IDs per user, best first)
and ``relevant`` (one set of item IDs per user, same order) and a list length ``k``. The
``per_user_*`` functions return a float64 array of shape ``(n_users,)`` holding ``NaN`` for
users whose relevant set is empty; the plain functions return the mean over the other users
(``NaN`` when no user has a relevant item).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "catalog_coverage",
    "hit_rate_at_k",
    "item_warmth_recall",
    "mrr_at_k",
    "ndcg_at_k",
    "per_user_hit_rate_at_k",
    "per_user_mrr_at_k",
    "per_user_ndcg_at_k",
    "per_user_recall_at_k",
    "recall_at_k",
    "rmse",
]


def _hits(
    recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hit matrix bool ``(n_users, k)`` (padded with False) and relevant counts int64 ``(n_users,)``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if len(recommended) != len(relevant):
        raise ValueError(
            f"recommended has {len(recommended)} lists but relevant has {len(relevant)} sets;"
            " expected one of each per user"
        )
    n = len(recommended)
    hits = np.zeros((n, k), dtype=bool)
    n_relevant = np.zeros(n, dtype=np.int64)
    for u, (items, rel) in enumerate(zip(recommended, relevant)):
        top = list(items[:k])
        if len(set(top)) != len(top):
            raise ValueError(f"user {u}: the top-{k} list repeats an item: {top}")
        n_relevant[u] = len(rel)
        if rel:
            hits[u, : len(top)] = [item in rel for item in top]
    return hits, n_relevant


def _mean(per_user: np.ndarray) -> float:
    valid = per_user[~np.isnan(per_user)]
    return float(valid.mean()) if len(valid) else float("nan")


def per_user_recall_at_k(
    recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int
) -> np.ndarray:
    """Capped recall per user: ``|relevant in top k| / min(|relevant|, k)``.

    This is the recall used by RecBole-style protocols: the denominator is capped at ``k`` so a
    perfect list scores 1 even when a user has more than ``k`` relevant items.

    Returns float64 ``(n_users,)``, ``NaN`` where the relevant set is empty.
    """
    hits, n_rel = _hits(recommended, relevant, k)
    out = np.full(len(n_rel), np.nan)
    has = n_rel > 0
    out[has] = hits[has].sum(axis=1) / np.minimum(n_rel[has], k)
    return out


def recall_at_k(recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    """Mean capped recall@k over users with a non-empty relevant set.

    See :func:`per_user_recall_at_k` (the RecBole-style capped recall); users with an empty
    relevant set are skipped; ``NaN`` when no user is left.
    """
    return _mean(per_user_recall_at_k(recommended, relevant, k))


def per_user_ndcg_at_k(
    recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int
) -> np.ndarray:
    """NDCG@k per user with binary gains and a ``log2(rank + 1)`` discount.

    ``DCG = sum over hits at 1-based rank r <= k of 1 / log2(r + 1)``; the ideal DCG places
    ``min(|relevant|, k)`` hits at the top. Returns float64 ``(n_users,)``, ``NaN`` where the
    relevant set is empty.
    """
    hits, n_rel = _hits(recommended, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal_cumulative = np.cumsum(discounts)
    out = np.full(len(n_rel), np.nan)
    has = n_rel > 0
    dcg = hits[has] @ discounts
    out[has] = dcg / ideal_cumulative[np.minimum(n_rel[has], k) - 1]
    return out


def ndcg_at_k(recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    """Mean NDCG@k (see :func:`per_user_ndcg_at_k`) over users with a non-empty relevant set."""
    return _mean(per_user_ndcg_at_k(recommended, relevant, k))


def per_user_hit_rate_at_k(
    recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int
) -> np.ndarray:
    """1.0 when the top k holds at least one relevant item, else 0.0; float64 ``(n_users,)``
    with ``NaN`` where the relevant set is empty."""
    hits, n_rel = _hits(recommended, relevant, k)
    out = np.full(len(n_rel), np.nan)
    has = n_rel > 0
    out[has] = hits[has].any(axis=1).astype(np.float64)
    return out


def hit_rate_at_k(recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    """Share of users (with a non-empty relevant set) with at least one hit in the top k."""
    return _mean(per_user_hit_rate_at_k(recommended, relevant, k))


def per_user_mrr_at_k(
    recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int
) -> np.ndarray:
    """Reciprocal rank of the first hit within the top k (0.0 when none); float64
    ``(n_users,)`` with ``NaN`` where the relevant set is empty."""
    hits, n_rel = _hits(recommended, relevant, k)
    out = np.full(len(n_rel), np.nan)
    has = n_rel > 0
    h = hits[has]
    first = h.argmax(axis=1)
    out[has] = np.where(h.any(axis=1), 1.0 / (first + 1), 0.0)
    return out


def mrr_at_k(recommended: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int) -> float:
    """Mean reciprocal rank of the first hit in the top k over users with relevant items."""
    return _mean(per_user_mrr_at_k(recommended, relevant, k))


def catalog_coverage(
    recommended: Sequence[Sequence[str]], n_items: int, k: int | None = None
) -> float:
    """Share of the ``n_items`` items that appear in at least one (top-``k``) list.

    ``k=None`` uses the lists as they are. Returns a float in ``[0, 1]`` when every
    recommended item belongs to the ``n_items`` universe.
    """
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
    if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
        raise ValueError(f"k must be a positive integer or None, got {k!r}")
    seen: set[str] = set()
    for items in recommended:
        seen.update(items if k is None else items[:k])
    return len(seen) / n_items


def rmse(predicted: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Root mean squared error between two equally long 1-D sequences of numbers."""
    p = np.asarray(predicted, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if p.ndim != 1 or a.ndim != 1 or p.shape != a.shape:
        raise ValueError(
            f"rmse: expected two 1-D arrays of the same length, got shapes {p.shape} and {a.shape}"
        )
    if len(p) == 0:
        raise ValueError("rmse: no values to compare")
    if not (np.isfinite(p).all() and np.isfinite(a).all()):
        raise ValueError("rmse: predicted and actual must be finite numbers")
    return float(np.sqrt(np.mean((p - a) ** 2)))


def item_warmth_recall(
    recommended: Sequence[Sequence[str]],
    relevant: Sequence[set[str]],
    item_counts: dict[str, int],
    k: int,
    edges: Sequence[int] = (1, 3, 6, 21, 101),
) -> list[tuple[str, float, int]]:
    """Recall at ``k`` of the relevant (user, item) pairs, by how much the model knew the item.

    ``item_counts`` maps an item ID to its number of training events (missing: 0). Pairs are
    bucketed by that count with the increasing ``edges`` (default buckets ``0``, ``1-2``,
    ``3-5``, ``6-20``, ``21-100``, ``101+``); the recall of a bucket is the share of its pairs
    whose item is in that user's top ``k``. Returns ``(label, recall, pairs)`` per bucket, in
    order; an empty bucket has recall ``NaN``.
    """
    hits, _ = _hits(recommended, relevant, k)
    edges = [int(e) for e in edges]
    if any(b <= a for a, b in zip(edges, edges[1:])) or (edges and edges[0] < 1):
        raise ValueError(f"edges must be increasing integers >= 1, got {edges}")
    bounds = [0, *edges]
    labels = []
    for lo, hi in zip(bounds, [*edges, None]):
        if hi is None:
            labels.append(f"{lo}+")
        elif hi - lo == 1:
            labels.append(str(lo))
        else:
            labels.append(f"{lo}-{hi - 1}")
    found = np.zeros(len(labels), dtype=np.int64)
    total = np.zeros(len(labels), dtype=np.int64)
    for u, (items, rel) in enumerate(zip(recommended, relevant)):
        top = set(list(items[:k])[: int(hits[u].size)])
        for item in rel:
            b = int(np.searchsorted(edges, item_counts.get(item, 0), side="right"))
            total[b] += 1
            found[b] += item in top
    return [
        (label, float(found[b] / total[b]) if total[b] else float("nan"), int(total[b]))
        for b, label in enumerate(labels)
    ]
