"""Recent popularity: the prior every blend starts from, and what the bridge learns for new items."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from coldbrew.config import WeightingConfig
from coldbrew.data.weighting import event_strengths

__all__ = ["TrendPopularity"]


class TrendPopularity:
    """``log1p`` of each item's positive event strengths, decayed with the trend half-life.

    The same event weights as the interactions (``[weighting]``), but
    ``trend_half_life_days`` in place of ``half_life_days``: popularity follows what sells
    now. ``fit(...) -> self``; ``scores_`` float32 (n_items,).
    """

    def __init__(self, weighting: WeightingConfig | None = None) -> None:
        self.weighting = weighting or WeightingConfig()

    def fit(self, events: np.ndarray, values: np.ndarray, timestamps: np.ndarray, item_idx: np.ndarray,
            n_items: int, now: int) -> TrendPopularity:
        """``events``/``values``/``timestamps``/``item_idx`` (n,) per event (item indices in
        ``[0, n_items)``); ``now`` the time decay is measured from."""
        item_idx = np.asarray(item_idx, dtype=np.int64)
        if len(item_idx) and (item_idx.min() < 0 or item_idx.max() >= n_items):
            raise ValueError(f"TrendPopularity.fit: item indices must lie in [0, {n_items})")
        trend_weights = replace(self.weighting, half_life_days=self.weighting.trend_half_life_days)
        trend = event_strengths(events, values, timestamps, trend_weights, now)
        positive = trend > 0
        counts = np.bincount(item_idx[positive], weights=trend[positive], minlength=n_items)
        self.scores_ = np.log1p(counts).astype(np.float32)
        return self
