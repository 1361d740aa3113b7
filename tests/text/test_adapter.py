"""The text adapter: gradients, pairs, training on a task where the raw space misleads, pipeline."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from coldbrew.config import AdapterConfig, BlendConfig, EncoderConfig, FitConfig, GraphConfig
from coldbrew.data import catalog_from_frame, events_from_frame
from coldbrew.errors import ConfigError, NotFittedError
from coldbrew.parts import bridge_inputs
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent, Request
from coldbrew.storage.artifacts import load_model, save_model
from coldbrew.text.adapter import (
    TextAdapter,
    adapt,
    contrastive_loss,
    next_item_metrics,
    next_item_pairs,
    train_adapter,
)

DAY = 86_400


# ---------------------------------------------------------------------- gradients
@pytest.mark.parametrize("with_log_q", [False, True])
def test_gradients_match_finite_differences(with_log_q: bool) -> None:
    rng = np.random.default_rng(0)
    d, r, n_items = 7, 3, 9
    x = rng.standard_normal((n_items, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[4] = 0.0  # an item without text
    a, b = rng.standard_normal((d, r)) * 0.4, rng.standard_normal((r, d)) * 0.4
    dense = rng.random((6, n_items)) * (rng.random((6, n_items)) < 0.4)
    dense[np.arange(6), np.arange(6)] = 1.0  # every pair has some history
    history = sp.csr_matrix(dense)
    targets = np.array([1, 2, 3, 2, 8, 4])  # a repeated target: no false negative
    log_q = np.log(rng.random(n_items) + 0.1) if with_log_q else None
    loss, grad_a, grad_b = contrastive_loss(a, b, x, history, targets, 0.3, log_q)
    assert np.isfinite(loss) and loss > 0
    eps = 1e-6
    for param, grad in ((a, grad_a), (b, grad_b)):
        numeric = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            old = param[idx]
            param[idx] = old + eps
            up = contrastive_loss(a, b, x, history, targets, 0.3, log_q)[0]
            param[idx] = old - eps
            down = contrastive_loss(a, b, x, history, targets, 0.3, log_q)[0]
            param[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, atol=1e-7, rtol=1e-5)


def test_adapt_is_identity_at_init_and_keeps_zero_rows() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    x[2] = 0.0
    y = adapt(x, rng.standard_normal((6, 2)).astype(np.float32), np.zeros((2, 6), np.float32))
    expected = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert not y[2].any()


# ---------------------------------------------------------------------- pairs
def test_next_item_pairs_by_hand() -> None:
    # user 0: items 3, 1, 3 (a repeat), 2 ; user 1: item 5 only ; rows given out of order.
    users = np.array([0, 1, 0, 0, 0])
    items = np.array([1, 5, 3, 2, 3])
    times = np.array([1, 0, 0, 4, 2]) * DAY
    pairs = next_item_pairs(users, items, times, 6, history_length=2, half_life_days=1.0)
    # pairs: 3 -> 1 (t=1), [1, 3(rep.) dropped], [3, 1] -> 2 at t=4
    np.testing.assert_array_equal(pairs.targets, [1, 2])
    np.testing.assert_array_equal(pairs.timestamps, [DAY, 4 * DAY])
    dense = pairs.history.toarray()
    np.testing.assert_allclose(dense[0], [0, 0, 0, 0.5, 0, 0], atol=1e-6)  # item 3, one day old
    np.testing.assert_allclose(dense[1], [0, 0.125, 0, 0.25, 0, 0], atol=1e-6)  # 3 days, 2 days old
    with pytest.raises(ValueError, match="same length"):
        next_item_pairs(users, items[:2], times, 6)


def test_max_pairs_keeps_a_time_sorted_subset() -> None:
    rng = np.random.default_rng(2)
    users = rng.integers(0, 20, 400)
    pairs = next_item_pairs(users, rng.integers(0, 50, 400), rng.integers(0, 10**6, 400), 50, max_pairs=30)
    assert len(pairs) == 30
    assert np.all(np.diff(pairs.timestamps) >= 0)


# ---------------------------------------------------------------------- training
def _misleading_shop(seed: int = 0, aligned: bool = False):
    """Items described alike are bought apart: text clusters cut across behaviour groups.

    Item i belongs to behaviour group i % 4 and text cluster i // 20; its text vector is a
    strong shared cluster direction plus a weak item-specific part. Users buy within one
    behaviour group, so raw text similarity points to the wrong items. ``aligned``: the text
    clusters are the behaviour groups instead (the raw space is already right).
    """
    rng = np.random.default_rng(seed)
    n_items, d = 40, 64
    clusters = rng.standard_normal((4, d))
    cluster = np.arange(n_items) % 4 if aligned else np.arange(n_items) // 20
    own = rng.standard_normal((n_items, d))
    x = 3.0 * clusters[cluster] / np.sqrt(d) + own / np.sqrt(d)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    users, items, times = [], [], []
    for u in range(600):
        group = np.flatnonzero(np.arange(n_items) % 4 == u % 4)
        for j, item in enumerate(rng.choice(group, size=5, replace=False)):
            users.append(u)
            items.append(item)
            times.append(u * 600 + j)
    return x, np.array(users), np.array(items), np.array(times) * 60


def test_training_lowers_the_loss_and_fixes_a_misleading_space() -> None:
    x, users, items, times = _misleading_shop()
    config = AdapterConfig(enabled=True, rank=8, epochs=15, batch_size=64, learning_rate=0.01,
                           temperature=0.1, max_pairs=2000, patience=15)
    adapter = train_adapter(config, x, users, items, times, progress=False)
    assert adapter is not None
    curve = adapter.curve_
    assert set(curve) >= {"epoch", "loss", "val_recall", "val_ndcg"}
    assert curve["epoch"][0] == 0 and len(curve["loss"]) == len(curve["val_ndcg"])
    assert curve["loss"][-1] < 0.8 * curve["loss"][0]
    assert adapter.best_epoch_ > 0
    assert max(curve["val_ndcg"]) > curve["val_ndcg"][0] + 0.1
    # Retrieval in the adapted space: the nearest items are now the same behaviour group.
    adapted = adapter.transform(x)
    sims = adapted @ adapted.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :5]
    raw = x @ x.T
    np.fill_diagonal(raw, -np.inf)
    raw_top = np.argsort(-raw, axis=1)[:, :5]
    same = (top % 4 == (np.arange(40) % 4)[:, None]).mean()
    raw_same = (raw_top % 4 == (np.arange(40) % 4)[:, None]).mean()
    assert same > raw_same + 0.3


def test_no_epoch_better_than_the_raw_space_keeps_the_identity() -> None:
    x, users, items, times = _misleading_shop(aligned=True)
    raw_recall, raw_ndcg = next_item_metrics(x, next_item_pairs(users, items, times, 40))
    assert 0.0 < raw_ndcg <= raw_recall <= 1.0
    # The raw space is already right; a wild learning rate can only scramble it.
    config = AdapterConfig(enabled=True, rank=4, epochs=2, batch_size=64, learning_rate=10.0,
                           max_pairs=1000, patience=1)
    adapter = train_adapter(config, x, users, items, times, progress=False)
    assert adapter is not None
    assert adapter.best_epoch_ == 0 and max(adapter.curve_["val_ndcg"][1:]) < adapter.curve_["val_ndcg"][0]
    np.testing.assert_array_equal(adapter.b_, 0.0)
    np.testing.assert_allclose(adapter.transform(x), x, atol=1e-6)


def test_too_few_pairs_give_no_adapter() -> None:
    x, users, items, times = _misleading_shop()
    assert train_adapter(AdapterConfig(enabled=True), x, users[:50], items[:50], times[:50]) is None


def test_unfitted_and_malformed_adapters_fail_clearly() -> None:
    with pytest.raises(NotFittedError):
        TextAdapter().transform(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="shapes"):
        TextAdapter.from_arrays(AdapterConfig(), np.zeros((4, 2)), np.zeros((3, 4)))
    adapter = TextAdapter.from_arrays(AdapterConfig(), np.zeros((4, 2)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        adapter.transform(np.zeros((1, 5), np.float32))


@pytest.mark.parametrize("key, value", [
    ("rank", 0), ("epochs", 0), ("batch_size", 1), ("temperature", 0.0), ("learning_rate", -1.0),
    ("validation_share", 1.0), ("weight_decay", -0.1), ("patience", -1), ("max_pairs", 0),
])
def test_config_errors_name_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"adapter.{key}"):
        FitConfig.from_dict({"adapter": {key: value}})


def test_config_section_round_trips() -> None:
    config = FitConfig.from_dict({"adapter": {"enabled": True, "rank": 16, "adapt_bridge": True}})
    assert config.adapter.enabled and config.adapter.rank == 16 and config.adapter.adapt_bridge
    assert FitConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config  # as in a manifest
    assert not FitConfig().adapter.enabled  # off until the ablation says otherwise
    with pytest.raises(ConfigError, match="unknown key"):
        FitConfig.from_dict({"adapter": {"rnak": 16}})


# ---------------------------------------------------------------------- pipeline
TITLES = {
    "s1": "trail running shoes", "s2": "road running shoes", "s3": "running socks",
    "t1": "green tea leaves", "t2": "oolong tea", "t3": "tea pot",
    "w1": "red wine", "w2": "white wine", "w3": "wine glasses",
}


def _shop(n_users: int = 150, seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = [["s1", "t2", "w3"], ["t1", "w2", "s3"], ["w1", "s2", "t3"]]  # bought across texts
    rows = []
    for u in range(n_users):
        for j, item in enumerate(rng.permutation(groups[u % 3])):
            rows.append((f"u{u}", item, 1_700_000_000 + u * 1000 + j, "purchase"))
    catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": list(TITLES), "title": list(TITLES.values())}))
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    return catalog, events


def _config(**adapter) -> FitConfig:
    section = dict(enabled=True, rank=4, epochs=3, batch_size=16, patience=3, **adapter)
    return FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False),
                     adapter=AdapterConfig(**section))


@pytest.fixture(scope="module")
def fitted() -> Recommender:
    return Recommender(_config()).fit(*_shop(), progress=False)


def test_fit_trains_the_adapter_and_records_its_curve(fitted: Recommender) -> None:
    assert fitted.adapter_ is not None
    curve = fitted.training_curves_["adapter"]
    assert curve["epoch"][0] == 0 and len(curve["val_ndcg"]) == len(curve["epoch"]) >= 2
    raw = fitted.encode(fitted.catalog_.texts())
    np.testing.assert_allclose(fitted.text_vectors_, fitted.adapter_.transform(raw), atol=1e-6)
    # The embedding cache still holds the encoder's own vectors.
    assert fitted._cache.encoder_name == fitted.encoder.name


def test_adapter_off_leaves_the_encoder_space() -> None:
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))
    model = Recommender(config).fit(*_shop(), progress=False)
    assert model.adapter_ is None
    np.testing.assert_array_equal(model.text_vectors_, model.encode(model.catalog_.texts()))
    assert "adapter" not in model.training_curves_


def test_request_text_goes_through_the_adapter(fitted: Recommender, monkeypatch) -> None:
    seen = []
    original = fitted.adapter_.transform
    monkeypatch.setattr(fitted.adapter_, "transform", lambda v: seen.append(v.shape) or original(v))
    rec = fitted.recommend([Request("t", "x", text="red wine")], k=3)[0]
    assert len(rec.items) == 3 and seen == [(1, fitted.text_vectors_.shape[1])]


def test_save_load_and_add_items_keep_the_adapter(fitted: Recommender, tmp_path) -> None:
    requests = [Request("a", "u0", (HistoryEvent("s1", 1_700_500_000, "purchase"),)),
                Request("b", "x", text="oolong tea")]
    save_model(fitted, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.adapter_.a_, fitted.adapter_.a_)
    np.testing.assert_array_equal(loaded.adapter_.b_, fitted.adapter_.b_)
    assert [r.items for r in loaded.recommend(requests, k=4)] == [r.items for r in fitted.recommend(requests, k=4)]
    assert loaded.training_curves_["adapter"]["val_ndcg"] == pytest.approx(fitted.training_curves_["adapter"]["val_ndcg"])
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["t9"], "title": ["jasmine green tea"]}))
    assert loaded.add_items(new) == 1
    raw = loaded.encode(["jasmine green tea"])
    np.testing.assert_allclose(loaded.text_vectors_[-1], loaded.adapter_.transform(raw)[0], atol=1e-6)
    assert np.isfinite(loaded.item_factors_[-1]).all() and loaded.item_factors_[-1].any()
    rec = loaded.recommend([Request("c", "u1", (HistoryEvent("t1", 1_700_500_000, "purchase"),), candidates=("t9", "s1"))], k=2)[0]
    assert set(rec.items) == {"t9", "s1"}


@pytest.mark.parametrize("adapt_bridge", [False, True])
def test_adapt_bridge_chooses_the_vectors_the_bridge_reads(adapt_bridge: bool) -> None:
    # ALS alone, so the item factors are exactly the bridge's CF columns (no LightGCN beside them).
    config = replace(_config(adapt_bridge=adapt_bridge), graph=GraphConfig(enabled=False))
    model = Recommender(config).fit(*_shop(), progress=False)
    raw = model.encode(model.catalog_.texts())
    read = model.adapter_.transform(raw) if adapt_bridge else raw
    warm = np.flatnonzero(model.item_warm_)
    np.testing.assert_allclose(model.bridge_.train_vectors_[:, : raw.shape[1]], read[warm] / np.sqrt(2.0), atol=1e-6)
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["w9"], "title": ["sparkling wine"]}))
    model.add_items(new)
    new_raw = model.encode(["sparkling wine"])
    new_read = model.adapter_.transform(new_raw) if adapt_bridge else new_raw
    expected = model.bridge_.predict(bridge_inputs(model, np.array([len(raw)]), new_read))
    np.testing.assert_allclose(model.item_factors_[-1], expected[0, :-1], atol=1e-5)


def test_fit_keeps_the_adapter_that_tuning_trained(monkeypatch) -> None:
    from coldbrew.models import tuning

    catalog, events = _shop()
    config = FitConfig(encoder=EncoderConfig(name="hashing"), adapter=AdapterConfig(enabled=True, rank=2))
    d = Recommender(config).encode(catalog.texts()).shape[1]
    rng = np.random.default_rng(3)
    tuned = TextAdapter.from_arrays(config.adapter, rng.standard_normal((d, 2)), rng.standard_normal((2, d)))
    tuned.curve_ = {"epoch": [0, 1], "loss": [2.0, 1.0], "val_recall": [0.1, 0.2], "val_ndcg": [0.05, 0.1]}
    monkeypatch.setattr(tuning, "tune", lambda model, *a: tuning.TuningResult(model.config, {}, adapter=tuned))

    def no_training(*args, **kwargs):
        raise AssertionError("the final fit must not train a second adapter")

    monkeypatch.setattr("coldbrew.text.adapter.train_adapter", no_training)
    model = Recommender(config).fit(catalog, events, progress=False)
    assert model.adapter_ is tuned
    assert model.training_curves_["adapter"] == tuned.curve_
    np.testing.assert_allclose(model.text_vectors_, tuned.transform(model.encode(catalog.texts())), atol=1e-6)
