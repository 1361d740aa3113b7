"""New products on shelves: content scores ordered by the nearest history item.

On a shelf of new products only (every candidate without interactions), a product's content
score is the request's profile cosine re-ordered by how close the product is to the single
nearest item of the history (:mod:`coldbrew.models.neighbors`): a new oolong goes to the tea
buyer even when their average profile leans elsewhere. The neighbour lists of the items
without interactions are built once per fit or load and grown with ``add_items``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from coldbrew.scoring import Batch

__all__ = ["new_item_neighbors", "shelf_content"]


def new_item_neighbors(model) -> tuple[np.ndarray, sp.csr_matrix]:
    """Items without interactions (c,) and their nearest products by text (n_items, c) weights.

    Built on first use after a fit or load; items added with ``add_items`` are merged in
    (new columns for them, and each older list takes them as candidates) without a rebuild.
    """
    from coldbrew.models import neighbors as nb

    n = len(model.item_map_)
    cold = np.flatnonzero(~model.item_warm_)
    cache = getattr(model, "_neighbors", None)
    if cache is not None and cache["n"] == n and np.array_equal(cold, cache["cold"]):
        return cold, cache["weights"]
    old = cache["cold"] if cache is not None else np.zeros(0, np.int64)
    grown = (cache is not None and cache["n"] < n and len(cold) >= len(old)
             and np.array_equal(cold[: len(old)], old) and bool((cold[len(old):] >= cache["n"]).all()))
    if grown:  # only appended items since the lists were built
        ids, sims = nb.merge_neighbors(cache["ids"], cache["sims"], model.text_vectors_, old, np.arange(cache["n"], n))
        new_ids, new_sims = nb.text_neighbors(model.text_vectors_, cold[len(old):])
        ids, sims = np.vstack([ids, new_ids]), np.vstack([sims, new_sims])
    else:
        ids, sims = nb.text_neighbors(model.text_vectors_, cold)
    model._neighbors = {"n": n, "cold": cold, "ids": ids, "sims": sims, "weights": nb.neighbor_matrix(ids, sims, n)}
    return cold, model._neighbors["weights"]


def shelf_content(model, batch: Batch, profile: np.ndarray, shelf: np.ndarray,
                      content: np.ndarray | None = None,
                      nearest: bool | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Content scores of the items without interactions on shelf rows: ``(slot (n_items,),
    scores (n, c))``.

    ``shelf`` (n,) bool: the rows that may only get new products (:func:`coldbrew.scoring.shelf_rows`); other
    rows of ``scores`` are not filled and must not be read. ``slot[i]`` is item i's column
    in ``scores`` (-1: an item with interactions). The request's profile cosines of these
    items (taken from ``content`` (n, n_items) when already computed), re-ordered by
    nearest-history-item similarity (:mod:`coldbrew.models.neighbors`); ``None`` when
    ``nearest`` (default ``blend.new_item_nearest``) is off, no row is a shelf, or every
    item has interactions.
    """
    if nearest is None:
        nearest = model.config.blend.new_item_nearest
    if not nearest or not shelf.any() or model.item_warm_.all():  # shelf first: O(n) check last
        return None
    from coldbrew.models import neighbors as nb

    cold, weights = new_item_neighbors(model)
    cold_vectors = model.text_vectors_[cold]
    rows = np.flatnonzero(shelf)
    words = None
    if batch.has_text[rows].any():
        words = np.full((len(rows), len(cold)), np.nan, dtype=np.float32)
        has_text = batch.has_text[rows]
        words[has_text] = batch.text_vectors[rows[has_text]] @ cold_vectors.T
    nearest = nb.nearest_scores(batch.strengths[rows], weights, words)
    target = content[np.ix_(rows, cold)] if content is not None else profile[rows] @ cold_vectors.T
    slot = np.full(len(model.item_map_), -1, dtype=np.int64)
    slot[cold] = np.arange(len(cold))
    scores = np.zeros((len(shelf), len(cold)), dtype=np.float32)
    scores[rows] = nb.match_quantiles(target, nearest)
    return slot, scores
