"""Speed and memory of coldbrew on the full uci_online_retail, with implicit ALS as the baseline.

    python benchmarks/run_speed.py [--data ../shared/data/uci_online_retail] [--requests 10000]

Measures, in one process unless said otherwise (medians over --repeats runs):
* fit time of coldbrew (default config: includes encoding and fit-time tuning), of a plain
  implicit ALS fit and of LightFM with item text features, on the same events (median of
  ``--fit-repeats`` interleaved rounds), and where coldbrew's fit time went, by stage;
* add-items time for 100 products (text only) into a fitted model;
* recommend throughput for N requests of warm users with their full history, k=20, in
  process (coldbrew vs the ALS baseline with fold-in) and end to end through
  ``coldbrew recommend`` (model load + JSON parsing + writing), with the peak memory (RSS) of
  that process.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from coldbrew.config import FitConfig
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.baselines import ALSRecommender
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent, Request
from coldbrew.storage import save_model

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"


def _requests(events, n: int, seed: int = 0) -> list[Request]:
    order = np.argsort(events.timestamps, kind="stable")
    by_user: dict[str, list[HistoryEvent]] = {}
    for i in order[-200_000:]:  # recent history keeps request files a realistic size
        by_user.setdefault(events.user_ids[i], []).append(
            HistoryEvent(events.item_ids[i], int(events.timestamps[i]), events.events[i], float(events.values[i]))
        )
    users = sorted(by_user)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(users), size=n, replace=True)
    return [Request(f"r{j}", users[u], tuple(by_user[users[u]][-50:])) for j, u in enumerate(picks)]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-repeats", type=int, default=3, help="fit rounds (coldbrew, ALS, LightFM each)")
    args = parser.parse_args(argv)

    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    rng = np.random.default_rng(0)
    held = rng.choice(len(catalog), size=100 * args.repeats, replace=False)
    keep = np.setdiff1d(np.arange(len(catalog)), held)
    fit_catalog = catalog.subset(keep)
    rows = []

    # Fits, interleaved (coldbrew, ALS, LightFM per round) so a slow minute of this shared
    # machine hits all three alike; medians of --fit-repeats rounds.
    from coldbrew.evaluation.baselines import LightFMRecommender

    cb_fits, als_fits, lightfm_fits, stage_runs = [], [], [], []
    for _ in range(args.fit_repeats):
        t = time.perf_counter()
        model = Recommender(FitConfig()).fit(fit_catalog, events, progress=False)
        cb_fits.append(time.perf_counter() - t)
        stage_runs.append(model.fit_report_["seconds"])
        t = time.perf_counter()
        als = ALSRecommender().fit(fit_catalog, events)
        als_fits.append(time.perf_counter() - t)
        t = time.perf_counter()
        LightFMRecommender().fit(fit_catalog, events)
        lightfm_fits.append(time.perf_counter() - t)
    fit_s, als_fit_s, lightfm_fit_s = (statistics.median(x) for x in (cb_fits, als_fits, lightfm_fits))
    runs = f"median of {args.fit_repeats}" if args.fit_repeats > 1 else "one run"
    rows.append((f"fit, full data ({len(events):,} events; {runs})", f"{fit_s:.1f} s",
                 f"{als_fit_s:.1f} s (implicit ALS)", f"{fit_s / als_fit_s:.1f}x"))
    rows.append((f"fit, full data ({len(events):,} events; {runs})", f"{fit_s:.1f} s",
                 f"{lightfm_fit_s:.1f} s (LightFM, item text features)", f"{fit_s / lightfm_fit_s:.2f}x"))
    stages = stage_runs[int(np.argsort(cb_fits)[len(cb_fits) // 2])]  # the median run's stages

    add_times = []
    for r in range(args.repeats):
        batch = catalog.subset(held[100 * r : 100 * (r + 1)])
        t = time.perf_counter()
        added = model.add_items(batch)
        add_times.append(time.perf_counter() - t)
        assert added == 100
    rows.append(("add-items, 100 products (in process)", f"{1000 * statistics.median(add_times):.0f} ms", "n/a (ALS cannot)", ""))

    requests = _requests(events, args.requests)
    cb_s = _median_time(lambda: model.recommend(requests, 20), args.repeats)
    als_s = _median_time(lambda: als.recommend(requests, 20), args.repeats)
    rows.append((f"recommend {len(requests):,} warm requests, k=20 (in process)",
                 f"{len(requests) / cb_s:,.0f} req/s", f"{len(requests) / als_s:,.0f} req/s (ALS fold-in)",
                 f"{cb_s / als_s:.2f}x"))

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        save_model(model, model_dir)
        req_path = Path(tmp) / "requests.jsonl"
        with open(req_path, "w") as handle:
            for req in requests:
                handle.write(json.dumps({
                    "request_id": req.request_id, "user_id": req.user_id,
                    "history": [{"item_id": h.item_id, "timestamp": h.timestamp, "event": h.event} for h in req.history],
                }) + "\n")
        cli_times, peaks = [], []
        # The peak is read inside the CLI process (VmHWM, reset by exec), not via
        # RUSAGE_CHILDREN, which would report this large parent's size inherited at fork.
        wrapper = ("import sys; from coldbrew.cli import main; rc = main(sys.argv[1:]);"
                   " print('VmHWM', open('/proc/self/status').read().split('VmHWM:')[1].split()[0],"
                   " file=sys.stderr); sys.exit(rc)")
        for _ in range(args.repeats):
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", wrapper, "recommend", "--model", str(model_dir),
                                   "--requests", str(req_path), "--k", "20", "--out", str(Path(tmp) / "recs.jsonl")],
                                  check=True, capture_output=True, text=True)
            cli_times.append(time.perf_counter() - t)
            peaks.append(int(done.stderr.split("VmHWM")[-1].split()[0]))
        peak_mb = max(peaks) / 1024
        size_mb = sum(p.stat().st_size for p in model_dir.iterdir()) / 2**20
    cli_s = statistics.median(cli_times)
    rows.append((f"`coldbrew recommend` CLI, {len(requests):,} requests end to end",
                 f"{cli_s:.1f} s ({len(requests) / cli_s:,.0f} req/s)", "", ""))
    rows.append(("peak memory of that process (VmHWM)", f"{peak_mb:,.0f} MB", "", ""))
    rows.append(("model directory size", f"{size_mb:,.1f} MB", "", ""))

    print("| measurement | coldbrew | baseline | coldbrew time / baseline time |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("Where coldbrew's fit time went (the median run's `fit_report_['seconds']`):")
    print()
    print("| stage | seconds |")
    print("|---|---:|")
    for key, value in stages.items():
        print(f"| {key} | {value:.1f} |")


if __name__ == "__main__":
    main()
