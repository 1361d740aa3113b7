"""Learning the blend weights from the shop's own data (no per-dataset hand tuning).

The events are cut at the ``1 - validation_share`` time quantile. The parts are fitted on the
earlier events (items without earlier events become cold items, as new products would), and
three weight vectors are chosen by NDCG@20 on the later events, each on its own segment:
*cold users* (new users with one revealed event), *warm users*, and *new items* (ranking
only the items that had no earlier events). A coarse grid over the simplex is enough: the
scores are standardised, so only ratios of weights matter.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from coldbrew.config import BlendConfig
from coldbrew.data.catalog import Catalog
from coldbrew.data.events import Events

if TYPE_CHECKING:
    from coldbrew.pipeline import Recommender

__all__ = ["tune_blend", "weight_grid"]

_GRID = (0.0, 0.3, 1.0, 3.0)
_MAX_USERS = 600
_MIN_SEGMENT = 30


def weight_grid(n_sources: int, active: tuple[bool, ...]) -> list[np.ndarray]:
    """All non-zero weight vectors over the grid for the active sources (inactive stay 0)."""
    free = [i for i in range(n_sources) if active[i]]
    out = []
    for combo in itertools.product(_GRID, repeat=len(free)):
        if not any(combo):
            continue
        w = np.zeros(n_sources, dtype=np.float32)
        w[free] = combo
        out.append(w)
    return out


def tune_blend(model: Recommender, catalog: Catalog, events: Events, text_vectors: np.ndarray) -> BlendConfig:
    """Return ``model.config.blend`` with weights chosen on a temporal hold-out."""
    from coldbrew.evaluation.metrics import ndcg_at_k
    from coldbrew.evaluation.protocol import temporal_segments
    from coldbrew.evaluation.splits import temporal_split
    from coldbrew.pipeline import SOURCES, Recommender

    base = model.config.blend
    if len(events) < 100:
        return base
    split = temporal_split(events, quantile=1.0 - base.validation_share)
    if len(split.train) == 0 or len(split.test) == 0:
        return base
    inner = Recommender(replace(model.config, blend=replace(base, tune=False)), encoder=model.encoder)
    inner._cache = model._cache
    inner._progress = False
    inner._fit_parts(catalog, split.train, text_vectors)
    segments = temporal_segments(split, catalog, reveal=1, max_users=_MAX_USERS, seed=0)
    chosen: dict[str, np.ndarray] = {}
    plans = {
        "new_users": (True, True, True, True),
        "warm_users": (True, True, True, True),
        "new_items": (True, False, True, True),
    }
    for name, active in plans.items():
        segment = segments.get(name)
        if segment is None or len(segment.requests) < _MIN_SEGMENT:
            continue
        batch = inner._batch(segment.requests)
        sources = inner._sources(batch)
        z = np.stack([_zscore(sources[s], batch.allowed) for s in SOURCES])
        best, best_score = None, -1.0
        for w in weight_grid(len(SOURCES), active):
            total = np.tensordot(w, z, axes=1)
            total[~batch.allowed] = -np.inf
            top = np.argsort(-total, axis=1)[:, :20]
            recs = [inner.item_map_.ids([i for i in row if np.isfinite(total[r, i])]) for r, row in enumerate(top)]
            score = ndcg_at_k(recs, segment.relevant, 20)
            if score > best_score + 1e-6:
                best, best_score = w, score
        if best is not None:
            chosen[name] = best
    updates: dict[str, float] = {}
    for prefix, name in (("cold", "new_users"), ("warm", "warm_users")):
        if name in chosen:
            for s, value in zip(SOURCES, chosen[name]):
                updates[f"{prefix}_{s}"] = float(value)
    if "new_items" in chosen:
        w = chosen["new_items"]
        updates.update(new_item_content=float(w[0]), new_item_cf=float(w[2]), new_item_popularity=float(w[3]))
    return replace(base, **updates)


def _zscore(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    from coldbrew.pipeline import _standardise

    return _standardise(scores, allowed)
