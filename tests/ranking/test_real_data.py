"""Real data: the ranker trains at fit time on MovieLens (ratings, genres) and round-trips."""

from __future__ import annotations

import pytest

from coldbrew.config import FitConfig
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.protocol import fit_catalog, temporal_segments
from coldbrew.evaluation.splits import temporal_split
from coldbrew.pipeline import Recommender
from coldbrew.storage.artifacts import load_model, save_model


@pytest.mark.slow
def test_multitask_ranker_on_movielens(shared_data, tmp_path):
    folder = shared_data / "movielens_latest_small"
    catalog, _ = load_catalog(folder / "items.csv.gz")
    events, _ = load_events(folder / "interactions.csv.gz")
    split = temporal_split(events, 0.8)
    seen, rest = fit_catalog(split, catalog)
    config = FitConfig.from_dict({"encoder": {"name": "hashing"}, "blend": {"tune": False},
                                  "ranker": {"kind": "multitask", "require_gain": False, "epochs": 10}})
    model = Recommender(config).fit(seen, split.train, progress=False)
    report = model.fit_report_["ranker"]
    assert report["purchase_label"] == "purchase"  # ratings >= 4, not a copy of the click label
    assert report["categories"] >= 2  # genres feed the category head
    assert report["kinds"]["new_users"]["used"] and report["kinds"]["new_users"]["groups_train"] >= 20
    assert set(model.reranker_.rankers) == {"new_users"}
    model.add_items(rest)
    requests = temporal_segments(split, catalog, reveal=1, max_users=20)["new_users"].requests
    before = model.recommend(requests, k=10)
    save_model(model, tmp_path / "m")
    after = load_model(tmp_path / "m").recommend(requests, k=10)
    assert [r.items for r in before] == [r.items for r in after]
    assert all(len(r.items) == 10 and all(r.reasons) for r in before)
