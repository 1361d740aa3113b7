"""Learning the blend (and two CF settings) from the shop's own data, at fit time.

No per-dataset hand tuning: the events are cut at the ``1 - validation_share`` time quantile,
the parts are fitted on the earlier events (items without earlier events become cold items,
as new products would), and the choices are scored by NDCG@20 on the later events, each on
its own segment: *new users* (one revealed event), *warm users*, and *new items* (ranking
only the items that had no earlier events).

* For each candidate of (ALS confidence ``alpha``, time-decay half-life, popularity-trend
  half-life) the parts are fitted
  once; three weight vectors (new-user, warm-user, new-item) are then found by coordinate
  ascent over a log grid. Scores are standardised, so only ratios of weights matter.
* The candidate with the best mean NDCG over the segments wins.

The NDCG here is computed in index space over a dense relevance matrix (fast enough to call
hundreds of times); reports use :mod:`coldbrew.evaluation.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from coldbrew.config import FitConfig
from coldbrew.data.catalog import Catalog
from coldbrew.data.events import Events

if TYPE_CHECKING:
    from coldbrew.pipeline import Recommender

__all__ = ["tune", "TuningResult", "ndcg_dense"]

_VALUES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
_MAX_USERS = 500
_MIN_SEGMENT = 30
_K = 20
# (ALS alpha, decay half-life, popularity-trend half-life; days): recency matters a lot in
# some shops and not in others.
# A 7-day trend was tried as a fourth candidate: it won the hold-out on the full UCI data but
# chose a near-popularity blend on a six-month slice that then lost to plain popularity on the
# (longer) test period, so the trend half-life is left to the config, not to tuning.
_CF_CANDIDATES = ((5.0, 90.0, 30.0), (5.0, 365.0, 30.0), (5.0, 30.0, 30.0))
_SEGMENT_SOURCES = {
    "new_users": (True, True, True, True),
    "warm_users": (True, True, True, True),
    "new_items": (True, False, True, True),
}


@dataclass(frozen=True)
class TuningResult:
    """What tuning chose and what it saw (written to the model manifest)."""

    config: FitConfig
    scores: dict[str, dict[str, float]]  # candidate label -> segment -> NDCG@20


def ndcg_dense(scores: np.ndarray, relevant: np.ndarray, k: int = _K) -> float:
    """Mean binary NDCG@k. ``scores`` (n, m) with -inf on disallowed; ``relevant`` (n, m) bool."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    hits = np.take_along_axis(relevant, top, axis=1) & np.isfinite(np.take_along_axis(scores, top, axis=1))
    dcg = (hits * discount).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(relevant.sum(axis=1), k) - 1]
    return float(np.mean(dcg / ideal))


def _coordinate_ascent(z: np.ndarray, allowed: np.ndarray, relevant: np.ndarray, active: tuple[bool, ...]) -> tuple[np.ndarray, float]:
    w = np.array([1.0 if a else 0.0 for a in active], dtype=np.float32)

    def score(weights: np.ndarray) -> float:
        if not weights.any():
            return -1.0
        total = np.where(allowed, np.float32(0.0), np.float32(-np.inf))
        for s in np.flatnonzero(weights):
            total += weights[s] * z[s]
        return ndcg_dense(total, relevant)

    best = score(w)
    for _ in range(2):
        improved = False
        for s in np.flatnonzero(active):
            for value in _VALUES:
                trial = w.copy()
                trial[s] = value
                result = score(trial)
                if result > best + 1e-5:
                    w, best, improved = trial, result, True
        if not improved:
            break
    return w, best


def tune(model: Recommender, catalog: Catalog, events: Events, text_vectors: np.ndarray) -> TuningResult | None:
    """Choose CF settings and blend weights on a temporal hold-out; ``None`` if too little data."""
    from coldbrew.evaluation.protocol import temporal_segments
    from coldbrew.evaluation.splits import temporal_split
    from coldbrew.pipeline import SOURCES, Recommender, _standardise

    base = model.config
    if len(events) < 200:
        return None
    split = temporal_split(events, quantile=1.0 - base.blend.validation_share)
    if len(split.train) == 0 or len(split.test) == 0:
        return None
    segments = temporal_segments(split, catalog, reveal=1, max_users=_MAX_USERS, seed=0)
    segments = {n: s for n, s in segments.items() if n in _SEGMENT_SOURCES and len(s.requests) >= _MIN_SEGMENT}
    if not segments:
        return None
    best_config, best_mean, scores = None, -1.0, {}
    adapter = None  # the text adapter (if enabled) is trained once, on the hold-out's train part
    for alpha, half_life, trend in _CF_CANDIDATES:
        config = replace(
            base,
            als=replace(base.als, alpha=alpha),
            weighting=replace(base.weighting, half_life_days=half_life, trend_half_life_days=trend),
            blend=replace(base.blend, tune=False),
        )
        inner = Recommender(config, encoder=model.encoder)
        inner._cache = model._cache
        inner._progress = False
        inner._graph_cache = getattr(model, "_graph_cache", None)  # LightGCN: same graph for every candidate
        inner._fit_parts(catalog, split.train, text_vectors, adapter=adapter)
        adapter = getattr(inner, "adapter_", None)
        updates: dict[str, float] = {}
        label = f"alpha={alpha:g}, half_life_days={half_life:g}, trend_half_life_days={trend:g}"
        scores[label] = {}
        for name, segment in segments.items():
            batch = inner._batch(segment.requests)
            sources = inner._sources(batch)
            z = np.stack([_standardise(sources[s], batch.allowed) for s in SOURCES])
            relevant = np.zeros(batch.allowed.shape, dtype=bool)
            for r, items in enumerate(segment.relevant):
                idx = inner.item_map_.lookup(sorted(items))
                relevant[r, idx[idx >= 0]] = True
            keep = relevant.any(axis=1)
            w, value = _coordinate_ascent(z[:, keep], batch.allowed[keep], relevant[keep], _SEGMENT_SOURCES[name])
            scores[label][name] = round(value, 5)
            if name == "new_items":
                updates.update(new_item_content=float(w[0]), new_item_cf=float(w[2]), new_item_popularity=float(w[3]))
            else:
                prefix = "cold" if name == "new_users" else "warm"
                updates.update({f"{prefix}_{s}": float(v) for s, v in zip(SOURCES, w)})
        mean = float(np.mean(list(scores[label].values())))
        if mean > best_mean:
            best_mean = mean
            best_config = replace(base, als=config.als, weighting=config.weighting, blend=replace(base.blend, **updates))
    if best_config is None:
        return None
    return TuningResult(config=best_config, scores=scores)
