"""End to end on real data: fit -> add-items -> recommend through the CLI on UCI Online Retail.

A global temporal split of the last six months at the 80 % timestamp quantile: coldbrew
must beat popularity on warm users, new users (history = their first event) and new items
(candidates = the products added after fit), with the same metric code as the benchmarks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coldbrew.cli import main
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.baselines import PopularityRecommender
from coldbrew.evaluation.metrics import ndcg_at_k, recall_at_k
from coldbrew.evaluation.protocol import fit_catalog, temporal_segments
from coldbrew.evaluation.splits import temporal_split

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"


def _require_data() -> None:
    if not (DATA / "interactions.csv.gz").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{DATA} is missing: real-data tests must run under CI")
        pytest.skip(f"{DATA} is absent (real-data test)")


def _write_catalog(catalog, path: Path) -> None:
    catalog.to_frame()[["item_id", "title", "price"]].to_csv(path, index=False)


@pytest.mark.slow
def test_fit_add_items_recommend_beats_popularity_on_every_segment(tmp_path):
    _require_data()
    catalog, _ = load_catalog(DATA / "items.csv.gz")
    events, _ = load_events(DATA / "interactions.csv.gz")
    events = events.take(events.timestamps >= events.timestamps.max() - 183 * 86_400)
    split = temporal_split(events, quantile=0.8)
    seen, new = fit_catalog(split, catalog)
    segments = temporal_segments(split, catalog, reveal=1, max_users=400, seed=1)

    train = split.train
    pd.DataFrame({"user_id": train.user_ids, "item_id": train.item_ids, "timestamp": train.timestamps,
                  "event_type": train.events, "quantity": train.values}).to_csv(tmp_path / "events.csv.gz", index=False)
    _write_catalog(seen, tmp_path / "items.csv")
    _write_catalog(new, tmp_path / "new_items.csv")
    model = tmp_path / "model"
    assert main(["fit", "--catalog", str(tmp_path / "items.csv"), "--events", str(tmp_path / "events.csv.gz"),
                 "--out", str(model)]) == 0
    assert main(["add-items", "--model", str(model), "--catalog", str(tmp_path / "new_items.csv")]) == 0

    popularity = PopularityRecommender().fit(seen, train)
    popularity.add_items(new)
    for name, segment in segments.items():
        assert len(segment.requests) >= 50, name
        req_path = tmp_path / f"{name}.jsonl"
        with open(req_path, "w") as handle:
            for req in segment.requests:
                handle.write(json.dumps({
                    "request_id": req.request_id, "user_id": req.user_id,
                    "history": [{"item_id": h.item_id, "timestamp": h.timestamp, "event": h.event,
                                 "value": None if h.value is None or np.isnan(h.value) else h.value}
                                for h in req.history],
                    "candidates": list(req.candidates) if req.candidates is not None else None,
                }) + "\n")
        out = tmp_path / f"{name}.recs.jsonl"
        assert main(["recommend", "--model", str(model), "--requests", str(req_path), "--k", "20", "--out", str(out)]) == 0
        recs = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["request_id"] for r in recs] == [r.request_id for r in segment.requests]
        ours = [r["items"] for r in recs]
        base = [r.items for r in popularity.recommend(segment.requests, 20)]
        if name == "new_items":
            new_ids = set(new.item_ids)
            assert all(set(items) <= new_ids for items in ours)
        ndcg_ours, ndcg_base = ndcg_at_k(ours, segment.relevant, 20), ndcg_at_k(base, segment.relevant, 20)
        assert ndcg_ours > 1.2 * ndcg_base, (name, ndcg_ours, ndcg_base)
        assert recall_at_k(ours, segment.relevant, 20) > recall_at_k(base, segment.relevant, 20), name
