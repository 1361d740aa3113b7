"""The re-ranking stage inside the pipeline: fit-time training, recommend, persistence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coldbrew.config import FitConfig
from coldbrew.data import catalog_from_frame, events_from_frame
from coldbrew.errors import ConfigError
from coldbrew.pipeline import Recommender
from coldbrew.ranking.stage import purchase_pairs
from coldbrew.requests import HistoryEvent, Request
from coldbrew.storage.artifacts import load_model, save_model

KINDS = {"shoes": 60.0, "tea": 8.0, "wine": 15.0}
DAY = 86_400
START = 1_700_000_000


def _shop(seed: int = 0):
    """Three categories of ten products; each shopper sticks to one category.

    Shoppers 0-179 buy throughout the 100 days, 180-239 only from a day between 76 and 98
    (new users in the hold-out periods); products 8 and 9 of each category sell only from
    day 86 and day 94 (new items in the two hold-out periods).
    """
    rng = np.random.default_rng(seed)
    items, titles, cats, prices = [], [], [], []
    for kind, price in KINDS.items():
        for j in range(10):
            items.append(f"{kind}{j}")
            titles.append(f"{kind} product {j} {'premium' if j % 2 else 'basic'}")
            cats.append(kind)
            prices.append(price * (1 + 0.1 * j))
    rows = []
    first = np.where(np.arange(240) >= 180, rng.uniform(76.0, 98.0, size=240), 0.0)
    for u in range(240):
        kind = list(KINDS)[u % 3]
        for _ in range(12):
            day = rng.uniform(first[u], 100.0)
            j = int(min(rng.geometric(0.25) - 1, 7))
            if day > 94 and rng.random() < 0.4:
                j = 9
            elif day > 86 and rng.random() < 0.4:
                j = 8
            rows.append((f"u{u}", f"{kind}{j}", START + int(day * DAY), "purchase", float(rng.integers(1, 5))))
    catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": items, "title": titles, "category": cats, "price": prices}))
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event", "value"]))
    return catalog, events


def _config(kind: str, **ranker) -> FitConfig:
    return FitConfig.from_dict({
        "encoder": {"name": "hashing"}, "blend": {"tune": False},
        "ranker": {"kind": kind, "require_gain": False, "kinds": "warm_users,new_users,new_items", "candidates": 12, "epochs": 5, "max_users": 200,
                   "trees": 20, **ranker},
    })


@pytest.fixture(scope="module", params=["multitask", "lambdarank"])
def fitted(request):
    catalog, events = _shop()
    return Recommender(_config(request.param)).fit(catalog, events, progress=False)


def _requests():
    return [
        Request("warm", "u0", (HistoryEvent("shoes0", START + 50 * DAY, "purchase"), HistoryEvent("shoes1", START + 60 * DAY, "purchase"))),
        Request("one", "new", (HistoryEvent("tea2", START + 101 * DAY, "purchase"),)),
        Request("text", "x", text="wine"),
    ]


def test_ranker_is_trained_at_fit_time_with_curves_and_a_report(fitted):
    report = fitted.fit_report_["ranker"]
    assert report["active"] and report["groups_train"] > 0 and report["purchase_label"] == "repeat"
    assert set(report["kinds"]) == {"warm_users", "new_users", "new_items"}
    assert report["kinds"]["warm_users"]["used"]  # require_gain is off in these tests
    assert set(fitted.reranker_.rankers) == {k for k, v in report["kinds"].items() if v["used"]}
    for row in report["kinds"].values():
        if not row["used"]:
            assert "too few requests" in row["reason"]
    curves = fitted.training_curves_["ranker"]
    n = len(curves["epoch"])
    assert n >= 1 and len(curves["warm_users_val_ndcg"]) == len(curves["warm_users_blend_val_ndcg"]) == n
    assert report["categories"] == 3


def test_reranked_lists_keep_the_contract(fitted):
    recs = fitted.recommend(_requests(), k=5)
    warm, one, text = recs
    assert len(warm.items) == 5 and not {"shoes0", "shoes1"} & set(warm.items)
    assert warm.scores == sorted(warm.scores, reverse=True)
    assert sum(i.startswith("shoes") for i in warm.items) >= 3  # the category's products lead
    assert "tea2" not in one.items and len(one.reasons) == 5 and all(one.reasons)
    restricted = fitted.recommend([Request("c", "u0", candidates=("wine1", "tea1"))], k=5)[0]
    assert sorted(restricted.items) == ["tea1", "wine1"]


def test_save_load_and_add_items_keep_the_ranker(fitted, tmp_path):
    before = fitted.recommend(_requests(), k=5)
    save_model(fitted, tmp_path / "m")
    assert (tmp_path / "m" / "ranker.json").is_file()
    meta = json.loads((tmp_path / "m" / "ranker.json").read_text())
    assert meta["kind"] == fitted.config.ranker.kind
    loaded = load_model(tmp_path / "m")
    assert loaded.reranker_ is not None
    after = loaded.recommend(_requests(), k=5)
    for a, b in zip(before, after):
        assert a.items == b.items
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4, atol=1e-5)
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["shoes99"], "title": ["shoes product premium carbon"],
                                              "category": ["shoes"], "price": [70.0]}))
    assert loaded.add_items(new) == 1
    rec = loaded.recommend([Request("n", "u0", _requests()[0].history, candidates=("shoes99", "tea3"))], k=2)[0]
    assert set(rec.items) == {"shoes99", "tea3"}
    save_model(loaded, tmp_path / "m")  # add-items and resave keep a loadable ranker
    assert load_model(tmp_path / "m").reranker_ is not None


def test_a_model_without_ranker_removes_stale_ranker_files(fitted, tmp_path):
    save_model(fitted, tmp_path / "m")
    plain = Recommender(_config("none")).fit(*_shop(), progress=False)
    save_model(plain, tmp_path / "m")
    assert not (tmp_path / "m" / "ranker.json").exists()
    assert load_model(tmp_path / "m").reranker_ is None


def test_require_gain_reports_why_a_ranker_is_dropped():
    catalog, events = _shop()
    model = Recommender(_config("multitask", require_gain=True, epochs=1, learning_rate=1e-6)).fit(
        catalog, events, progress=False)
    report = model.fit_report_["ranker"]
    assert report["active"] == (model.reranker_ is not None)
    for row in report["kinds"].values():
        if "val_ndcg_ranker" in row:
            assert row["used"] == (row["val_ndcg_ranker"] > row["val_ndcg_blend"])
    if not report["active"]:
        assert "no request kind" in report["reason"]
    assert len(model.recommend(_requests(), k=5)[0].items) == 5


def test_too_little_data_leaves_the_blend_in_charge():
    catalog, events = _shop()
    model = Recommender(_config("multitask")).fit(catalog, events.take(np.arange(100)), progress=False)
    assert model.reranker_ is None and "fewer than 200 events" in model.fit_report_["ranker"]["reason"]


def test_purchase_label_uses_purchases_or_ratings_when_they_differ_from_clicks():
    frame = pd.DataFrame({
        "user_id": ["a", "a", "b", "b"], "item_id": ["x", "y", "x", "y"],
        "timestamp": [1, 2, 3, 4], "event": ["rating"] * 4, "value": [5.0, 3.0, 4.0, 2.0],
    })
    events, _ = events_from_frame(frame)
    pairs, definition = purchase_pairs(events)
    assert definition == "purchase" and pairs == {("a", "x"), ("b", "x")}


@pytest.mark.parametrize("raw, key", [
    ({"kind": "forest"}, "ranker.kind"), ({"candidates": 0}, "ranker.candidates"),
    ({"max_reveal": 0}, "ranker.max_reveal"), ({"learning_rate": 0}, "ranker.learning_rate"),
    ({"purchase_blend": -1.0}, "ranker.purchase_blend"), ({"typo": 1}, "typo"),
    ({"kinds": "warm_users,everyone"}, "ranker.kinds"), ({"kinds": ""}, "ranker.kinds"),
    ({"periods": 1}, "ranker.periods"),
])
def test_ranker_config_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError, match=key):
        FitConfig.from_dict({"ranker": raw})


def test_retrieval_path_reranks_too(fitted):
    from dataclasses import replace

    dense = fitted.recommend(_requests(), k=5)
    original = fitted.config
    try:
        fitted.config = replace(original, retrieval=replace(original.retrieval, dense_limit=0, per_source=50, index="exact"))
        retrieved = fitted.recommend(_requests(), k=5)
    finally:
        fitted.config = original
    for a, b in zip(dense, retrieved):
        assert len(b.items) == 5 and len(b.reasons) == 5
        assert b.scores == sorted(b.scores, reverse=True)
        assert len(set(a.items) & set(b.items)) >= 3  # same ranker, near-identical standardisation
    assert not {"shoes0", "shoes1"} & set(retrieved[0].items)


def test_closed_gates_keep_the_blend_order(fitted):
    stage = fitted.reranker_
    saved = dict(stage.gates)
    try:
        stage.gates = dict.fromkeys(saved, False)
        gated = fitted.recommend(_requests(), k=5)
        fitted.reranker_ = None
        blend = fitted.recommend(_requests(), k=5)
    finally:
        fitted.reranker_ = stage
        stage.gates = saved
    assert [r.items for r in gated] == [r.items for r in blend]
    assert [r.scores for r in gated] == [r.scores for r in blend]


def test_request_kinds_from_features():
    from coldbrew.ranking.features import feature_names
    from coldbrew.ranking.stage import request_kinds

    col = {n: j for j, n in enumerate(feature_names(0))}
    x = np.zeros((5, len(col)), np.float32)
    x[:2, col["user_warmth"]] = np.log1p(10.0)  # warm user, mixed items
    x[1, col["is_new_item"]] = 1.0
    x[2:3, col["user_warmth"]] = np.log1p(1.0)  # one-event user
    x[3:, col["user_warmth"]] = np.log1p(10.0)  # warm user on a new-arrivals shelf
    x[3:, col["is_new_item"]] = 1.0
    assert request_kinds(x, np.array([2, 1, 2]), max_reveal=3).tolist() == ["warm_users", "new_users", "new_items"]


def test_kinds_not_listed_get_no_ranker():
    model = Recommender(_config("multitask", kinds="new_users")).fit(*_shop(), progress=False)
    report = model.fit_report_["ranker"]["kinds"]
    assert report["warm_users"] == {**report["warm_users"], "used": False, "reason": "not listed in ranker.kinds"}
    assert "warm_users" not in (model.reranker_.rankers if model.reranker_ else {})


@pytest.mark.parametrize("refit", [True, False])
def test_refit_trains_the_serving_ranker_on_both_periods_for_the_kept_epochs(refit):
    model = Recommender(_config("multitask", kinds="warm_users", epochs=8, patience=1, refit=refit)).fit(
        *_shop(), progress=False)
    row = model.fit_report_["ranker"]["kinds"]["warm_users"]
    served = model.reranker_.rankers["warm_users"]
    judged_epochs = len(model.training_curves_["ranker"]["epoch"])
    if refit:  # a fresh ranker, trained without early stopping for the epochs the judged one kept
        assert 1 <= row["refit_rounds"] <= judged_epochs
        assert served.rounds_ == row["refit_rounds"] == len(served.curves_["epoch"])
    else:
        assert "refit_rounds" not in row and len(served.curves_["epoch"]) == judged_epochs
    assert len(model.recommend(_requests(), k=5)[0].items) == 5


def test_more_periods_give_more_training_requests_and_too_many_are_refused():
    catalog, events = _shop()
    reports = {p: Recommender(_config("multitask", kinds="warm_users", periods=p)).fit(catalog, events, progress=False)
               .fit_report_["ranker"] for p in (2, 3)}
    assert reports[3]["groups_train"] > reports[2]["groups_train"]
    # the last period validates either way: same parts, same requests
    assert reports[3]["groups_validation"] == reports[2]["groups_validation"]
    crowded = FitConfig.from_dict({"encoder": {"name": "hashing"}, "blend": {"tune": False, "validation_share": 0.3},
                                   "ranker": {"periods": 4}})
    model = Recommender(crowded).fit(catalog, events, progress=False)
    assert model.reranker_ is None and "ranker.periods" in model.fit_report_["ranker"]["reason"]
