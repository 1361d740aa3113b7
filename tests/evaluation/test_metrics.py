"""Ranking metrics: hand-checked values and invariants (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coldbrew.evaluation.metrics import (
    catalog_coverage,
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    per_user_hit_rate_at_k,
    per_user_mrr_at_k,
    per_user_ndcg_at_k,
    per_user_recall_at_k,
    recall_at_k,
    rmse,
)

LOG2_3 = math.log2(3)  # discount of rank 2 is 1 / log2(3) = 0.6309
LOG2_5 = math.log2(5)  # discount of rank 4 is 1 / log2(5) = 0.4307

# User 0: hits at ranks 2 and 4, three relevant items (x is never recommended).
# User 1: hit at rank 1, four relevant items.
# User 2: nothing relevant -> skipped by every metric.
RECOMMENDED = [["a", "b", "c", "d"], ["x", "q"], ["a"]]
RELEVANT = [{"b", "d", "x"}, {"x", "y", "z", "w"}, set()]


def test_recall_by_hand() -> None:
    # k=3: user 0 has 1 hit (b) of min(3, 3) = 3 -> 1/3; user 1 has 1 hit of min(4, 3) = 3 -> 1/3.
    per_user = per_user_recall_at_k(RECOMMENDED, RELEVANT, 3)
    np.testing.assert_allclose(per_user[:2], [1 / 3, 1 / 3])
    assert math.isnan(per_user[2])
    # k=4: user 0 has 2 hits / min(3, 4) = 3 -> 2/3; user 1 has 1 / min(4, 4) -> 1/4.
    assert recall_at_k(RECOMMENDED, RELEVANT, 4) == pytest.approx((2 / 3 + 1 / 4) / 2)
    # k=2: user 1: 1 hit / min(4, 2) = 2 -> 1/2 (capped denominator); user 0: b / 2 -> 1/2.
    assert recall_at_k(RECOMMENDED, RELEVANT, 2) == pytest.approx(0.5)


def test_ndcg_by_hand() -> None:
    # k=4, user 0: DCG = 1/log2(3) + 1/log2(5); ideal: 3 hits at ranks 1..3
    # = 1 + 1/log2(3) + 1/log2(4) = 2.1309 -> 1.0616 / 2.1309 = 0.4982.
    user0 = (1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3 + 0.5)
    # k=4, user 1: DCG = 1; ideal: 4 hits = 1 + 0.6309 + 0.5 + 0.4307 = 2.5616 -> 0.3904.
    user1 = 1 / (1 + 1 / LOG2_3 + 0.5 + 1 / LOG2_5)
    np.testing.assert_allclose(per_user_ndcg_at_k(RECOMMENDED, RELEVANT, 4)[:2], [user0, user1])
    assert ndcg_at_k(RECOMMENDED, RELEVANT, 4) == pytest.approx((user0 + user1) / 2)
    assert user0 == pytest.approx(0.49819, abs=1e-5)
    # k=1, user 0: rank 1 is 'a' (miss) -> 0; user 1: hit, ideal 1 -> 1.
    assert ndcg_at_k(RECOMMENDED, RELEVANT, 1) == pytest.approx(0.5)


def test_hit_rate_and_mrr_by_hand() -> None:
    # k=1: only user 1 has a hit at rank 1.
    assert hit_rate_at_k(RECOMMENDED, RELEVANT, 1) == pytest.approx(0.5)
    # k=2: both users hit; user 0 first hit at rank 2 (1/2), user 1 at rank 1 (1).
    assert hit_rate_at_k(RECOMMENDED, RELEVANT, 2) == pytest.approx(1.0)
    assert mrr_at_k(RECOMMENDED, RELEVANT, 2) == pytest.approx(0.75)
    np.testing.assert_allclose(per_user_mrr_at_k(RECOMMENDED, RELEVANT, 1)[:2], [0.0, 1.0])
    np.testing.assert_allclose(per_user_hit_rate_at_k(RECOMMENDED, RELEVANT, 1)[:2], [0.0, 1.0])


def test_no_user_with_relevant_items_gives_nan() -> None:
    assert math.isnan(recall_at_k([["a"]], [set()], 5))
    assert math.isnan(ndcg_at_k([], [], 5))


def test_empty_and_short_lists_count_as_misses() -> None:
    assert recall_at_k([[]], [{"a"}], 3) == 0.0
    assert ndcg_at_k([["a"]], [{"a", "b"}], 3) == pytest.approx(1 / (1 + 1 / LOG2_3))


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recall_at_k([["a"]], [{"a"}], 0)
    with pytest.raises(ValueError, match="one of each per user"):
        ndcg_at_k([["a"], ["b"]], [{"a"}], 5)
    with pytest.raises(ValueError, match="repeats an item"):
        hit_rate_at_k([["a", "a"]], [{"a"}], 5)


def test_coverage_by_hand() -> None:
    # Distinct items a, b, c, d, q, x = 6 of 10.
    assert catalog_coverage(RECOMMENDED, 10) == pytest.approx(0.6)
    # Top 1 only: a, x = 2 of 10.
    assert catalog_coverage(RECOMMENDED, 10, k=1) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="n_items"):
        catalog_coverage(RECOMMENDED, 0)


def test_rmse_by_hand() -> None:
    # Errors 0, 0, 2 -> sqrt(4 / 3) = 1.1547.
    assert rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(math.sqrt(4 / 3))
    with pytest.raises(ValueError, match="same length"):
        rmse([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="no values"):
        rmse([], [])


# --- invariants -------------------------------------------------------------------------

ITEMS = [f"i{n}" for n in range(30)]


@st.composite
def ranking_case(draw: st.DrawFn) -> tuple[list[str], set[str], int]:
    """A duplicate-free ranked list, a non-empty relevant set and k."""
    ranked = draw(st.lists(st.sampled_from(ITEMS), unique=True, max_size=25))
    relevant = draw(st.sets(st.sampled_from(ITEMS), min_size=1, max_size=15))
    k = draw(st.integers(min_value=1, max_value=30))
    return ranked, relevant, k


PER_USER = [per_user_recall_at_k, per_user_ndcg_at_k, per_user_hit_rate_at_k, per_user_mrr_at_k]
MEANS = [recall_at_k, ndcg_at_k, hit_rate_at_k, mrr_at_k]


@given(st.lists(ranking_case(), min_size=1, max_size=5))
def test_metrics_lie_in_unit_interval_and_means_match(cases: list) -> None:
    recommended = [c[0] for c in cases]
    relevant = [c[1] for c in cases]
    k = cases[0][2]
    for per_user, mean in zip(PER_USER, MEANS):
        values = per_user(recommended, relevant, k)
        assert values.shape == (len(cases),)
        assert np.all((values >= 0.0) & (values <= 1.0 + 1e-12))
        assert mean(recommended, relevant, k) == pytest.approx(float(values.mean()))


@given(ranking_case())
def test_perfect_ranking_scores_one(case: tuple) -> None:
    _, relevant, k = case
    perfect = sorted(relevant) + [i for i in ITEMS if i not in relevant]
    for mean in MEANS:
        assert mean([perfect], [relevant], k) == pytest.approx(1.0)


@given(ranking_case(), st.randoms(use_true_random=False))
def test_ndcg_ignores_which_relevant_item_sits_where(case: tuple, rnd) -> None:
    ranked, relevant, k = case
    # The relevant set built in another order is the same set; and swapping relevant items
    # among the hit positions leaves the binary gains where they were.
    shuffled = list(relevant)
    rnd.shuffle(shuffled)
    hit_positions = [p for p, item in enumerate(ranked) if item in relevant]
    hit_items = [ranked[p] for p in hit_positions]
    rnd.shuffle(hit_items)
    permuted = list(ranked)
    for p, item in zip(hit_positions, hit_items):
        permuted[p] = item
    base = ndcg_at_k([ranked], [relevant], k)
    assert ndcg_at_k([ranked], [set(shuffled)], k) == pytest.approx(base)
    assert ndcg_at_k([permuted], [relevant], k) == pytest.approx(base)


@given(ranking_case(), st.data())
def test_adding_a_hit_never_lowers_recall_or_ndcg(case: tuple, data: st.DataObject) -> None:
    ranked, relevant, k = case
    misses = [p for p, item in enumerate(ranked[:k]) if item not in relevant]
    unused = sorted(relevant - set(ranked))
    if not misses or not unused:
        return
    position = data.draw(st.sampled_from(misses))
    better = list(ranked)
    better[position] = data.draw(st.sampled_from(unused))
    # One more hit in the top k with the same denominator: recall goes strictly up.
    assert recall_at_k([better], [relevant], k) > recall_at_k([ranked], [relevant], k)
    assert ndcg_at_k([better], [relevant], k) >= ndcg_at_k([ranked], [relevant], k) - 1e-12


@given(st.lists(st.lists(st.sampled_from(ITEMS), unique=True, max_size=10), max_size=6))
def test_coverage_lies_in_unit_interval(lists: list) -> None:
    value = catalog_coverage(lists, len(ITEMS))
    assert 0.0 <= value <= 1.0


def test_item_warmth_recall_by_hand() -> None:
    from coldbrew.evaluation.metrics import item_warmth_recall

    recommended = [["a", "b", "c"], ["d", "a", "x"]]
    relevant = [{"a", "new"}, {"d", "b"}]
    counts = {"a": 150, "b": 4, "d": 1}  # "new" has no training event
    rows = item_warmth_recall(recommended, relevant, counts, k=2)
    by_label = {label: (recall, n) for label, recall, n in rows}
    assert by_label["0"] == (0.0, 1)  # "new" never recommended
    assert by_label["1-2"] == (1.0, 1)  # "d" in user 2's top 2
    assert by_label["3-5"] == (0.0, 1)  # "b" not in user 2's list
    assert by_label["101+"] == (1.0, 1)  # "a" in user 1's top 2
    assert np.isnan(by_label["6-20"][0]) and by_label["6-20"][1] == 0
    with pytest.raises(ValueError, match="edges"):
        item_warmth_recall(recommended, relevant, counts, k=2, edges=(3, 2))


@given(
    st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=6), min_size=1, max_size=8),
    st.integers(1, 6),
)
def test_item_warmth_recall_pairs_and_bounds(lists, k) -> None:
    from coldbrew.evaluation.metrics import item_warmth_recall

    relevant = [set(items[::2]) | {"z"} for items in lists]
    counts = {c: i * 7 for i, c in enumerate("abcdefgh")}
    rows = item_warmth_recall(lists, relevant, counts, k)
    assert sum(n for _, _, n in rows) == sum(len(r) for r in relevant)
    assert all(np.isnan(r) or 0.0 <= r <= 1.0 for _, r, _ in rows)
