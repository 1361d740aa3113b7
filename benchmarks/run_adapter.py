"""The text adapter on/off through the segment protocol: NDCG@20 per segment, fit time, curves.

    python benchmarks/run_adapter.py                                   # UCI retail, temporal 0.8
    python benchmarks/run_adapter.py --split cold-item                 # random 20 % of items held out
    python benchmarks/run_adapter.py --data ../shared/data/movielens_latest_small
    python benchmarks/run_adapter.py --variants off on --set rank=64   # adapter overrides

Variants: ``off`` (defaults), ``on`` (``[adapter] enabled = true, adapt_bridge = true``),
``on-raw-bridge`` (adapter on, the text->CF bridge reads the encoder's own vectors: the
``adapt_bridge`` default). Everything else is the
default configuration, fit-time tuning included (on the training events only). The same
segments are scored for every variant; encoder outputs are shared through one cache.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from coldbrew.config import FitConfig
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.protocol import (
    cold_item_segment,
    evaluate,
    fit_catalog,
    markdown_table,
    temporal_segments,
)
from coldbrew.evaluation.splits import cold_item_split, temporal_split
from coldbrew.pipeline import Recommender
from coldbrew.text import EmbeddingCache

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"
VARIANTS = {
    "off": {},
    "on": {"enabled": True, "adapt_bridge": True},
    "on-raw-bridge": {"enabled": True, "adapt_bridge": False},
}


def _parse_set(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = json.loads(value) if value not in ("true", "false") else value == "true"
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with items.csv.gz and interactions.csv.gz")
    parser.add_argument("--split", choices=["temporal", "cold-item"], default="temporal")
    parser.add_argument("--quantile", type=float, default=0.8, help="temporal split quantile")
    parser.add_argument("--share", type=float, default=0.2, help="cold-item split: share of items held out")
    parser.add_argument("--max-users", type=int, default=None, help="random subset of users per segment")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=["off", "on"], choices=list(VARIANTS))
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides of the [adapter] section for the 'on' variants, e.g. rank=64")
    parser.add_argument("--json", type=Path, default=None, help="also write results and curves here")
    args = parser.parse_args(argv)

    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    if args.split == "temporal":
        split = temporal_split(events, args.quantile)
        segments = temporal_segments(split, catalog, reveal=1, max_users=args.max_users)
    else:
        split = cold_item_split(events, catalog.item_ids, share=args.share, seed=0)
        segments = {"cold_items": cold_item_segment(split, split.cold_items, max_users=args.max_users)}
    seen, rest = fit_catalog(split, catalog)
    print(f"{args.data.resolve().name} ({args.split}): {len(split.train):,} train events, {len(seen):,} items in"
          f" train, {len(rest):,} added after fit; users per segment: "
          + ", ".join(f"{n} {len(s):,}" for n, s in segments.items()), flush=True)

    cache = EmbeddingCache()
    overrides = _parse_set(args.set)
    results, timings, curves = {}, {}, {}
    for name in args.variants:
        section = dict(VARIANTS[name], **(overrides if VARIANTS[name] else {}))
        model = Recommender(FitConfig.from_dict({"adapter": section} if section else {}))
        model._cache = cache
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(seen, split.train, progress=False)
        t1, c1 = time.perf_counter(), time.process_time()
        model.add_items(rest)
        results[name] = evaluate(model, segments, k=args.k)
        # CPU seconds are the honest figure on a shared machine (wall time depends on the load).
        timings[name] = {"time": {"fit_s": t1 - t0, "fit_cpu_s": c1 - c0}}
        curve = getattr(model, "training_curves_", {}).get("adapter")
        if curve:
            curves[name] = curve
            print(f"  {name}: fit {t1 - t0:.1f}s; adapter val NDCG@20 by epoch "
                  + " ".join(f"{v:.4f}" for v in curve["val_ndcg"])
                  + f"; kept epoch {model.adapter_.best_epoch_}", flush=True)
        else:
            print(f"  {name}: fit {t1 - t0:.1f}s", flush=True)
        print("    " + ", ".join(f"{seg} NDCG@{args.k} {row[f'ndcg@{args.k}']:.4f}" for seg, row in results[name].items())
              + f"; fit CPU {c1 - c0:.0f}s", flush=True)
    print()
    print(markdown_table(results, [f"ndcg@{args.k}", f"recall@{args.k}"]))
    print()
    print(markdown_table(timings, ["fit_s", "fit_cpu_s"]))
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results, "timings": timings, "curves": curves,
                                         "overrides": overrides}, indent=1))


if __name__ == "__main__":
    main()
