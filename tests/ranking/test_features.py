"""Feature functions on tiny hand-checkable fixtures, plus invariants."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from coldbrew.ranking.features import (
    FEATURE_NAMES,
    ItemTable,
    UserTable,
    category_labels,
    category_match,
    category_share,
    days_since,
    feature_names,
    group_ranks,
    pair_features,
    price_fit,
    primary_categories,
    typical_price,
)


def test_category_labels_split_multi_values_and_paths():
    labels, names = category_labels(["Drama|Comedy", "", "Home > Kitchen", "comedy", None])
    assert set(names) == {"drama", "comedy", "home", "home > kitchen"}
    dense = labels.toarray()
    col = {n: j for j, n in enumerate(names)}
    assert dense[0, col["drama"]] == 1 and dense[0, col["comedy"]] == 1
    assert dense[1].sum() == 0 and dense[4].sum() == 0
    assert dense[2, col["home"]] == 1 and dense[2, col["home > kitchen"]] == 1
    assert dense[3, col["comedy"]] == 1 and dense[3].sum() == 1


def test_category_labels_without_categories_has_no_columns():
    labels, names = category_labels(["", "", ""])
    assert labels.shape == (3, 0) and names == []


def test_primary_categories_keep_the_most_frequent():
    classes, names = primary_categories(["a|b", "b", "b > x", "c", ""], top=1)
    assert names == ["b"]
    assert classes.tolist() == [-1, 0, 0, -1, -1]


def test_typical_price_is_the_median_of_known_prices():
    history = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], np.float32))
    prices = np.array([1.0, 3.0, 10.0, np.nan])
    out = typical_price(history, prices)
    assert out[0] == 3.0 and np.isnan(out[1]) and np.isnan(out[2])


def test_price_fit_is_a_log_ratio_and_zero_when_unknown():
    ratio, known = price_fit(np.array([2.0, 1.0, np.nan, 0.0]), np.array([1.0, np.nan, 1.0, 1.0]))
    assert ratio[0] == pytest.approx(np.log(2.0))
    assert ratio[1:].tolist() == [0.0, 0.0, 0.0]
    assert known.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_category_share_and_match():
    # items 0, 1 are shoes, item 2 tea, item 3 has no category
    labels, names = category_labels(["shoes", "shoes", "tea", ""])
    history = sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 0, 0, 0]], np.float32))
    share = category_share(history, labels)
    col = {n: j for j, n in enumerate(names)}
    assert share.toarray()[0, col["shoes"]] == pytest.approx(0.5)
    assert share.toarray()[0, col["tea"]] == pytest.approx(0.5)
    match = category_match(share, labels, np.array([0, 0, 1]), np.array([1, 3, 2]))
    assert match.tolist() == pytest.approx([0.5, 0.0, 0.0])


def test_category_match_without_categories_is_zero():
    labels, _ = category_labels(["", ""])
    share = category_share(sp.csr_matrix(np.ones((1, 2), np.float32)), labels)
    assert category_match(share, labels, np.array([0, 0]), np.array([0, 1])).tolist() == [0.0, 0.0]


def test_days_since():
    out = days_since(np.array([0, -1, 86_400]), np.array([86_400 * 3, 100, 86_400]))
    assert out.tolist() == [3.0, 0.0, 0.0]


def test_group_ranks_within_rows():
    rows = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.9, 0.5, 2.0, 3.0])
    assert group_ranks(rows, scores).tolist() == [2, 0, 1, 1, 0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-5, 5)), min_size=1, max_size=30))
def test_group_ranks_are_a_permutation_per_row(pairs):
    rows = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs])
    ranks = group_ranks(rows, scores)
    for r in np.unique(rows):
        sel = rows == r
        assert sorted(ranks[sel].tolist()) == list(range(sel.sum()))
        best = np.flatnonzero(sel)[np.argmin(ranks[sel])]
        assert scores[best] == scores[sel].max()


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 2.0])), min_size=1, max_size=30))
def test_group_ranks_of_presorted_candidates_match_the_sorting_definition(pairs):
    """Rows ascending with scores best first inside each row (the serving candidates) take a
    path without a sort: the ranks must equal the lexsort definition, ties in pair order."""
    pairs = sorted(pairs, key=lambda p: (p[0], -p[1]))
    rows = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs])
    assert group_ranks(rows, scores).tolist() == _ranks_by_sorting(rows, scores).tolist()
    # the same pairs reversed are not presorted and take the sorting path
    r, s = rows[::-1].copy(), scores[::-1].copy()
    assert group_ranks(r, s).tolist() == _ranks_by_sorting(r, s).tolist()


def _ranks_by_sorting(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    order = np.lexsort((np.arange(len(rows)), -scores, rows))
    expected = np.empty(len(rows), dtype=np.int64)
    expected[order] = np.arange(len(rows)) - np.searchsorted(rows[order], rows[order], side="left")
    return expected


def _tables(n_codes: int = 0):
    labels, _ = category_labels(["shoes", "shoes", "tea"])
    items = ItemTable(
        popularity=np.array([1.0, 2.0, 3.0], np.float32), counts=np.array([3.0, 0.0, 1.0], np.float32),
        new=np.array([False, True, False]), prices=np.array([10.0, 20.0, np.nan]), labels=labels,
        codes=np.arange(3 * n_codes, dtype=np.float32).reshape(3, n_codes),
        habits=np.array([[0.5, 2.0, 0.0], [0.0, 0.0, 0.0], [0.25, 0.0, 1.0]], np.float32),
    )
    history = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], np.float32))
    users = UserTable(
        n_history=np.array([1.0, 0.0], np.float32), recency_days=np.array([2.0, 0.0], np.float32),
        price=typical_price(history, items.prices), share=category_share(history, labels),
        has_text=np.array([False, True]),
    )
    return users, items


def test_pair_features_columns_by_hand():
    users, items = _tables(n_codes=2)
    rows, cand = np.array([0, 0, 1]), np.array([1, 2, 0])
    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = pair_features(rows, cand, np.array([0.5, 0.7, 0.1]), z, np.array([0.0, 0.0, 0.3]), users, items)
    col = {n: j for j, n in enumerate(feature_names(2))}
    assert x.shape == (3, len(FEATURE_NAMES) + 2) and x.dtype == np.float32
    assert x[:, col["blend_rank"]].tolist() == pytest.approx([np.log1p(1), 0.0, 0.0])
    assert x[:, col["cf_z"]].tolist() == [2.0, 6.0, 10.0]
    assert x[:, col["item_warmth"]].tolist() == pytest.approx([0.0, np.log1p(1.0), np.log1p(3.0)])
    assert x[:, col["is_new_item"]].tolist() == [1.0, 0.0, 0.0]
    assert x[0, col["price_log_ratio"]] == pytest.approx(np.log(2.0))  # 20 vs the user's 10
    assert x[1:, col["price_known"]].tolist() == [0.0, 0.0]  # unknown item price; no history
    assert x[:, col["category_match"]].tolist() == [1.0, 0.0, 0.0]
    assert x[:, col["user_warmth"]].tolist() == pytest.approx([np.log1p(1.0)] * 2 + [0.0])
    assert x[:, col["recency"]].tolist() == pytest.approx([np.log1p(2.0)] * 2 + [0.0])
    assert x[:, col["has_text"]].tolist() == [0.0, 0.0, 1.0]
    assert x[:, col["repeat_rate"]].tolist() == [0.0, 0.25, 0.5]  # items 1, 2, 0
    assert x[:, col["basket_size"]].tolist() == [0.0, 0.0, 2.0]
    assert x[:, col["novelty"]].tolist() == [0.0, 1.0, 0.0]
    assert x[:, col["text_code_1"]].tolist() == [3.0, 5.0, 1.0]
    assert np.isfinite(x).all()


def test_pair_features_reject_mismatched_inputs():
    users, items = _tables()
    with pytest.raises(ValueError, match="source_z"):
        pair_features(np.array([0]), np.array([0]), np.array([0.0]), np.zeros((1, 3)), np.zeros(1), users, items)


def test_item_table_checks_lengths():
    with pytest.raises(ValueError, match="counts"):
        ItemTable(np.zeros(2, np.float32), np.zeros(3, np.float32), np.zeros(2, bool), np.zeros(2),
                  sp.csr_matrix((2, 0)), np.zeros((2, 0), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="habits"):
        ItemTable(np.zeros(2, np.float32), np.zeros(2, np.float32), np.zeros(2, bool), np.zeros(2),
                  sp.csr_matrix((2, 0)), np.zeros((2, 0), np.float32), np.zeros((2, 2), np.float32))


def test_item_habits_by_hand():
    from coldbrew.ranking.features import item_habits

    day = 86_400
    # user 0: items 0 and 1 in one basket on day 0, item 0 again on day 2 (a repeat);
    # user 1: item 0 alone on day 1; item 2 has no events.
    user = np.array([0, 0, 0, 1])
    item = np.array([0, 1, 0, 0])
    ts = np.array([0, 0, 2 * day, day])
    got = item_habits(user, item, ts, 3)
    assert got.dtype == np.float32 and got.shape == (3, 3)
    assert got[:, 0].tolist() == pytest.approx([0.5, 0.0, 0.0])  # 1 of item 0's 2 buyers came back
    # item 0's baskets: {0, 1} (size 2), {0} (1), {0} (1); item 1's: {0, 1}
    assert got[:, 1].tolist() == pytest.approx([np.log(2.0) / 3, np.log(2.0), 0.0])
    assert got[:, 2].tolist() == [0.0, 0.0, 0.0]  # both sold 2 days ago; the window is 1 day
    assert item_habits(np.zeros(0), np.zeros(0), np.zeros(0), 2).tolist() == [[0.0] * 3] * 2


def test_novelty_is_measured_in_the_span_of_the_newest_quarter_of_events():
    from coldbrew.ranking.features import item_habits

    day = 86_400
    # six sales of item 0 on day 0, item 1 first sold on day 10, item 2 on day 12 (the newest).
    # The newest quarter of the 8 events spans 12 - 2.5 = 9.5 days (linear quantile).
    item = np.array([0, 0, 0, 0, 0, 0, 1, 2])
    ts = np.array([0, 0, 0, 0, 0, 0, 10, 12]) * day
    got = item_habits(np.arange(8), item, ts, 4)
    assert got[:, 2].tolist() == pytest.approx([0.0, 1 - 2 / 9.5, 1.0, 0.0])
