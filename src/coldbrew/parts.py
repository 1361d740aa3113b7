"""Fitting the parts of a recommender on one set of events, and placing new items.

The parts, each fitted here in turn on the same decayed interaction strengths:

* the text adapter (optional): the encoder's item vectors moved into the shop's space;
* CF: implicit ALS, and LightGCN beside it (``[graph]``), on the (optionally augmented)
  interactions;
* item co-occurrence neighbours (baskets) and recent popularity;
* the text -> CF bridge: learns each warm item's CF vectors and popularity from its text,
  and predicts them for items without interactions (:func:`fill_cold_items`, also called by
  ``add_items``).

The functions set the fitted attributes (ending in ``_``) on the model they are given
(``coldbrew.pipeline.Recommender``): the model is the container of its parts, this module
the code that fits them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from coldbrew.data.catalog import Catalog
from coldbrew.data.events import Events
from coldbrew.data.idmap import IdMap
from coldbrew.data.weighting import event_strengths, interaction_matrix
from coldbrew.errors import DataError
from coldbrew.models.als import ALSModel, confidence
from coldbrew.models.bridge import TextToCFBridge
from coldbrew.models.cooccurrence import Cooccurrence
from coldbrew.models.popularity import TrendPopularity

__all__ = ["fit_parts", "fill_cold_items", "bridge_inputs", "cf_item_vectors", "score_scales"]


def fit_parts(model, catalog: Catalog, events: Events, text_vectors: np.ndarray, adapter=None) -> None:
    """Fit every part on ``events``; ``text_vectors`` (n_items, d) are the encoder's own.

    ``adapter``: a fitted :class:`~coldbrew.text.adapter.TextAdapter` to use instead of
    training one (tuning trains it once, on its hold-out's train part, for all its
    candidates and for the final fit).
    """
    cfg = model.config
    model._indexes = {}
    model._stats = {}  # a refit starts its derived statistics afresh (see _refresh)
    model._neighbors = None
    model.item_map_ = IdMap(catalog.item_ids, kind="item")
    model.catalog_ = catalog
    model.text_vectors_ = np.ascontiguousarray(text_vectors, dtype=np.float32)
    item_idx = model.item_map_.lookup(events.item_ids)
    known = item_idx >= 0
    model.fit_report_ = {"events": len(events), "unknown_item_events": int((~known).sum())}
    ev = events.take(known)
    item_idx = item_idx[known]
    if len(ev) == 0:
        raise DataError(
            "no events refer to items in the catalog: check that the item_id columns match"
        )
    model.user_map_ = IdMap(kind="user")
    user_idx = model.user_map_.add(ev.user_ids)
    from coldbrew.data.weighting import duplicate_mask

    dup = duplicate_mask(user_idx, item_idx, ev.timestamps, ev.events)
    model.fit_report_["duplicate_events"] = int(dup.sum())
    ev, user_idx, item_idx = ev.take(~dup), user_idx[~dup], item_idx[~dup]
    model.now_ = int(ev.timestamps.max())
    shape = (len(model.user_map_), len(model.item_map_))
    strengths = event_strengths(ev.events, ev.values, ev.timestamps, cfg.weighting, model.now_)
    matrix = interaction_matrix(user_idx, item_idx, strengths, shape)
    bridge_vectors = fit_adapter(model, adapter, user_idx, item_idx, ev.timestamps, strengths > 0)
    fit_cf(model, matrix, user_idx, item_idx, ev.timestamps)
    model.cooccurrence_ = Cooccurrence().fit(matrix).neighbors_
    popularity = TrendPopularity(cfg.weighting).fit(
        ev.events, ev.values, ev.timestamps, item_idx, shape[1], model.now_).scores_
    model.item_warm_ = np.asarray((matrix > 0).sum(axis=0)).ravel() > 0
    model.fit_report_["warm_items"] = int(model.item_warm_.sum())
    model.fit_report_["users"] = shape[0]
    # The bridge learns text -> (ALS factors, popularity) on warm items with text.
    has_text = np.any(model.text_vectors_ != 0, axis=1)
    train = model.item_warm_ & has_text
    cf_items = cf_item_vectors(model)
    # With LightGCN the bridge also predicts the fold-in sources of new items.
    sources = [model.graph_.item_sources_] if model.graph_ is not None else []
    targets = np.hstack([cf_items, *sources, popularity[:, None]])
    model.bridge_ = TextToCFBridge(cfg.bridge)
    if train.sum() >= 2:
        model.bridge_.fit(bridge_inputs(model, np.flatnonzero(train), bridge_vectors[train]), targets[train])
    else:  # no text at all: the bridge predicts the mean of the warm items
        model.bridge_.fit(np.zeros((1, model.text_vectors_.shape[1] + max(cfg.bridge.lexical_dim, 0)), np.float32),
                         targets[model.item_warm_][:1] if model.item_warm_.any() else targets[:1])
    model.fit_report_["bridge_ridge"] = model.bridge_.ridge_
    model.item_factors_ = cf_items.copy()
    model.item_sources_ = model.graph_.item_sources_.copy() if model.graph_ is not None else None
    model.popularity_ = popularity
    cold_items = np.flatnonzero(~model.item_warm_)
    fill_cold_items(model, cold_items, bridge_vectors[cold_items])


def fit_adapter(model, adapter, user_idx: np.ndarray, item_idx: np.ndarray, timestamps: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Train (or take) the text adapter and move ``text_vectors_`` into its space.

    Returns the (n_items, d) vectors the bridge should read: the adapted ones, or the
    encoder's own when ``adapter.adapt_bridge`` is false.
    """
    raw = model.text_vectors_
    model.adapter_ = adapter
    if adapter is None and model.config.adapter.enabled:
        from coldbrew.text.adapter import train_adapter

        model.adapter_ = train_adapter(model.config.adapter, raw, user_idx[positive], item_idx[positive],
                                      timestamps[positive], progress=getattr(model, "_adapter_progress", model._progress))
    if model.adapter_ is None:
        return raw
    if getattr(model.adapter_, "curve_", None):
        if not hasattr(model, "training_curves_"):
            model.training_curves_ = {}
        model.training_curves_["adapter"] = model.adapter_.curve_
    model.text_vectors_ = model.adapter_.transform(raw)
    return model.text_vectors_ if model.config.adapter.adapt_bridge else raw


def bridge_inputs(model, positions: np.ndarray, vectors: np.ndarray | None = None) -> np.ndarray:
    """What the bridge reads for these items: text vectors (+ hashed tokens if configured).

    ``vectors`` (len(positions), d): the text vectors to read (default: ``text_vectors_``).
    """
    vectors = model.text_vectors_[positions] if vectors is None else vectors
    dim = model.config.bridge.lexical_dim
    if dim <= 0:
        return vectors
    from coldbrew.text import HashingEncoder

    texts = [t.lower() for t in model.catalog_.subset(positions).texts()]  # only these items: add_items stays O(new)
    lexical = HashingEncoder(dim=dim).encode(texts)
    return np.hstack([vectors, lexical]) / np.sqrt(2.0)


def fill_cold_items(model, positions: np.ndarray, vectors: np.ndarray | None = None,
                     appended_from: int | None = None) -> None:
    """Give items without interactions bridged CF factors and popularity (``vectors``: see :func:`bridge_inputs`).

    ``appended_from``: set by ``add_items`` when only items from this row on are new and
    nothing before it changed (cached catalog statistics are then extended, not redone).
    """
    if len(positions) == 0:
        model._refresh(unchanged_below=appended_from)
        return
    predicted = model.bridge_.predict(bridge_inputs(model, positions, vectors))
    f = model.item_factors_.shape[1]
    model.item_factors_[positions] = predicted[:, :f]
    if getattr(model, "item_sources_", None) is not None:
        model.item_sources_[positions] = predicted[:, f : f + model.item_sources_.shape[1]]
    if model.config.augmentation.pseudo_interactions:
        fold_in_pseudo(model, positions)
    # A product nobody has bought yet is less proven than a best-seller with the same text.
    model.popularity_[positions] = np.minimum(predicted[:, -1], np.median(model.popularity_[model.item_warm_]) if model.item_warm_.any() else 0.0)
    model._refresh(unchanged_below=appended_from)


def fit_cf(model, matrix: sp.csr_matrix, user_idx: np.ndarray, item_idx: np.ndarray, timestamps: np.ndarray) -> None:
    """Fit the CF model(s) on the (optionally augmented) interaction strengths.

    Sets ``als_``, ``graph_`` (LightGCN or ``None``) and ``interactions_`` (the binary
    users x items matrix, kept for folding new items in from pseudo users).
    """
    cfg = model.config
    aug = cfg.augmentation
    cf_matrix = matrix
    if aug.generative:
        from coldbrew.models.augmentation import generative_interactions, markov_transitions

        transitions = markov_transitions(user_idx, item_idx, timestamps, matrix.shape[1])
        last = np.full(matrix.shape[0], -1, dtype=np.int64)
        order = np.lexsort((timestamps, user_idx))
        last[user_idx[order]] = item_idx[order]  # the latest assignment wins
        cf_matrix = generative_interactions(
            cf_matrix, transitions, last, aug.generative_max_history, aug.generative_events,
            aug.pseudo_weight, seed=aug.random_state,
        )
    if aug.pseudo_interactions:
        from coldbrew.models.augmentation import pseudo_interactions

        cf_matrix = pseudo_interactions(
            cf_matrix, model.text_vectors_, aug.pseudo_max_events, aug.pseudo_neighbors, aug.pseudo_weight
        )
    model.fit_report_["augmented_entries"] = int(cf_matrix.nnz - matrix.nnz)
    conf = confidence(cf_matrix, cfg.als.alpha)
    if aug.ensemble > 0:
        from coldbrew.models.augmentation import bootstrap_als

        model.als_ = bootstrap_als(conf, cfg.als, aug.ensemble, seed=aug.random_state, progress=model._progress)
    else:
        model.als_ = ALSModel(cfg.als).fit(conf, progress=model._progress)
    model.interactions_ = sp.csr_matrix(matrix > 0, dtype=np.float32)
    model.graph_ = None
    if cfg.graph.enabled:
        from coldbrew.models.lightgcn import LightGCN

        cache = getattr(model, "_graph_cache", None)
        weights = cf_matrix.data.tobytes() if cfg.graph.weighted else b""
        key = (cf_matrix.shape, cf_matrix.indptr.tobytes(), cf_matrix.indices.tobytes(), weights, cfg.graph)
        if cache is not None and cache.get("key") == key:  # tuning candidates share one graph
            model.graph_ = cache["model"]
        else:
            model.graph_ = LightGCN(cfg.graph).fit(cf_matrix, progress=model._progress)
            if cache is not None:
                cache.update(key=key, model=model.graph_)
        if not hasattr(model, "training_curves_"):
            model.training_curves_ = {}
        model.training_curves_["lightgcn"] = dict(model.graph_.curve_)
        model.cf_scales_ = score_scales(model.als_, model.graph_)


def cf_item_vectors(model) -> np.ndarray:
    """Item vectors (n_items, f) of the cf source: ALS, LightGCN, or both side by side."""
    if model.graph_ is None:
        return model.als_.item_factors_
    if model.config.graph.combine == "replace":
        return model.graph_.item_embeddings_
    return np.hstack([model.als_.item_factors_, model.graph_.item_embeddings_])


def fold_in_pseudo(model, positions: np.ndarray) -> None:
    """Mix the bridge's CF factors of cold items with a fold-in from pseudo users.

    The pseudo users of an item are the users of its text-nearest warm items
    (:func:`coldbrew.models.augmentation.pseudo_user_rows`); items that find none keep
    the bridge's estimate.
    """
    from coldbrew.models.augmentation import pseudo_user_rows

    aug = model.config.augmentation
    warm = np.flatnonzero(model.item_warm_[: model.interactions_.shape[1]])
    rows = pseudo_user_rows(
        model.interactions_, model.text_vectors_, positions, warm, aug.pseudo_neighbors, aug.pseudo_weight,
    )
    found = np.diff(rows.indptr) > 0
    if not found.any():
        return
    rows = rows[found]
    users = model.als_.user_factors_
    folded = ALSModel.from_factors(model.config.als, users, np.zeros((0, users.shape[1]))).fold_in(
        confidence(rows, model.config.als.alpha)
    )
    if model.graph_ is not None:
        graph = model.graph_.fold_in_items(rows)
        folded = graph if model.config.graph.combine == "replace" else np.hstack([folded, graph])
    target = positions[found]
    model.item_factors_[target] = 0.5 * model.item_factors_[target] + 0.5 * folded


def score_scales(als: ALSModel, graph) -> np.ndarray:
    """(2,) float32: 1 / the spread of ALS and of LightGCN user-item scores (training users)."""
    rng = np.random.default_rng(0)
    users = rng.choice(len(als.user_factors_), size=min(1000, len(als.user_factors_)), replace=False)
    out = []
    for u, v in ((als.user_factors_, als.item_factors_), (graph.user_embeddings_, graph.item_embeddings_)):
        std = float(np.std(u[users] @ v.T))
        out.append(1.0 / std if std > 1e-12 else 1.0)
    return np.asarray(out, dtype=np.float32)
