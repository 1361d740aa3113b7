"""LightGCN and data augmentation on/off through the segment protocol: NDCG@k per segment.

    python benchmarks/run_graph_augmentation.py --max-users 1000
    python benchmarks/run_graph_augmentation.py --split cold-item --max-users 1000
    python benchmarks/run_graph_augmentation.py --data ../shared/data/movielens_latest_small
    python benchmarks/run_graph_augmentation.py --variant 'graph=>{"graph": {"enabled": true}}'

Each variant is ``Recommender(FitConfig.from_dict(overrides))`` fitted on the same split
(temporal at ``--quantile``, or a random ``--cold-share`` of items held out) and scored with
:func:`coldbrew.evaluation.protocol.evaluate`. Default variants: ``default`` (FitConfig()),
``+graph`` (ALS + LightGCN), ``+graph-replace`` (LightGCN alone), ``+pseudo``, ``+ensemble``,
``+generative``. Also prints the fit time and, for
LightGCN, the epochs run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from coldbrew.config import FitConfig
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.protocol import (
    cold_item_catalogs,
    cold_item_segment,
    evaluate,
    fit_catalog,
    temporal_segments,
)
from coldbrew.evaluation.splits import cold_item_split, temporal_split

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "+graph": {"graph": {"enabled": True}},  # ALS and LightGCN side by side (combine = "concat")
    "+graph-replace": {"graph": {"enabled": True, "combine": "replace"}},
    "+pseudo": {"augmentation": {"pseudo_interactions": True}},
    "+ensemble": {"augmentation": {"ensemble": 3}},
    "+generative": {"augmentation": {"generative": True}},
}


def _variant(text: str) -> tuple[str, dict[str, Any]]:
    if "=>" in text:
        name, raw = text.split("=>", 1)
        return name, json.loads(raw)
    if text not in VARIANTS:
        raise argparse.ArgumentTypeError(f"unknown variant {text!r}; use NAME=>JSON or one of {list(VARIANTS)}")
    return text, VARIANTS[text]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=["temporal", "cold-item"], default="temporal")
    parser.add_argument("--quantile", type=float, default=0.8)
    parser.add_argument("--cold-share", type=float, default=0.2)
    parser.add_argument("--max-users", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--variant", type=_variant, action="append", default=None,
                        help="NAME (a built-in variant) or 'NAME=>JSON overrides'; repeatable")
    parser.add_argument("--base", type=json.loads, default={}, help="JSON overrides for every variant")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    variants = args.variant or list(VARIANTS.items())

    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    if args.split == "cold-item":
        split = cold_item_split(events, catalog.item_ids, share=args.cold_share, seed=args.seed)
        seen, rest = cold_item_catalogs(split, catalog)
        segments = {"cold_items": cold_item_segment(split, rest.item_ids, max_users=args.max_users, seed=args.seed)}
    else:
        split = temporal_split(events, args.quantile)
        seen, rest = fit_catalog(split, catalog)
        parts = temporal_segments(split, catalog, reveal=1, max_users=args.max_users, seed=args.seed)
        segments = {"warm_users": parts["warm_users"], "new_users@1": parts["new_users"], "new_items": parts["new_items"]}
    segments = {n: s for n, s in segments.items() if len(s)}
    print(f"{args.data.resolve().name} {args.split}: " + ", ".join(f"{n} {len(s)}" for n, s in segments.items()), flush=True)

    from coldbrew.pipeline import Recommender

    metric = f"ndcg@{args.k}"
    out: dict[str, Any] = {}
    for name, overrides in variants:
        merged = {**args.base}
        for section, values in overrides.items():
            merged[section] = {**merged.get(section, {}), **values}
        model = Recommender(FitConfig.from_dict(merged))
        t0 = time.perf_counter()
        model.fit(seen, split.train, progress=False)
        fit_s = time.perf_counter() - t0
        model.add_items(rest)
        results = evaluate(model, segments, k=args.k)
        curve = getattr(model, "training_curves_", {}).get("lightgcn")
        epochs = f", LightGCN epochs {len(curve['epoch'])}" if curve else ""
        out[name] = {"results": results, "fit_s": fit_s, "overrides": overrides}
        print(f"  {name}: fit {fit_s:.1f}s{epochs}  " + "  ".join(f"{s} {results[s][metric]:.4f}" for s in segments), flush=True)
    print()
    print("| variant | " + " | ".join(f"{s} {metric}" for s in segments) + " | fit s |")
    print("|---|" + "---:|" * (len(segments) + 1))
    for name, r in out.items():
        print(f"| {name} | " + " | ".join(f"{r['results'][s][metric]:.4f}" for s in segments) + f" | {r['fit_s']:.0f} |")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
