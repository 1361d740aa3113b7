"""Invariants of the engagement metrics on random logs (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from coldbrew.analytics import activity, new_user_conversion, repeat_purchase_rate, retention
from coldbrew.data import events_from_frame

T0 = 1_704_067_200

rows = st.lists(
    st.tuples(st.integers(0, 8), st.integers(0, 120 * 86_400), st.sampled_from(["view", "purchase", "cart"])),
    min_size=1, max_size=60,
)


def _events(data):
    frame = pd.DataFrame([(f"u{u}", "i", T0 + t, e) for u, t, e in data],
                         columns=["user_id", "item_id", "timestamp", "event"])
    return events_from_frame(frame)[0]


@settings(max_examples=60, deadline=None)
@given(rows)
def test_rates_are_shares_and_retention_grows_with_the_horizon(data) -> None:
    events = _events(data)
    table = retention(events, "month", horizons=(1, 7, 30))
    assert table["users"].sum() == len({u for u, _, _ in data})
    for _, row in table.iterrows():
        values = [row[c] for c in ("day_1", "day_7", "day_30")]
        seen = [v for v in values if not np.isnan(v)]
        assert all(0.0 <= v <= 1.0 for v in seen)
        assert seen == sorted(seen)  # "within N days" can only grow with N
        # Censoring only removes the longer horizons.
        assert all(np.isnan(v) for v in values[len(seen):])
    rp = repeat_purchase_rate(events)
    assert 0 <= rp["repeat_purchasers"] <= rp["purchasers"] <= len(events)
    conv = new_user_conversion(events, 7)
    assert 0 <= conv["converted"] <= conv["new_users"]
    act = activity(events, "week")
    assert act["events"].sum() == len(events)
    assert (act["active_users"] <= act["events"]).all()
