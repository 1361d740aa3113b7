"""The re-ranking stage on/off: blend order vs multi-task ranker vs LightGBM LambdaRank.

    python benchmarks/run_ranker.py                                   # UCI retail, temporal 0.8
    python benchmarks/run_ranker.py --split cold-item                 # random 20 % of items held out
    python benchmarks/run_ranker.py --data ../shared/data/movielens_latest_small
    python benchmarks/run_ranker.py --set candidates=50 --set text_codes=0   # other [ranker] keys

coldbrew is fitted once with its defaults (blend tuned on its own hold-out of the training
events); the ranker variants reuse that tuned configuration (``blend.tune = false``) so the
only difference between rows is the ``[ranker]`` section. Same split, same segments, same
metric code as ``benchmarks/run_quality.py``. ``ranker_fit_s`` is the time spent training the
ranker inside ``fit`` (hold-out parts + candidate features + training), from ``fit_report_``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from coldbrew.config import FitConfig
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.protocol import (
    cold_item_catalogs,
    cold_item_segment,
    evaluate,
    fit_catalog,
    markdown_table,
    temporal_segments,
)
from coldbrew.evaluation.splits import cold_item_split, temporal_split
from coldbrew.pipeline import Recommender

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=["temporal", "cold-item"], default="temporal")
    parser.add_argument("--quantile", type=float, default=0.8)
    parser.add_argument("--max-users", type=int, default=None)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--kinds", nargs="+", default=["none", "multitask", "lambdarank"],
                        choices=["none", "multitask", "lambdarank"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra [ranker] setting for the ranker rows (repeatable)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    if args.split == "cold-item":
        split = cold_item_split(events, catalog.item_ids, share=0.2, seed=0)
        seen, rest = cold_item_catalogs(split, catalog)
        segments = {"cold_items": cold_item_segment(split, rest.item_ids, max_users=args.max_users)}
    else:
        split = temporal_split(events, args.quantile)
        segments = temporal_segments(split, catalog, reveal=1, max_users=args.max_users)
        seen, rest = fit_catalog(split, catalog)
    print(f"{args.data.resolve().name} ({args.split}): {len(split.train):,} train events; users per segment: "
          + ", ".join(f"{n} {len(s):,}" for n, s in segments.items()), flush=True)
    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        extra[key.strip()] = _value(value.strip())

    results, timings, reports = {}, {}, {}
    tuned: FitConfig | None = None
    for kind in args.kinds:
        if tuned is None:
            config = FitConfig.from_dict({"ranker": {"kind": kind, **(extra if kind != "none" else {})}})
        else:
            ranker = FitConfig.from_dict({"ranker": {"kind": kind, **(extra if kind != "none" else {})}}).ranker
            config = replace(tuned, blend=replace(tuned.blend, tune=False), ranker=ranker)
        model = Recommender(config)
        t0 = time.perf_counter()
        model.fit(seen, split.train, progress=False)
        t1 = time.perf_counter()
        if tuned is None:
            tuned = replace(model.config, ranker=replace(model.config.ranker, kind="none"))
        model.add_items(rest)
        results[kind] = evaluate(model, segments, k=args.k)
        t2 = time.perf_counter()
        report = model.fit_report_.get("ranker", {})
        reports[kind] = report
        timings[kind] = {"time": {"fit_s": t1 - t0, "ranker_fit_s": report.get("seconds", 0.0), "recommend_s": t2 - t1}}
        ndcg = ", ".join(f"{name} {row[f'ndcg@{args.k}']:.4f}" for name, row in results[kind].items())
        print(f"  {kind}: NDCG@{args.k} {ndcg}; fit {t1 - t0:.1f}s, add_items+recommend {t2 - t1:.1f}s;"
              f" ranker: {json.dumps(report)}", flush=True)
    print()
    print(markdown_table(results, [f"ndcg@{args.k}", f"recall@{args.k}"]))
    print()
    print(markdown_table(timings, ["fit_s", "ranker_fit_s", "recommend_s"]))
    if args.json is not None:
        args.json.write_text(json.dumps({"results": results, "timings": timings, "ranker": reports}, indent=2))


if __name__ == "__main__":
    main()
