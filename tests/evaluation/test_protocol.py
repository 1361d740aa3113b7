"""The segment protocol on a hand-made shop: who lands in which segment, with what."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from coldbrew.evaluation.protocol import (
    Segment,
    evaluate,
    fit_catalog,
    is_positive,
    markdown_table,
    temporal_segments,
)
from coldbrew.evaluation.splits import TemporalSplit
from coldbrew.requests import HistoryEvent, Recommendation, Request

from .builders import make_catalog, make_events

CATALOG = make_catalog(["A", "B", "C", "D", "E", "F"])

TRAIN = make_events([
    ("u1", "B", 2, "purchase", 6),
    ("u1", "A", 1, "purchase", 1),  # rows out of time order: history must be sorted
    ("u1", "C", 3, "cancel", -1),
    ("u2", "A", 1),
    ("u6", "D", 4),
])
TEST = make_events([
    ("u1", "B", 10),  # in u1's train history: not relevant
    ("u1", "C", 11),  # cancelled in train, still history: not relevant
    ("u1", "D", 12),
    ("u1", "E", 13),  # E has no train event: a new item
    ("u2", "D", 11, "cancel", -2),  # a cancel is not positive: u2 is in no segment
    ("u3", "A", 20),
    ("u3", "D", 21),
    ("u3", "A", 22),
    ("u3", "E", 23),
    ("u4", "B", 15),  # a new user with one positive item
    ("u5", "B", 16, "rating", 2.0),  # a low rating is not positive
    ("u5", "C", 17, "rating", 2.0),
    ("u6", "Z", 18),  # Z is not in the catalog: never relevant
])
SPLIT = TemporalSplit(train=TRAIN, test=TEST, cutoff=10)


def test_is_positive() -> None:
    events = make_events([
        ("u", "a", 1, "purchase", 3), ("u", "a", 2, "cancel", -3), ("u", "a", 3, "rating", 2.5),
        ("u", "a", 4, "rating", 3.0), ("u", "a", 5, "view"),
    ])
    assert is_positive(events).tolist() == [True, False, False, True, True]


def test_warm_users_segment() -> None:
    warm = temporal_segments(SPLIT, CATALOG)["warm_users"]
    assert [r.request_id for r in warm.requests] == ["warm_users:u1"]
    request = warm.requests[0]
    assert request.user_id == "u1"
    assert request.candidates is None
    assert request.history == (
        HistoryEvent("A", 1, "purchase", 1.0),
        HistoryEvent("B", 2, "purchase", 6.0),
        HistoryEvent("C", 3, "cancel", -1.0),
    )
    assert warm.relevant == [{"D", "E"}]
    assert warm.n_items == 6


def test_new_users_segment_and_reveal() -> None:
    new = temporal_segments(SPLIT, CATALOG, reveal=1)["new_users"]
    # u3 has 3 distinct positive items (A, D, E); u4 only one; u5 none.
    assert [r.request_id for r in new.requests] == ["new_users:u3"]
    assert new.requests[0].history == (HistoryEvent("A", 20, "purchase", None),)
    assert new.relevant == [{"D", "E"}]

    zero = temporal_segments(SPLIT, CATALOG, reveal=0)["new_users"]
    assert [r.user_id for r in zero.requests] == ["u3", "u4"]
    assert [r.history for r in zero.requests] == [(), ()]
    assert zero.relevant == [{"A", "D", "E"}, {"B"}]

    two = temporal_segments(SPLIT, CATALOG, reveal=2)["new_users"]
    assert [e.item_id for e in two.requests[0].history] == ["A", "D"]
    assert two.relevant == [{"E"}]

    # The same users across a few-shot curve when the minimum is fixed.
    fixed = [
        [r.user_id for r in temporal_segments(
            SPLIT, CATALOG, reveal=n, min_new_user_items=3)["new_users"].requests]
        for n in (0, 1, 2)
    ]
    assert fixed == [["u3"], ["u3"], ["u3"]]


def test_new_items_segment() -> None:
    new_items = temporal_segments(SPLIT, CATALOG)["new_items"]
    # New items: E and F (no train event at all), sorted. Only u1 (known) used E.
    assert [r.request_id for r in new_items.requests] == ["new_items:u1"]
    assert new_items.requests[0].candidates == ("E", "F")
    assert [e.item_id for e in new_items.requests[0].history] == ["A", "B", "C"]
    assert new_items.relevant == [{"E"}]
    assert new_items.n_items == 2


def test_max_users_subsamples_with_the_seed() -> None:
    rows = [(f"u{n}", "A", 1) for n in range(20)] + [(f"u{n}", "B", 5) for n in range(20)]
    split = TemporalSplit(make_events(rows[:20]), make_events(rows[20:]), cutoff=5)
    catalog = make_catalog(["A", "B"])
    full = temporal_segments(split, catalog)["warm_users"]
    assert len(full) == 20
    some = temporal_segments(split, catalog, max_users=5, seed=1)["warm_users"]
    again = temporal_segments(split, catalog, max_users=5, seed=1)["warm_users"]
    other = temporal_segments(split, catalog, max_users=5, seed=2)["warm_users"]
    ids = [r.request_id for r in some.requests]
    assert len(ids) == 5 and ids == sorted(ids)
    assert ids == [r.request_id for r in again.requests]
    assert ids != [r.request_id for r in other.requests]


def test_segment_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="reveal"):
        temporal_segments(SPLIT, CATALOG, reveal=-1)
    with pytest.raises(ValueError, match="max_users"):
        temporal_segments(SPLIT, CATALOG, max_users=0)
    with pytest.raises(ValueError, match="relevant sets"):
        Segment("s", [Request("r", "u")], [])


def test_fit_catalog_partitions_by_train_items() -> None:
    seen, rest = fit_catalog(SPLIT, CATALOG)
    assert seen.item_ids.tolist() == ["A", "B", "C", "D"]
    assert rest.item_ids.tolist() == ["E", "F"]


class _Oracle:
    """Answers with a fixed list per user: a stand-in model for evaluate()."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    def fit(self, catalog, events):  # pragma: no cover - not used by evaluate
        return self

    def add_items(self, catalog) -> None:  # pragma: no cover - not used by evaluate
        pass

    def recommend(self, requests: Sequence[Request], k: int) -> list[Recommendation]:
        return [
            Recommendation(r.request_id, r.user_id, self.answers[r.user_id][:k]) for r in requests
        ]


def test_evaluate_by_hand() -> None:
    segment = Segment(
        "warm_users",
        [Request("warm_users:a", "a"), Request("warm_users:b", "b")],
        [{"x"}, {"y", "z"}],
        n_items=10,
    )
    model = _Oracle({"a": ["x", "q"], "b": ["q", "y"]})
    result = evaluate(model, {"warm_users": segment}, k=2)["warm_users"]
    # a: recall 1/1, ndcg 1, mrr 1. b: recall 1/min(2,2) = 0.5, DCG 1/log2(3) over
    # ideal 1 + 1/log2(3) = 0.3869, mrr 1/2. Coverage: x, q, y = 3 of 10.
    assert result["recall@2"] == pytest.approx(0.75)
    assert result["ndcg@2"] == pytest.approx((1 + (1 / np.log2(3)) / (1 + 1 / np.log2(3))) / 2)
    assert result["hit@2"] == pytest.approx(1.0)
    assert result["mrr@2"] == pytest.approx(0.75)
    assert result["coverage@2"] == pytest.approx(0.3)
    assert result["users"] == 2


def test_evaluate_rejects_answers_out_of_order() -> None:
    segment = Segment("s", [Request("s:a", "a"), Request("s:b", "b")], [{"x"}, {"y"}], 5)

    class Reversed(_Oracle):
        def recommend(self, requests, k):
            return super().recommend(list(requests)[::-1], k)

    with pytest.raises(ValueError, match="request order"):
        evaluate(Reversed({"a": ["x"], "b": ["y"]}), {"s": segment}, k=5)


def test_evaluate_on_an_empty_segment_gives_nan() -> None:
    result = evaluate(_Oracle({}), {"s": Segment("s", [], [], 5)}, k=5)["s"]
    assert np.isnan(result["ndcg@5"]) and result["users"] == 0


def test_markdown_table() -> None:
    results = {
        "pop": {"warm": {"ndcg@20": 0.01234, "users": 1200.0}, "new": {"ndcg@20": 0.5}},
        "als": {"warm": {"ndcg@20": 0.1, "users": 1200.0}},
    }
    table = markdown_table(results, ["ndcg@20", "users"])
    assert table.splitlines() == [
        "| model | warm ndcg@20 | warm users | new ndcg@20 | new users |",
        "|---|---:|---:|---:|---:|",
        "| pop | 0.0123 | 1,200 | 0.5000 | – |",
        "| als | 0.1000 | 1,200 | – | – |",
    ]
