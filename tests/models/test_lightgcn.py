"""LightGCN on tiny graphs: gradients, training, fold-in, persistence through the pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from coldbrew.config import BlendConfig, EncoderConfig, FitConfig, GraphConfig
from coldbrew.data import catalog_from_frame, events_from_frame
from coldbrew.errors import ConfigError, NotFittedError
from coldbrew.models.lightgcn import LightGCN, edge_weights, fold_in, normalised_adjacency
from coldbrew.requests import HistoryEvent, Request


def _blocks(users: int = 60, items: int = 30, seed: int = 0) -> sp.csr_matrix:
    """Three communities: users of block b use items of block b only."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((users, items), dtype=np.float32)
    per = items // 3
    for u in range(users):
        b = u % 3
        chosen = rng.choice(np.arange(b * per, (b + 1) * per), size=min(4, per), replace=False)
        dense[u, chosen] = 1.0
    return sp.csr_matrix(dense)


def test_normalised_adjacency_is_symmetric_with_degree_scaling():
    r = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0]], dtype=np.float32))
    a = normalised_adjacency(r).toarray()
    np.testing.assert_allclose(a, a.T)
    # user 0 (degree 2) - item 1 (degree 2): 1 / sqrt(2 * 2)
    assert a[0, 2 + 1] == pytest.approx(0.5)
    # user 1 (degree 1) - item 1 (degree 2)
    assert a[1, 2 + 1] == pytest.approx(1 / np.sqrt(2))
    assert a[:, 2 + 2].sum() == 0  # item 2 has no edge


def test_gradient_matches_finite_differences():
    r = _blocks(12, 12)
    model = LightGCN(GraphConfig(factors=3, layers=2, l2=0.05))
    adjacency = normalised_adjacency(r).astype(np.float64)
    rng = np.random.default_rng(1)
    base = rng.standard_normal((24, 3))
    users, pos, neg = np.array([0, 1, 4]), np.array([0, 3, 1]), np.array([5, 8, 7])
    _, grad = model.loss_and_gradient(adjacency, base, users, pos, neg, 12)
    eps = 1e-6
    for node, col in [(0, 0), (1, 2), (12 + 3, 1), (12 + 8, 0), (7, 1), (12 + 6, 2)]:
        up, down = base.copy(), base.copy()
        up[node, col] += eps
        down[node, col] -= eps
        numeric = (model.loss_and_gradient(adjacency, up, users, pos, neg, 12)[0]
                   - model.loss_and_gradient(adjacency, down, users, pos, neg, 12)[0]) / (2 * eps)
        assert grad[node, col] == pytest.approx(numeric, rel=1e-4, abs=1e-7)


def test_training_lowers_the_loss_and_separates_the_communities():
    r = _blocks()
    model = LightGCN(GraphConfig(factors=8, epochs=30, learning_rate=0.05, batch_size=64,
                                 patience=30, validation_users=0)).fit(r, progress=False)
    loss = model.curve_["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert model.curve_["epoch"] == list(range(1, 31))
    scores = model.user_embeddings_ @ model.item_embeddings_.T
    own = np.array([scores[u, (u % 3) * 10 : (u % 3 + 1) * 10].mean() for u in range(60)])
    other = np.array([np.delete(scores[u], np.arange((u % 3) * 10, (u % 3 + 1) * 10)).mean() for u in range(60)])
    assert (own > other).all()


def test_early_stopping_records_the_validation_curve_and_keeps_the_best_epoch():
    model = LightGCN(GraphConfig(factors=4, epochs=40, learning_rate=0.2, batch_size=32,
                                 patience=1, validation_users=30)).fit(_blocks(90, 30), progress=False)
    curve = model.curve_
    assert len(curve["epoch"]) == len(curve["loss"]) == len(curve["val_ndcg"])
    assert all(0.0 <= v <= 1.0 for v in curve["val_ndcg"])
    assert curve["val_ndcg"][model.best_epoch_ - 1] == max(curve["val_ndcg"])


def test_fold_in_of_a_graph_user_equals_propagation_without_its_own_layer_zero():
    r = _blocks(30, 15)
    cfg = GraphConfig(factors=4, layers=3, epochs=2, batch_size=32, validation_users=0)
    model = LightGCN(cfg).fit(r, progress=False)
    folded = model.fold_in_users(r[:5])
    expected = model.user_embeddings_[:5] - model.base_embeddings_[:5] / (cfg.layers + 1)
    np.testing.assert_allclose(folded, expected, rtol=1e-4, atol=1e-6)
    # the same holds for items, folded in from their users
    folded_items = model.fold_in_items(r.T.tocsr()[:4])
    expected_items = model.item_embeddings_[:4] - model.base_embeddings_[30:34] / (cfg.layers + 1)
    np.testing.assert_allclose(folded_items, expected_items, rtol=1e-4, atol=1e-6)


def test_weighted_fold_in_equals_propagation_and_without_user_embeddings_is_exact():
    r = _blocks(30, 15)
    strengths = r.copy()
    strengths.data = np.linspace(0.5, 6.0, strengths.nnz).astype(np.float32)
    cfg = GraphConfig(factors=4, layers=2, epochs=3, batch_size=32, validation_users=0,
                      weighted=True, user_embeddings=False)
    model = LightGCN(cfg).fit(strengths, progress=False)
    assert not model.base_embeddings_[:30].any()  # users never got a layer-0 embedding
    folded = model.fold_in_users(edge_weights(strengths[:6], weighted=True))
    np.testing.assert_allclose(folded, model.user_embeddings_[:6], rtol=1e-4, atol=1e-6)
    assert edge_weights(strengths[:1], weighted=False).data.tolist() == [1.0] * strengths[:1].nnz


def test_fold_in_of_empty_history_is_zero_and_columns_are_checked():
    sources = np.ones((3, 2), dtype=np.float32)
    out = fold_in(sources, sp.csr_matrix((2, 3), dtype=np.float32))
    assert out.shape == (2, 2) and not out.any()
    with pytest.raises(ValueError, match="columns"):
        fold_in(sources, sp.csr_matrix((1, 4), dtype=np.float32))
    with pytest.raises(NotFittedError):
        LightGCN().fold_in_users(sp.csr_matrix((1, 3)))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="graph.factors"):
        FitConfig.from_dict({"graph": {"factors": 0}})
    with pytest.raises(ConfigError, match="graph.learning_rate"):
        FitConfig.from_dict({"graph": {"learning_rate": 0}})
    with pytest.raises(ConfigError, match="graph: unknown key.*layrs"):
        FitConfig.from_dict({"graph": {"layrs": 2}})


TITLES = {"s1": "trail running shoes", "s2": "road running shoes", "s3": "running socks",
          "t1": "green tea leaves", "t2": "oolong tea", "t3": "tea pot"}


def _shop():
    rng = np.random.default_rng(0)
    groups = [["s1", "s2", "s3"], ["t1", "t2", "t3"]]
    rows = [(f"u{u}", groups[u % 2][int(rng.integers(0, 3))], 1_700_000_000 + u * 1000 + j, "purchase")
            for u in range(60) for j in range(4)]
    catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": list(TITLES), "title": list(TITLES.values())}))
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    return catalog, events


@pytest.fixture(scope="module")
def graph_model():
    from coldbrew.pipeline import Recommender

    catalog, events = _shop()
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False),
                       graph=GraphConfig(enabled=True, factors=8, epochs=5, batch_size=64, validation_users=10,
                                         combine="replace"))
    return Recommender(config).fit(catalog, events, progress=False)


def test_pipeline_uses_lightgcn_for_cf_and_records_its_curve(graph_model):
    assert graph_model.graph_ is not None
    np.testing.assert_allclose(graph_model.item_factors_, graph_model.graph_.item_embeddings_)
    curve = graph_model.training_curves_["lightgcn"]
    assert set(curve) == {"epoch", "loss", "val_ndcg"} and len(curve["epoch"]) >= 1
    rec = graph_model.recommend([Request("r", "x", (HistoryEvent("s1", 1_700_500_000, "purchase"),))], k=2)[0]
    assert set(rec.items) <= {"s2", "s3"}


def test_save_load_and_add_items_keep_the_graph(graph_model, tmp_path):
    from coldbrew.storage import load_model, save_model

    save_model(graph_model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    requests = [Request("1", "u1", (HistoryEvent("t1", 1_700_500_000, "purchase"),)), Request("2", "n", text="tea")]
    assert [r.items for r in loaded.recommend(requests, k=3)] == [r.items for r in graph_model.recommend(requests, k=3)]
    np.testing.assert_allclose(loaded.item_sources_, graph_model.item_sources_)
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["t4"], "title": ["jasmine green tea"]}))
    assert loaded.add_items(new) == 1
    assert loaded.item_sources_.shape == (7, 8) and loaded.item_factors_.shape == (7, 8)
    rec = loaded.recommend([Request("3", "u", (HistoryEvent("t4", 1_700_500_000, "view"),))], k=3)[0]
    assert len(rec.items) == 3 and "t4" not in rec.items


def test_concat_mode_puts_als_and_lightgcn_side_by_side_and_round_trips(tmp_path):
    from coldbrew.config import ALSConfig
    from coldbrew.pipeline import Recommender
    from coldbrew.storage import load_model, save_model

    catalog, events = _shop()
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False), als=ALSConfig(factors=6),
                       graph=GraphConfig(enabled=True, factors=4, epochs=3, batch_size=64, combine="concat"))
    model = Recommender(config).fit(catalog, events, progress=False)
    assert model.item_factors_.shape == (6, 10) and model.item_sources_.shape == (6, 4)
    np.testing.assert_allclose(model.item_factors_[:, :6], model.als_.item_factors_)
    requests = [Request("1", "u1", (HistoryEvent("t1", 1_700_500_000, "purchase"),))]
    users = model._user_factors(model.batch(requests).strengths)
    assert users.shape == (1, 10)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert [r.items for r in loaded.recommend(requests, k=3)] == [r.items for r in model.recommend(requests, k=3)]
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["t4"], "title": ["jasmine green tea"]}))
    assert loaded.add_items(new) == 1
    assert loaded.item_factors_.shape == (7, 10) and loaded.item_sources_.shape == (7, 4)
    assert len(loaded.recommend(requests, k=3)[0].items) == 3
    with pytest.raises(ConfigError, match="graph.combine"):
        GraphConfig(combine="sum")
