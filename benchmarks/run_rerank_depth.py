"""Recommend-time cost of the ranker's pool depth (``[ranker] candidates``), in one process.

    python benchmarks/run_rerank_depth.py [--data ../shared/data/uci_online_retail] [--requests 5000]

Fits the default model once on the full data, then times ``recommend`` (k = 20) for the same
warm-user requests (full history) with the fitted ranker re-ordering the blend's top 100,
200 and 300 items, and with no ranker (the blend's order). Medians of ``--repeats`` runs;
the ratios are against the blend in the same process. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from coldbrew.config import FitConfig
from coldbrew.data import load_catalog, load_events
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent, Request

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"


def _requests(events, n: int) -> list[Request]:
    users = np.unique(events.user_ids.astype(str))[:n]
    rows: dict[str, list[int]] = {}
    wanted = set(users.tolist())
    for p, u in enumerate(events.user_ids.astype(str)):
        if u in wanted:
            rows.setdefault(u, []).append(p)
    return [
        Request(f"r{u}", u, tuple(HistoryEvent(str(events.item_ids[p]), int(events.timestamps[p]), str(events.events[p]))
                                 for p in rows[u][-50:]))
        for u in users
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    catalog = load_catalog(args.data / "items.csv.gz")
    catalog = catalog[0] if isinstance(catalog, tuple) else catalog
    events = load_events(args.data / "interactions.csv.gz")
    events = events[0] if isinstance(events, tuple) else events
    model = Recommender(FitConfig()).fit(catalog, events, progress=False)
    requests = _requests(events, args.requests)
    stage = model.reranker_
    timings: dict[str, float] = {}
    for label, depth in (("blend only (no ranker)", None), ("ranker, top 100", 100), ("ranker, top 200", 200),
                         ("ranker, top 300 (default)", 300)):
        model.reranker_ = None if depth is None else stage
        if stage is not None and depth is not None:
            stage.config = replace(stage.config, candidates=depth)
        model.recommend(requests[:200], k=20)  # warm-up
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.recommend(requests, k=20)
            runs.append(time.perf_counter() - start)
        timings[label] = statistics.median(runs)
    base = timings["blend only (no ranker)"]
    print(f"| recommend {len(requests):,} warm requests, k=20 | seconds (median of {args.repeats}) | req/s | time / blend |")
    print("|---|---:|---:|---:|")
    for label, t in timings.items():
        print(f"| {label} | {t:.2f} | {len(requests) / t:,.0f} | {t / base:.2f}× |")


if __name__ == "__main__":
    main()
