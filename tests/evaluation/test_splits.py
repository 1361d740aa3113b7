"""Splits on tiny hand-made event logs."""

from __future__ import annotations

import numpy as np
import pytest

from coldbrew.evaluation.splits import (
    ColdItemSplit,
    TemporalSplit,
    cold_item_split,
    leave_last_out,
    temporal_split,
)

from .builders import make_events


def _rows(events) -> list[tuple[str, str, int]]:
    return sorted(zip(events.user_ids, events.item_ids, events.timestamps.tolist()))


def test_temporal_split_by_hand() -> None:
    events = make_events([("u", f"i{t}", t) for t in range(1, 11)])
    split = temporal_split(events, 0.8)
    # 10 timestamps 1..10: the 0.8 quantile (lower) is the value at sorted position 7.2 -> 8.
    assert isinstance(split, TemporalSplit)
    assert split.cutoff == 8
    assert split.train.timestamps.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert split.test.timestamps.tolist() == [8, 9, 10]


def test_temporal_split_keeps_a_basket_together() -> None:
    # Four lines of one basket at t=5: they all land on the same side of the cutoff.
    events = make_events([("a", "x", 1), ("a", "y", 2)] + [("b", f"i{n}", 5) for n in range(4)])
    split = temporal_split(events, 0.5)
    assert split.cutoff == 5
    assert len(split.train) == 2 and len(split.test) == 4


def test_temporal_split_rejects_bad_arguments() -> None:
    events = make_events([("u", "i", 1)])
    with pytest.raises(ValueError, match="quantile"):
        temporal_split(events, 1.0)
    with pytest.raises(ValueError, match="no events"):
        temporal_split(events.take(np.zeros(1, dtype=bool)), 0.5)


def test_leave_last_out_by_hand() -> None:
    events = make_events([
        ("u1", "a", 3), ("u1", "b", 1), ("u1", "c", 3),  # tie at t=3: the later row (c) is last
        ("u2", "a", 7), ("u2", "d", 9),
        ("u3", "z", 4),  # a single event stays in train
    ])
    split = leave_last_out(events)
    assert _rows(split.test) == [("u1", "c", 3), ("u2", "d", 9)]
    assert _rows(split.train) == [("u1", "a", 3), ("u1", "b", 1), ("u2", "a", 7), ("u3", "z", 4)]


def test_cold_item_split_holds_out_all_events_of_a_share_of_items() -> None:
    items = [f"i{n}" for n in range(10)]
    events = make_events([(f"u{n % 3}", items[n % 10], n) for n in range(40)])
    split = cold_item_split(events, items, share=0.2, seed=0)
    assert isinstance(split, ColdItemSplit)
    assert len(split.cold_items) == 2
    cold = set(split.cold_items)
    assert cold <= set(items)
    assert not cold & set(split.train.item_ids)
    assert set(split.test.item_ids) == cold
    assert len(split.train) + len(split.test) == len(events)
    again = cold_item_split(events, items, share=0.2, seed=0)
    assert list(again.cold_items) == list(split.cold_items)
    draws = {tuple(cold_item_split(events, items, share=0.2, seed=s).cold_items) for s in range(8)}
    assert len(draws) > 1  # the seed matters


def test_cold_item_split_rejects_bad_share() -> None:
    events = make_events([("u", "i", 1)])
    with pytest.raises(ValueError, match="share"):
        cold_item_split(events, ["i"], share=0.0)


def test_cold_user_split_holds_out_whole_users() -> None:
    from coldbrew.evaluation.splits import cold_user_split

    rows = [(f"u{u}", f"i{(u * 3 + t) % 7}", t) for u in range(10) for t in range(1, 5)]
    events = make_events(rows)
    split = cold_user_split(events, share=0.3, seed=1)
    test_users = set(split.test.user_ids.tolist())
    assert len(test_users) == 3
    assert not test_users & set(split.train.user_ids.tolist())
    assert len(split.train) + len(split.test) == len(events)
    assert len(split.test) == 12  # every event of the held-out users
    assert set(cold_user_split(events, share=0.3, seed=1).test.user_ids.tolist()) == test_users
    with pytest.raises(ValueError, match="share"):
        cold_user_split(events, share=1.0)


def test_cold_item_catalogs_keeps_unsold_items_in_the_fit_catalog() -> None:
    from coldbrew.evaluation.protocol import cold_item_catalogs

    from .builders import make_catalog

    events = make_events([(f"u{u}", f"i{i}", u * 10 + i) for u in range(4) for i in range(5)])
    catalog = make_catalog([f"i{i}" for i in range(6)])  # i5 has no event at all
    split = cold_item_split(events, [f"i{i}" for i in range(5)], share=0.4, seed=0)
    seen, held_out = cold_item_catalogs(split, catalog)
    assert sorted(held_out.item_ids) == sorted(split.cold_items)
    assert "i5" in set(seen.item_ids) and len(seen) + len(held_out) == 6
