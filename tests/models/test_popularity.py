import numpy as np
import pytest

from coldbrew.config import WeightingConfig
from coldbrew.models.popularity import TrendPopularity

DAY = 86_400


def test_scores_are_log1p_of_trend_decayed_positive_strengths_by_hand():
    now = 100 * DAY
    w = WeightingConfig(event_weights=(("purchase", 3.0), ("view", 1.0), ("cancel", 0.0)),
                        half_life_days=None, trend_half_life_days=10.0)
    events = np.array(["purchase", "purchase", "view", "cancel"], dtype=object)
    values = np.full(4, np.nan)
    timestamps = np.array([now, now - 10 * DAY, now, now])
    items = np.array([0, 0, 1, 2])
    part = TrendPopularity(w)
    assert part.fit(events, values, timestamps, items, n_items=4, now=now) is part
    assert part.scores_.dtype == np.float32 and part.scores_.shape == (4,)
    # item 0: a purchase today (3) and one a half-life ago (1.5); item 1: a view; then nothing
    np.testing.assert_allclose(part.scores_, np.log1p([4.5, 1.0, 0.0, 0.0]), rtol=1e-6)
    # the interactions' own half-life (None here) plays no part
    other = TrendPopularity(WeightingConfig(event_weights=w.event_weights, half_life_days=1.0,
                                            trend_half_life_days=10.0))
    np.testing.assert_array_equal(other.fit(events, values, timestamps, items, 4, now).scores_, part.scores_)


def test_the_trend_half_life_is_the_one_used():
    now = 100 * DAY
    events, values = np.array(["purchase"], dtype=object), np.array([np.nan])
    old = np.array([now - 30 * DAY])
    fast = TrendPopularity(WeightingConfig(trend_half_life_days=10.0)).fit(events, values, old, [0], 1, now)
    slow = TrendPopularity(WeightingConfig(trend_half_life_days=30.0)).fit(events, values, old, [0], 1, now)
    fresh = TrendPopularity(WeightingConfig(trend_half_life_days=10.0)).fit(events, values, np.array([now]), [0], 1, now)
    assert np.expm1(fast.scores_[0]) == pytest.approx(np.expm1(fresh.scores_[0]) / 8, rel=1e-5)
    assert np.expm1(slow.scores_[0]) == pytest.approx(np.expm1(fresh.scores_[0]) / 2, rel=1e-5)


def test_item_indices_outside_the_catalog_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        TrendPopularity().fit(np.array(["view"], dtype=object), np.array([np.nan]), np.array([0]), [5], 2, 0)
