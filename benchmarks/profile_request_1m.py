"""Single-request latency and a cProfile of the retrieve-then-rank path on a large synthetic shop.

    .venv/bin/python benchmarks/profile_request_1m.py [--items 1000000] [--workdir /tmp/p1m]
        [--requests 150] [--rebuild]

Fits the light configuration of ``run_retrieval_scale.py`` on a synthetic shop of
``--items`` products and 2 events per product (saved under ``--workdir``, reused when
there), loads it, and times ``Recommender.recommend([request], 10)`` for the same request
mix (warm users, text only, one viewed product): p50 / p99 / max per kind, then a cProfile
of the same requests (top functions by cumulative and own time). ``--rebuild`` rebuilds
the text index with the current defaults (a model saved by an older version keeps the
index it was saved with).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_retrieval_scale import _requests, light_config  # noqa: E402
from synthetic_shop import make_catalog, make_events  # noqa: E402

from coldbrew.data import catalog_from_frame, events_from_frame  # noqa: E402
from coldbrew.pipeline import Recommender  # noqa: E402
from coldbrew.retrieval.ranked import index_of  # noqa: E402
from coldbrew.storage import load_model, save_model  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/p1m"))
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir, events_path = args.workdir / f"model-{args.items}", args.workdir / f"events-{args.items}.parquet"
    if not model_dir.exists():
        catalog_frame = make_catalog(args.items, 0)
        events_frame = make_events(catalog_frame, 2 * args.items, seed=0)
        events_frame.to_parquet(events_path)
        started = time.perf_counter()
        model = Recommender(light_config()).fit(catalog_from_frame(catalog_frame)[0],
                                                events_from_frame(events_frame)[0], progress=False)
        print(f"fit {time.perf_counter() - started:.1f} s", flush=True)
        model._retrieval_indexes()
        save_model(model, model_dir)
        del model
    started = time.perf_counter()
    model = load_model(model_dir)
    print(f"load {time.perf_counter() - started:.1f} s", flush=True)
    if args.rebuild:
        model._indexes.pop("content", None)
        index_of(model, "content")
    print({name: repr(getattr(index, "inner", index)) for name, index in model._indexes.items()})
    events, _ = events_from_frame(pd.read_parquet(events_path))
    requests = _requests(events, args.requests, np.random.default_rng(0))
    for req in requests[:6]:  # warm-up
        model.recommend([req], 10)
    kinds: dict[str, list[float]] = {}
    for req in requests:
        started = time.perf_counter()
        model.recommend([req], 10)
        kinds.setdefault(req.request_id[0], []).append((time.perf_counter() - started) * 1000)
    names = {"w": "warm users", "t": "text only", "v": "one viewed product"}
    for kind, ms in [*kinds.items(), ("all", sum(kinds.values(), []))]:
        print(f"{names.get(kind, kind)}: p50 {np.median(ms):.1f} p99 {np.percentile(ms, 99):.1f} max {max(ms):.1f} ms")
    profile = cProfile.Profile()
    profile.enable()
    for req in requests:
        model.recommend([req], 10)
    profile.disable()
    pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
