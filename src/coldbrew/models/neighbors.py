"""Nearest-history-item text similarity: how new products are matched to a shopper by text.

The content source compares an item with the shopper's *profile*, the mean text vector of
everything they bought. For a warm item that is one of four sources; for a product without
interactions it is, beside the bridged CF factors, all there is, and a mean of fifty
purchases blurs exactly what matters for a new product: "you bought this mug in blue".
So for items without interactions the content source reads instead how close the item is
to the *nearest* of the shopper's history items (and to their own words, when the request
has any), as a soft maximum::

    nearest(u, j) = t * log( sum_{i in history(u)} exp((cos(i, j) - 1) / t) + exp(-1 / t) )

with temperature ``t`` (0.05: an item 0.15 less similar counts e^-3 as much). Only each new
item's ``k`` most similar products are kept (a sparse ``(n_items, n_new)`` matrix), so a
request costs one sparse product. The profile cosines of the request's new items are then
handed out again in the order of these scores (:func:`match_quantiles`): the new items keep
exactly the values they had (the source keeps its spread), and only which new item holds
which value changes.

Used on *shelves* only (requests whose every candidate is a new product), switched by
``[blend] new_item_nearest`` (default true), with shelf weights of their own. In ordinary
lists, where new products compete with warm ones, the plain profile cosine stays: measured on
UCI retail (benchmarks/RESULTS.md, "nearest-item shelves"), the random cold-item split rose
from 0.316 to 0.357 NDCG@20, new arrivals of the temporal split moved from 0.246 to 0.240,
and warm users and new users did not move. Applied to every list with one set of new-item
weights (the first version), it cost warm users 10 %: random cold items usually have a colour
or size sibling the shopper bought, new arrivals rarely do, and the weights that suit the
siblings on a shelf push the wrong new products into everyday lists.

All functions are pure and batch-first.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["NEIGHBORS", "TEMPERATURE", "text_neighbors", "merge_neighbors", "neighbor_matrix",
           "nearest_scores", "match_quantiles"]

NEIGHBORS = 100
TEMPERATURE = 0.05


def _top(sims: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` per row of ``sims`` (c, m) with their ``ids`` (c, m) or (m,), best first."""
    k = min(k, sims.shape[1])
    if k == 0:
        return np.zeros((len(sims), 0), np.int64), np.zeros((len(sims), 0), np.float32)
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(sims, top, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    top, values = np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, axis=1)
    chosen = np.take_along_axis(ids, top, axis=1) if ids.ndim == 2 else ids[top]
    return chosen.astype(np.int64), values.astype(np.float32)


def text_neighbors(vectors: np.ndarray, columns: np.ndarray, k: int = NEIGHBORS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items most similar by text to each item of ``columns`` (itself excluded).

    ``vectors`` (n, d) unit-norm text vectors of every item. Returns ``(ids, sims)``, both
    (len(columns), min(k, n - 1)), best first; int64 item indices and float32 cosines.
    """
    from coldbrew.models.augmentation import text_neighbors as nearest_rows

    vectors = np.asarray(vectors, dtype=np.float32)
    columns = np.asarray(columns, dtype=np.int64)
    return nearest_rows(vectors[columns], vectors, min(k, max(len(vectors) - 1, 0)), exclude_self=columns, floor=None)


def merge_neighbors(ids: np.ndarray, sims: np.ndarray, vectors: np.ndarray, columns: np.ndarray,
                    added: np.ndarray, k: int = NEIGHBORS, chunk: int = 16_384) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour lists of ``columns`` (``ids``/``sims`` from :func:`text_neighbors`) updated with
    the items ``added`` since: each list keeps its best ``k`` of old and added items.

    Exact, in blocks of ``chunk`` lists (memory ``chunk x len(added)``, not
    ``len(columns) x (k + len(added))``); only lists that an added item enters (an added
    similarity at least their current worst, or lists shorter than ``k``) are re-ranked, the
    others are kept as they are. The cost is one ``len(columns) x len(added)`` product: 1,000
    items added to 500,000 cold ones at 512 dimensions are about 0.5 Tflop (seconds).
    """
    if len(columns) == 0 or len(added) == 0:
        return ids, sims
    added = np.asarray(added, dtype=np.int64)
    columns = np.asarray(columns, dtype=np.int64)
    vectors = np.asarray(vectors, dtype=np.float32)
    added_vectors = vectors[added]
    width = min(k, ids.shape[1] + len(added))
    out_ids = np.zeros((len(columns), width), dtype=np.int64)
    out_sims = np.zeros((len(columns), width), dtype=np.float32)
    for start in range(0, len(columns), chunk):
        part = slice(start, start + chunk)
        s = vectors[columns[part]] @ added_vectors.T
        s[columns[part][:, None] == added[None, :]] = -np.inf
        old_ids, old_sims = ids[part], sims[part]
        if old_ids.shape[1] >= width:
            worst = old_sims[:, width - 1] if width > 0 else np.full(len(s), np.inf, np.float32)
            enters = (s >= worst[:, None]).any(axis=1)
        else:
            enters = np.ones(len(s), dtype=bool)
        keep = np.flatnonzero(~enters)
        if len(keep):  # only when the old lists are at least ``width`` long
            out_ids[part][keep] = old_ids[keep, :width]
            out_sims[part][keep] = old_sims[keep, :width]
        rows = np.flatnonzero(enters)
        if len(rows):
            both_ids = np.hstack([old_ids[rows], np.broadcast_to(added, (len(rows), len(added)))])
            both_sims = np.hstack([old_sims[rows], s[rows]])
            top_ids, top_sims = _top(both_sims, both_ids, k)
            out_ids[part][rows] = top_ids
            out_sims[part][rows] = top_sims
    return out_ids, out_sims


def neighbor_matrix(ids: np.ndarray, sims: np.ndarray, n_items: int,
                    temperature: float = TEMPERATURE) -> sp.csr_matrix:
    """Sparse (n_items, c) weights ``exp((cos - 1) / t)``: row = history item, column = new item."""
    c, k = ids.shape
    weights = np.exp((np.minimum(sims, 1.0) - 1.0) / temperature).astype(np.float32)
    keep = np.isfinite(sims).ravel()
    cols = np.repeat(np.arange(c), k)
    return sp.csr_matrix((weights.ravel()[keep], (ids.ravel()[keep], cols[keep])), shape=(n_items, c))


def nearest_scores(history: sp.csr_matrix, weights: sp.csr_matrix, text_sims: np.ndarray | None = None,
                   temperature: float = TEMPERATURE) -> np.ndarray:
    """Soft maximum over each request's history items of their similarity to each new item.

    ``history`` (n, n_items): nonzero where the request holds the item (values are ignored);
    ``weights`` (n_items, c) from :func:`neighbor_matrix`; ``text_sims`` (n, c): cosine of
    the request's own words with each new item (NaN rows: no words). Returns float32 (n, c);
    a request with neither history nor words gets ``-1`` everywhere.
    """
    binary = history.copy().tocsr()
    binary.data = (binary.data != 0).astype(np.float32)
    mass = np.asarray((binary @ weights).todense(), dtype=np.float64)
    if text_sims is not None:
        words = ~np.isnan(text_sims).any(axis=1)
        mass[words] += np.exp((np.minimum(text_sims[words], 1.0) - 1.0) / temperature)
    return (temperature * np.log(mass + np.exp(-1.0 / temperature))).astype(np.float32)


def match_quantiles(target: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``target`` (n, c) values re-assigned per row in the order of ``scores`` (n, c).

    The item with the highest score gets the row's highest target value, and so on: each
    row keeps exactly the values (the distribution) of ``target``; only which item holds
    which value follows ``scores``. Ties in ``scores`` keep ``target``'s order among them.
    Rows whose ``scores`` do not vary keep ``target``. Returns float32 (n, c).
    """
    target = np.asarray(target, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape[1] == 0:
        return target.copy()
    out = target.copy()
    varies = scores.max(axis=1) > scores.min(axis=1)
    if varies.any():
        t, sc = target[varies], scores[varies]
        values = -np.sort(-t, axis=1)  # each row's target values, largest first
        # order by score, ties broken by the target itself (stable on a pre-sorted key)
        by_target = np.argsort(-t, axis=1, kind="stable")
        order = np.take_along_axis(by_target, np.argsort(-np.take_along_axis(sc, by_target, axis=1), axis=1, kind="stable"), axis=1)
        mapped = np.empty_like(t)
        np.put_along_axis(mapped, order, values, axis=1)
        out[varies] = mapped
    return out
