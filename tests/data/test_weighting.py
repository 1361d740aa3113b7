"""Event weighting, de-duplication and the users x items matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from coldbrew.config import WeightingConfig
from coldbrew.data import event_strengths, interaction_matrix
from coldbrew.data.weighting import duplicate_mask

DAY = 86_400
NO_DECAY = WeightingConfig(half_life_days=None)


def _strengths(events, values=None, timestamps=None, config=NO_DECAY, now=None):
    n = len(events)
    return event_strengths(
        np.asarray(events, dtype=object),
        np.full(n, np.nan) if values is None else np.asarray(values, dtype=np.float64),
        np.zeros(n, dtype=np.int64) if timestamps is None else np.asarray(timestamps, np.int64),
        config,
        now=now,
    )


def test_event_type_weights_order_purchase_cart_view():
    s = _strengths(["purchase", "cart", "click", "view", "cancel"])
    assert s.dtype == np.float32 and s.shape == (5,)
    purchase, cart, click, view, cancel = s
    assert purchase > cart > view > 0
    assert click == view
    assert list(s) == [4.0, 3.0, 1.0, 1.0, 0.0]


def test_cancel_return_refund_weigh_nothing():
    assert list(_strengths(["cancel", "return", "refund"])) == [0.0, 0.0, 0.0]


def test_unknown_event_gets_the_default_weight():
    config = WeightingConfig(half_life_days=None, default_weight=0.25)
    assert list(_strengths(["share", "view"], config=config)) == [0.25, 1.0]


def test_event_weights_are_configurable():
    config = WeightingConfig(event_weights=(("view", 0.5), ("purchase", 10.0)), half_life_days=None)
    assert list(_strengths(["view", "purchase", "cart"], config=config)) == [0.5, 10.0, 1.0]


def test_rating_factor():
    # (value - 2.5) / (5 - 2.5), clipped to [0, 1]; a missing rating counts as the maximum.
    s = _strengths(["rating"] * 6, values=[5.0, 2.5, 1.0, 3.75, 6.0, np.nan])
    np.testing.assert_allclose(s, [1.0, 0.0, 0.0, 0.5, 1.0, 1.0])


def test_rating_factor_applies_only_to_rating_events():
    s = _strengths(["rating", "purchase"], values=[1.0, 1.0])
    assert list(s) == [0.0, 4.0]


def test_rating_scale_is_configurable():
    config = WeightingConfig(half_life_days=None, rating_neutral=0.0, rating_max=10.0)
    np.testing.assert_allclose(_strengths(["rating"] * 2, values=[5.0, 10.0], config=config),
                               [0.5, 1.0])


def test_half_life_halves_the_weight():
    config = WeightingConfig(half_life_days=10.0)
    s = _strengths(["view", "view", "view"], timestamps=[0, 10 * DAY, 20 * DAY], config=config)
    # Age is measured from the newest event.
    np.testing.assert_allclose(s, [0.25, 0.5, 1.0], rtol=1e-6)


def test_half_life_from_an_explicit_now():
    config = WeightingConfig(half_life_days=10.0)
    s = _strengths(["purchase", "view"], timestamps=[0, 30 * DAY], config=config, now=40 * DAY)
    np.testing.assert_allclose(s, [4.0 / 16, 0.5], rtol=1e-6)


def test_events_after_now_are_not_boosted():
    config = WeightingConfig(half_life_days=1.0)
    s = _strengths(["view"], timestamps=[5 * DAY], config=config, now=0)
    assert list(s) == [1.0]


def test_decay_combines_with_rating_factor():
    config = WeightingConfig(half_life_days=1.0)
    s = _strengths(["rating", "rating"], values=[3.75, 5.0], timestamps=[0, DAY], config=config)
    np.testing.assert_allclose(s, [0.25, 1.0], rtol=1e-6)


def test_no_decay_when_half_life_is_none():
    s = _strengths(["view", "view"], timestamps=[0, 1000 * DAY])
    assert list(s) == [1.0, 1.0]


def test_no_events():
    s = _strengths([])
    assert s.shape == (0,) and s.dtype == np.float32


_EVENTS = st.sampled_from(["view", "click", "cart", "purchase", "rating", "cancel", "share"])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(_EVENTS, st.floats(allow_nan=True, allow_infinity=True),
                  st.integers(min_value=0, max_value=2_000_000_000)),
        min_size=1, max_size=30,
    ),
    half_life=st.one_of(st.none(), st.floats(min_value=0.01, max_value=10_000)),
    share_weight=st.floats(min_value=0, max_value=100),
)
def test_strengths_are_non_negative_and_finite(rows, half_life, share_weight):
    events, values, timestamps = zip(*rows)
    config = WeightingConfig(
        event_weights=(*WeightingConfig().event_weights, ("share", share_weight)),
        half_life_days=half_life,
    )
    s = _strengths(list(events), values=list(values), timestamps=list(timestamps), config=config)
    assert s.shape == (len(rows),)
    assert s.dtype == np.float32
    assert np.all(np.isfinite(s))
    assert np.all(s >= 0)


# --- duplicates and the matrix -------------------------------------------------------------


def test_duplicate_mask_marks_exact_repeats_only():
    users = np.array([0, 0, 0, 0, 1, 0])
    items = np.array([0, 0, 0, 0, 0, 0])
    times = np.array([1, 1, 1, 2, 1, 1])
    kinds = np.array(["view", "view", "cart", "view", "view", "view"], dtype=object)
    mask = duplicate_mask(users, items, times, kinds)
    assert mask.dtype == bool
    assert list(mask) == [False, True, False, False, False, True]


def test_interaction_matrix_sums_repeated_pairs():
    users = np.array([0, 0, 1, 0])
    items = np.array([1, 1, 0, 2])
    strengths = np.array([1.0, 2.5, 3.0, 0.5], dtype=np.float32)
    matrix = interaction_matrix(users, items, strengths, shape=(2, 3))
    assert sp.issparse(matrix) and matrix.format == "csr"
    assert matrix.dtype == np.float32
    assert matrix.shape == (2, 3)
    np.testing.assert_allclose(matrix.toarray(), [[0.0, 3.5, 0.5], [3.0, 0.0, 0.0]])
    assert matrix.nnz == 3


def test_interaction_matrix_drops_zeros_and_keeps_shape():
    users = np.array([0, 1, 2])
    items = np.array([0, 1, 1])
    strengths = np.array([0.0, 2.0, 0.0], dtype=np.float32)
    matrix = interaction_matrix(users, items, strengths, shape=(5, 4))
    assert matrix.shape == (5, 4)
    assert matrix.nnz == 1
    assert matrix[1, 1] == 2.0
    assert list(np.diff(matrix.indptr)) == [0, 1, 0, 0, 0]


def test_interaction_matrix_of_nothing():
    empty = np.array([], dtype=np.int64)
    matrix = interaction_matrix(empty, empty, np.array([], dtype=np.float32), shape=(3, 2))
    assert matrix.shape == (3, 2) and matrix.nnz == 0


def test_cancelled_purchase_leaves_no_entry():
    kinds = np.array(["cancel", "view"], dtype=object)
    s = event_strengths(kinds, np.full(2, np.nan), np.array([0, 0]), NO_DECAY)
    matrix = interaction_matrix(np.array([0, 0]), np.array([0, 1]), s, shape=(1, 2))
    np.testing.assert_array_equal(matrix.toarray(), [[0.0, 1.0]])
    assert matrix.nnz == 1


def test_events_file_to_matrix(write_file):
    from coldbrew.data import IdMap, load_events

    path = write_file(
        "e.csv",
        "user_id,item_id,timestamp,event\n"
        "u1,a,0,view\n"
        "u1,a,0,view\n"  # exact repeat: dropped before weighting
        "u1,b,0,purchase\n"
        "u2,a,0,cart\n"
        "u2,b,0,cancel\n",
    )
    events, _ = load_events(path)
    users, items = IdMap(kind="user"), IdMap(kind="item")
    u, i = users.add(events.user_ids), items.add(events.item_ids)
    fresh = ~duplicate_mask(u, i, events.timestamps, events.events)
    strengths = event_strengths(events.events[fresh], events.values[fresh],
                                events.timestamps[fresh], NO_DECAY)
    matrix = interaction_matrix(u[fresh], i[fresh], strengths, shape=(len(users), len(items)))
    assert users.ids() == ["u1", "u2"] and items.ids() == ["a", "b"]
    np.testing.assert_array_equal(matrix.toarray(), [[1.0, 4.0], [3.0, 0.0]])
    assert matrix.nnz == 3


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 6), st.integers(1, 30),
       st.lists(st.tuples(st.integers(0, 5), st.integers(0, 29), st.sampled_from([0.0, -1.0, 0.25, 1.0, 2.5])),
                max_size=60))
def test_small_batches_build_the_same_matrix_as_scipy(n_rows, n_cols, events) -> None:
    """The direct CSR build for service-sized batches equals scipy's COO route (sums, zeros, order)."""
    import coldbrew.data.weighting as weighting

    events = [(r % n_rows, c % n_cols, v) for r, c, v in events]
    rows = np.array([e[0] for e in events], dtype=np.int64)
    cols = np.array([e[1] for e in events], dtype=np.int64)
    values = np.array([e[2] for e in events], dtype=np.float32)
    small = interaction_matrix(rows, cols, values, (n_rows, n_cols))
    previous, weighting._SMALL = weighting._SMALL, -1
    try:
        reference = interaction_matrix(rows, cols, values, (n_rows, n_cols))
    finally:
        weighting._SMALL = previous
    assert small.dtype == reference.dtype == np.float32 and small.shape == reference.shape
    np.testing.assert_array_equal(small.indptr, reference.indptr)
    np.testing.assert_array_equal(small.indices, reference.indices)
    np.testing.assert_allclose(small.data, reference.data, rtol=1e-6)
    assert small.has_sorted_indices and (small.data != 0).all()


def test_recent_span_days_is_the_age_of_the_newest_share() -> None:
    from coldbrew.data.weighting import recent_span_days

    day = 86_400
    ts = np.arange(101) * day  # one event a day for 100 days
    assert recent_span_days(ts, 0.1) == pytest.approx(10.0)
    assert recent_span_days(ts, 0.5) == pytest.approx(50.0)
    assert recent_span_days(ts, 1.0) == pytest.approx(100.0)
    # The same share of a ten-times slower shop spans ten times the days.
    assert recent_span_days(ts * 10, 0.1) == pytest.approx(100.0)


def test_recent_span_days_has_a_floor_and_checks_the_share() -> None:
    from coldbrew.data.weighting import recent_span_days

    burst = np.full(50, 1_700_000_000)
    assert recent_span_days(burst, 0.05) == 1.0
    assert recent_span_days(burst, 0.05, minimum=0.5) == 0.5
    assert recent_span_days(np.zeros(0), 0.05) == 1.0
    for share in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="share"):
            recent_span_days(burst, share)
