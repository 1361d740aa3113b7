"""New products on shelves (``coldbrew.shelves``): when the nearest-item scores apply, and what they keep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.ranking.test_stage import _shop

from coldbrew.config import FitConfig
from coldbrew.data.catalog import catalog_from_frame
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent, Request
from coldbrew.scoring import shelf_rows
from coldbrew.shelves import new_item_neighbors, shelf_content


@pytest.fixture
def model() -> Recommender:
    catalog, events = _shop()
    config = FitConfig.from_dict({"encoder": {"name": "hashing"}, "blend": {"tune": False},
                                  "ranker": {"kind": "none"}, "graph": {"enabled": False}})
    fitted = Recommender(config).fit(catalog, events, progress=False)
    added, _ = catalog_from_frame(pd.DataFrame({
        "item_id": ["new-a", "new-b", "new-c"],
        "title": ["shoes product premium new", "tea product basic new", "wine product premium new"],
    }))
    assert fitted.add_items(added) == 3
    return fitted


def _shelf_request(model: Recommender, history: tuple[str, ...]) -> Request:
    cold = [i for i, warm in zip(model.item_map_.ids(), model.item_warm_) if not warm]
    return Request("shelf", "u", history=tuple(HistoryEvent(i, int(model.now_), "purchase") for i in history),
                   candidates=tuple(cold))


def test_shelf_scores_are_the_profile_cosines_handed_out_again(model: Recommender):
    req = _shelf_request(model, ("tea1", "tea2"))
    batch = model.batch([req])
    shelf = shelf_rows(batch, model.item_warm_)
    assert shelf.tolist() == [True]
    user_factors, damped, profile = model._profiles(batch)
    content = profile @ model.text_vectors_.T
    slot, scores = shelf_content(model, batch, profile, shelf, content, nearest=True)
    cold = np.flatnonzero(~model.item_warm_)
    assert (slot[cold] >= 0).all() and (slot[model.item_warm_] == -1).all()
    # the new items keep exactly the values they had; only which item holds which changes
    np.testing.assert_allclose(np.sort(scores[0]), np.sort(content[0, cold]), rtol=1e-6)


def test_no_shelf_scores_off_or_outside_shelves(model: Recommender):
    req = _shelf_request(model, ("tea1",))
    batch = model.batch([req])
    shelf = shelf_rows(batch, model.item_warm_)
    _, _, profile = model._profiles(batch)
    assert shelf_content(model, batch, profile, shelf, nearest=False) is None
    ordinary = model.batch([Request("list", "u", history=(HistoryEvent("tea1", int(model.now_), "purchase"),))])
    assert shelf_content(model, ordinary, profile, shelf_rows(ordinary, model.item_warm_), nearest=True) is None


def test_neighbour_lists_are_built_once_and_grown_with_added_items(model: Recommender):
    cold, weights = new_item_neighbors(model)
    again_cold, again = new_item_neighbors(model)
    assert again is weights and np.array_equal(cold, again_cold)
    assert weights.shape == (len(model.item_map_), len(cold))
    added, _ = catalog_from_frame(pd.DataFrame({"item_id": ["new-d"], "title": ["tea product premium new"]}))
    model.add_items(added)
    grown_cold, grown = new_item_neighbors(model)
    assert len(grown_cold) == len(cold) + 1 and grown.shape == (len(model.item_map_), len(cold) + 1)
    assert grown is not weights
