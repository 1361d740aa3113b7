"""Augmentation on hand-checkable matrices: pseudo rows, Markov walks, aligned ensembles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from coldbrew.config import ALSConfig, AugmentationConfig, BlendConfig, EncoderConfig, FitConfig
from coldbrew.data import catalog_from_frame, events_from_frame
from coldbrew.errors import ConfigError
from coldbrew.models.augmentation import (
    align_factors,
    bootstrap_als,
    generative_interactions,
    markov_transitions,
    pseudo_interactions,
    pseudo_user_rows,
    text_neighbors,
)
from coldbrew.requests import HistoryEvent, Request


def _unit(*rows: list[float]) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_text_neighbors_are_sorted_and_skip_the_item_itself():
    pool = _unit([1, 0], [0.9, 0.1], [0, 1])
    idx, sims = text_neighbors(pool[:1], pool, 2, exclude_self=np.array([0]))
    assert idx.tolist() == [[1, 2]]
    assert sims[0, 0] == pytest.approx(float(pool[0] @ pool[1]))
    assert sims[0, 1] == 0.0


def test_pseudo_rows_give_users_of_text_neighbours_a_weak_weighted_interaction():
    # items: 0 "red wine" (users 0, 1), 1 "white wine" (user 2), 2 "tea" (user 3), 3 new "rose wine"
    interactions = sp.csr_matrix(np.array([
        [1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
    ], dtype=np.float32))
    text = _unit([1, 0, 0], [0.8, 0.6, 0], [0, 0, 1], [0.96, 0.28, 0])
    rows = pseudo_user_rows(interactions, text, np.array([3]), np.array([0, 1, 2]), neighbors=2, weight=0.5)
    dense = rows.toarray()
    s0, s1 = float(text[3] @ text[0]), float(text[3] @ text[1])
    np.testing.assert_allclose(dense, [[0.5 * s0, 0.5 * s0, 0.5 * s1, 0.0]], rtol=1e-5)


def test_a_user_of_two_neighbours_keeps_the_larger_weight():
    interactions = sp.csr_matrix(np.array([[1, 1, 0]], dtype=np.float32))
    text = _unit([1, 0], [0.6, 0.8], [0.8, 0.6])
    rows = pseudo_user_rows(interactions, text, np.array([2]), np.array([0, 1]), neighbors=2, weight=1.0)
    assert rows.nnz == 1
    assert rows[0, 0] == pytest.approx(max(float(text[2] @ text[0]), float(text[2] @ text[1])))


def test_pseudo_interactions_touch_only_sparse_items_and_never_lower_observed_entries():
    interactions = sp.csr_matrix(np.array([
        [4, 0, 0], [2, 0, 2], [3, 0, 0],
    ], dtype=np.float32))
    text = _unit([1, 0], [0, 1], [0.9, 0.1])
    out = pseudo_interactions(interactions, text, max_events=1, neighbors=1, weight=0.5).toarray()
    pseudo = 0.5 * float(text[2] @ text[0]) * 2.5  # 2.5 = median observed strength
    # item 2 (one user) borrows item 0's users; user 1's observed 2 is not lowered
    np.testing.assert_allclose(out[:, 2], [pseudo, 2.0, pseudo], rtol=1e-5)
    np.testing.assert_allclose(out[:, 0], [4, 2, 3])
    # item 1 (no users) has only a text-orthogonal warm neighbour: nothing to borrow
    assert not out[:, 1].any()


def test_markov_transitions_count_consecutive_distinct_items_per_user():
    users = np.array([0, 0, 0, 1, 1, 0])
    items = np.array([0, 1, 1, 0, 2, 2])
    times = np.array([1, 2, 3, 1, 2, 4])
    t = markov_transitions(users, items, times, 3).toarray()
    # user 0: 0 -> 1 (-> 1 repeat ignored) -> 2; user 1: 0 -> 2
    np.testing.assert_allclose(t, [[0, 0.5, 0.5], [0, 0, 1], [0, 0, 0]])


def test_generative_walks_add_synthetic_items_only_for_short_histories():
    interactions = sp.csr_matrix(np.array([
        [2, 0, 0, 0], [2, 2, 2, 0],
    ], dtype=np.float32))
    transitions = sp.csr_matrix(np.array([
        [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0],
    ], dtype=np.float32))
    out = generative_interactions(interactions, transitions, np.array([0, 2]), max_history=1,
                                  n_events=3, weight=0.25).toarray()
    # user 0 walks 0 -> 1 -> 3 (then stops: item 3 has no moves); user 1 has 3 items: untouched
    np.testing.assert_allclose(out, [[2, 0.5, 0, 0.5], [2, 2, 2, 0]])


def test_alignment_undoes_a_rotation():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((50, 4)).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    np.testing.assert_allclose(align_factors(reference, reference @ q.astype(np.float32)), reference, atol=1e-4)


def test_bootstrap_ensemble_gives_a_usable_als_model():
    rng = np.random.default_rng(0)
    dense = (rng.random((80, 20)) < 0.2).astype(np.float32) * 3
    conf = sp.csr_matrix(dense)
    model = bootstrap_als(conf, ALSConfig(factors=4, iterations=3), members=3, progress=False)
    assert model.item_factors_.shape == (20, 4) and model.user_factors_.shape == (80, 4)
    assert np.isfinite(model.item_factors_).all()
    assert model.fold_in(conf[:2]).shape == (2, 4)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="augmentation.pseudo_weight"):
        FitConfig.from_dict({"augmentation": {"pseudo_weight": 2.0}})
    with pytest.raises(ConfigError, match="augmentation.ensemble"):
        FitConfig.from_dict({"augmentation": {"ensemble": -1}})


def test_pipeline_with_every_augmentation_fits_saves_and_adds_items(tmp_path):
    from coldbrew.pipeline import Recommender
    from coldbrew.storage import load_model, save_model

    titles = {"s1": "trail running shoes", "s2": "road running shoes", "s3": "running socks",
              "t1": "green tea leaves", "t2": "oolong tea", "t3": "tea pot", "t9": "white tea rare"}
    rng = np.random.default_rng(0)
    groups = [["s1", "s2", "s3"], ["t1", "t2", "t3"]]
    rows = [(f"u{u}", groups[u % 2][int(rng.integers(0, 3))], 1_700_000_000 + u * 1000 + j, "purchase")
            for u in range(40) for j in range(3)] + [("u99", "t9", 1_700_000_000, "view")]
    catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": list(titles), "title": list(titles.values())}))
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    config = FitConfig(
        encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False),
        als=ALSConfig(factors=4, iterations=3),
        augmentation=AugmentationConfig(pseudo_interactions=True, ensemble=2, generative=True),
    )
    model = Recommender(config).fit(catalog, events, progress=False)
    assert model.fit_report_["augmented_entries"] > 0
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["t4"], "title": ["jasmine green tea"]}))
    for m in (model, loaded):
        assert m.add_items(new) == 1
    np.testing.assert_allclose(loaded.item_factors_, model.item_factors_, rtol=1e-5, atol=1e-6)
    req = [Request("1", "x", (HistoryEvent("t1", 1_700_500_000, "purchase"),), candidates=("t4", "s1"))]
    assert loaded.recommend(req, k=2)[0].items == model.recommend(req, k=2)[0].items


def test_text_neighbors_large_pool_goes_through_ivf(monkeypatch):
    from coldbrew.models import augmentation as aug

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 32)).astype(np.float32)
    pool = centres[rng.integers(0, 40, 3000)] + 0.2 * rng.normal(size=(3000, 32)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    queries = pool[:300]
    exact_ids, exact_sims = aug.text_neighbors(queries, pool, 5, exclude_self=np.arange(300))
    monkeypatch.setattr(aug, "ANN_FROM", 1000)
    monkeypatch.setattr(aug, "ANN_MIN_QUERIES", 100)
    ids, sims = aug.text_neighbors(queries, pool, 5, exclude_self=np.arange(300))
    assert ids.shape == (300, 5) and sims.dtype == np.float32
    assert not (ids == np.arange(300)[:, None]).any()  # itself excluded
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first
    np.testing.assert_allclose(sims, np.einsum("nd,nkd->nk", queries, pool[ids]), rtol=1e-5, atol=1e-6)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, exact_ids)])
    assert recall > 0.9
