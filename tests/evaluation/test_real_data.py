"""Real data: collaborative baselines must beat popularity for warm users on UCI retail."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.baselines import (
    ALSRecommender,
    ItemKNNRecommender,
    PopularityRecommender,
)
from coldbrew.evaluation.protocol import evaluate, fit_catalog, temporal_segments
from coldbrew.evaluation.splits import temporal_split

SIX_MONTHS = 183 * 86_400


@pytest.mark.slow
def test_cf_baselines_beat_popularity_on_warm_users(shared_data: Path) -> None:
    folder = shared_data / "uci_online_retail"
    catalog, _ = load_catalog(folder / "items.csv.gz")
    events, _ = load_events(folder / "interactions.csv.gz")
    recent = events.take(events.timestamps >= events.timestamps.max() - SIX_MONTHS)
    split = temporal_split(recent, 0.8)
    segments = temporal_segments(split, catalog, max_users=800, seed=0)
    warm = {"warm_users": segments["warm_users"]}
    assert len(warm["warm_users"]) == 800
    seen, rest = fit_catalog(split, catalog)

    ndcg = {}
    for name, model in {
        "popularity": PopularityRecommender(),
        "itemknn": ItemKNNRecommender(),
        "als": ALSRecommender(iterations=10),
    }.items():
        model.fit(seen, split.train)
        model.add_items(rest)
        ndcg[name] = evaluate(model, warm, k=20)["warm_users"]["ndcg@20"]

    assert 0.0 < ndcg["popularity"] < 0.2, ndcg
    assert ndcg["itemknn"] > 1.4 * ndcg["popularity"], ndcg
    assert ndcg["als"] > 1.4 * ndcg["popularity"], ndcg
