"""Retrieve-then-rank (``coldbrew.retrieval.ranked``): the path of catalogs above ``dense_limit``."""

from __future__ import annotations

import numpy as np
import pytest
from tests.ranking.test_stage import DAY, START, _shop

from coldbrew.config import FitConfig
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent, Request


def _model(dense_limit: int) -> Recommender:
    catalog, events = _shop()
    config = FitConfig.from_dict({"encoder": {"name": "hashing"}, "blend": {"tune": False},
                                  "ranker": {"kind": "none"}, "graph": {"enabled": False},
                                  "retrieval": {"dense_limit": dense_limit, "per_source": 10}})
    return Recommender(config).fit(catalog, events, progress=False)


@pytest.fixture(scope="module")
def retrieved() -> Recommender:
    return _model(0)  # every catalog is "large": retrieve, then rank the pool


def _h(item: str, day: float = 99) -> HistoryEvent:
    return HistoryEvent(item, START + int(day * DAY), "purchase")


def test_retrieved_lists_keep_the_request_rules(retrieved: Recommender):
    assert set(retrieved._retrieval_indexes()) == {"cf", "content"}
    warm, listed, excluded = retrieved.recommend([
        Request("warm", "u0", (_h("shoes0"), _h("shoes1"))),
        Request("listed", "u1", (_h("tea1"),), candidates=("tea2", "tea3", "wine0", "unknown")),
        Request("excluded", "u2", (_h("wine4"),), exclude=("wine5", "wine6")),
    ], k=5)
    assert len(warm.items) == 5 and not {"shoes0", "shoes1"} & set(warm.items)
    assert len(set(warm.items)) == 5 and len(warm.reasons) == 5
    assert warm.scores == sorted(warm.scores, reverse=True)
    assert set(listed.items) <= {"tea2", "tea3", "wine0"}
    assert not {"wine4", "wine5", "wine6"} & set(excluded.items)


def test_retrieved_lists_lean_to_the_shopper_s_category(retrieved: Recommender):
    rec = retrieved.recommend([Request("tea", "u3", (_h("tea0"), _h("tea1"), _h("tea2")))], k=3)[0]
    assert all(item.startswith("tea") for item in rec.items)


def test_score_given_items_scores_history_items_and_marks_missing_ones(retrieved: Recommender):
    idx = retrieved.item_map_.lookup(["tea1", "tea5", "wine3"])
    items = np.array([[idx[0], idx[1], -1], [idx[2], -1, -1]])
    req = Request("r", "u", (_h("tea1"),))
    scores = retrieved.score_items([req, req], items)
    assert scores.shape == (2, 3) and scores.dtype == np.float32
    assert np.isfinite(scores[0, :2]).all() and np.isfinite(scores[1, 0])  # a history item is scored too
    assert scores[0, 2] == -np.inf and (scores[1, 1:] == -np.inf).all()
