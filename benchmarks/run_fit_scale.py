"""Fit at catalog scale: wall seconds per stage of ``Recommender.fit`` on a synthetic shop.

    /usr/bin/time -v .venv/bin/python benchmarks/run_fit_scale.py --items 1000000 --events 1000000

Uses the light configuration of ``run_retrieval_scale.py`` (hashing encoder, ALS 64 factors,
no tuning/graph/ranker) and times the main stages by wrapping them (encode, ALS,
co-occurrence, bridge fit/predict); then times ``add_items`` of 1,000 products and one
shelf-style ``recommend``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_retrieval_scale import light_config  # noqa: E402
from synthetic_shop import make_catalog, make_events  # noqa: E402

import coldbrew.pipeline as pipeline  # noqa: E402
from coldbrew.data import catalog_from_frame, events_from_frame  # noqa: E402
from coldbrew.models.als import ALSModel  # noqa: E402
from coldbrew.models.bridge import TextToCFBridge  # noqa: E402
from coldbrew.requests import HistoryEvent, Request  # noqa: E402

STAGES: dict[str, float] = {}


def _timed(owner, name: str, label: str) -> None:
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            STAGES[label] = STAGES.get(label, 0.0) + time.perf_counter() - t0

    setattr(owner, name, wrapper)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-extra", action="store_true", help="skip add_items / recommend")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    catalog, _ = catalog_from_frame(make_catalog(args.items, args.seed))
    events, _ = events_from_frame(make_events(make_catalog(args.items, args.seed), args.events, seed=args.seed))
    shop = time.perf_counter() - t0
    _timed(pipeline.Recommender, "encode", "encode")
    _timed(pipeline, "cooccurrence_neighbors", "cooccurrence")
    _timed(ALSModel, "fit", "als")
    _timed(TextToCFBridge, "fit", "bridge_fit")
    _timed(TextToCFBridge, "predict", "bridge_predict")
    _timed(pipeline.Recommender, "_refresh", "refresh")
    t0 = time.perf_counter()
    model = pipeline.Recommender(light_config()).fit(catalog, events, progress=False)
    fit = time.perf_counter() - t0
    out = {"items": args.items, "events": args.events, "shop_seconds": round(shop, 1),
           "fit_seconds": round(fit, 1), "warm_items": int(model.item_warm_.sum()),
           "stages": {k: round(v, 2) for k, v in STAGES.items()},
           "cooccurrence_nnz": int(model.cooccurrence_.nnz)}
    out["peak_rss_gb_after_fit"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    if not args.no_extra:
        new, _ = catalog_from_frame(make_catalog(1000, args.seed + 99).assign(
            item_id=lambda f: "N" + f["item_id"].astype(str)))
        t0 = time.perf_counter()
        model.add_items(new)
        out["add_items_seconds"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        j = len(events) // 2
        seen = (HistoryEvent(str(events.item_ids[j]), int(events.timestamps[j]), "view"),)
        model.recommend([Request("r0", "", seen, text="ceramic mug")], 10)
        out["recommend_first_seconds"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        model.recommend([Request("r1", "", seen, text="wooden chair")], 10)
        out["recommend_seconds"] = round(time.perf_counter() - t0, 3)
        # a shelf: every candidate a new product (reads the new-item neighbour lists)
        shelf = tuple(str(i) for i in new.item_ids[:200])
        t0 = time.perf_counter()
        model.recommend([Request("r2", "", seen, candidates=shelf)], 10)
        out["shelf_first_seconds"] = round(time.perf_counter() - t0, 2)
        out["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
