"""Retrieve-then-rank (ANN candidates) against exact scoring of every item, same model.

    python benchmarks/run_retrieval.py [--data ../shared/data/uci_online_retail] [--max-users 600]

One coldbrew model is fitted on the temporal split (quantile 0.8); the same model then
answers the warm-user and new-user segments twice: scoring all items (the exact reference)
and through the large-catalog path (``retrieval.dense_limit = 0``: ``per_source`` candidates
each from faiss HNSW over CF factors, faiss HNSW over text vectors, co-occurrence neighbours
and popular items). Prints NDCG@20, the overlap of the two top-20 lists and the throughput.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from coldbrew.config import RetrievalConfig
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.metrics import ndcg_at_k
from coldbrew.evaluation.protocol import fit_catalog, temporal_segments
from coldbrew.evaluation.splits import temporal_split
from coldbrew.pipeline import Recommender

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--max-users", type=int, default=600)
    parser.add_argument("--per-source", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--index", default="hnsw")
    args = parser.parse_args(argv)
    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    split = temporal_split(events, 0.8)
    seen, rest = fit_catalog(split, catalog)
    segments = temporal_segments(split, catalog, reveal=1, max_users=args.max_users, seed=0)
    model = Recommender().fit(seen, split.train, progress=False)
    model.add_items(rest)
    exact_config = model.config
    print("| segment | path | NDCG@20 | top-20 overlap with exact | requests/s |")
    print("|---|---|---:|---:|---:|")
    for name in ("warm_users", "new_users"):
        segment = segments[name]
        reference = None
        for per_source in [None, *args.per_source]:
            if per_source is None:
                model.config = exact_config
                label = "exact (all items)"
            else:
                model.config = replace(exact_config, retrieval=RetrievalConfig(dense_limit=0, per_source=per_source, index=args.index))
                label = f"{args.index} retrieval, {per_source} per source"
            started = time.perf_counter()
            recs = model.recommend(segment.requests, 20)
            rate = len(recs) / (time.perf_counter() - started)
            items = [r.items for r in recs]
            if reference is None:
                reference = items
            overlap = np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(items, reference)])
            print(f"| {name} | {label} | {ndcg_at_k(items, segment.relevant, 20):.4f} | {overlap:.3f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
