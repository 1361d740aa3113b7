"""Scaling benchmark: ``coldbrew encode / fit / recommend`` at 10k-1M products, local vs Ray.

    .venv/bin/python benchmarks/run_scale.py \\
        --cells 10000x1000000 100000x1000000 1000000x1000000 100000x10000000 \\
        --engines local ray --default-encoder-items 10000 \\
        [--work /tmp/coldbrew-scale] [--out benchmarks/results/scale.json]

Each cell ``ITEMSxEVENTS`` is a synthetic shop from ``benchmarks/synthetic_shop.py`` (seeded:
400 categories, Zipf popularity, users with 1-3 favourite categories, 20 events per user on
average) and 1,000 requests drawn from it (a third each: a user's last 5-10 events, text
only, one viewed product). For every engine the three CLI commands run as separate
processes, exactly as a user would run them:

* ``coldbrew encode --catalog items.parquet --out DIR --engine E`` (product texts/s);
* ``coldbrew fit ... --engine E`` into a fresh directory (it encodes on the engine, then trains
  ALS, the bridge and co-occurrence in the driver; events/s);
* ``coldbrew recommend ... --engine E`` (requests/s, the model's loading included).

The grid uses a light fit configuration (written next to the shop as ``scale.toml``): the
``hashing`` text encoder, ALS with 64 factors and 10 iterations, no tuning, no LightGCN, no
learned ranker, a linear bridge without its k-NN part. The default fit (tuning, three
ranker periods, LightGCN) is a quality setting for catalogs that fit in memory many times
over; at 100k products and more it is hours on 2 cores. ``--default-encoder-items N`` adds
one encode-only cell with the default encoder (use-multilingual-v3) on N products, local vs
Ray: that is what text encoding really costs per product.

Peak memory is sampled every 0.1 s as the summed RSS of the command's process tree (Ray's
raylet, GCS and workers included; shared pages are counted once per process, so Ray's figure
is an upper bound). Times are wall-clock seconds of the whole command (Python start-up and,
for Ray, starting a local Ray included: that is what ``--engine ray`` costs on one machine).
Growth: for every command, the slope of log(seconds) against log(products) at fixed events and
against log(events) at fixed products (1.0 is linear).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_shop import write_shop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COLDBREW = [sys.executable, "-m", "coldbrew.cli"]

LIGHT_CONFIG = """\
# benchmarks/run_scale.py: the light fit of the scaling grid (see its docstring)
[encoder]
name = "hashing"
[als]
factors = 64
iterations = 10
[bridge]
ridge = 10.0
lexical_dim = 0
knn_share = 0.0
[blend]
tune = false
[graph]
enabled = false
[ranker]
kind = "none"
"""

_WORDS = "leather bag ceramic mug wooden chair silk scarf steel kettle cotton towel glass vase wool blanket".split()


def _cell(text: str) -> tuple[int, int]:
    items, _, events = text.lower().partition("x")
    try:
        return int(float(items)), int(float(events))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a cell is ITEMSxEVENTS, e.g. 100000x1000000; got {text!r}") from None


def write_requests(events_path: Path, out: Path, n: int = 1000, seed: int = 0) -> Path:
    """``n`` requests drawn from the shop's events (see the module docstring) as JSONL."""
    rng = np.random.default_rng(seed)
    events = pd.read_parquet(events_path)
    events = events.sort_values(["user_id", "timestamp"], kind="stable")
    groups = events.groupby("user_id", sort=False).indices
    active = [rows for rows in groups.values() if len(rows) >= 5]
    lines = []
    for r in range(n):
        kind = r % 3
        if kind == 0:
            rows = active[int(rng.integers(len(active)))]
            part = events.iloc[rows[-int(rng.integers(5, 11)):]]
            history = [{"item_id": str(e.item_id), "timestamp": int(e.timestamp), "event": str(e.event)}
                       for e in part.itertuples()]
            lines.append({"request_id": f"w{r}", "user_id": str(part.user_id.iloc[0]), "history": history})
        elif kind == 1:
            lines.append({"request_id": f"t{r}", "user_id": f"new{r}",
                          "text": " ".join(rng.choice(_WORDS, size=2, replace=False))})
        else:
            e = events.iloc[int(rng.integers(len(events)))]
            lines.append({"request_id": f"v{r}", "user_id": f"new{r}",
                          "history": [{"item_id": str(e.item_id), "timestamp": int(e.timestamp), "event": "view"}]})
    out.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return out


def run_measured(args: list[str], log: Path, timeout: float = 3600.0) -> dict:
    """Run a command; its wall seconds, peak summed RSS of its process tree (MiB), exit code.

    Past ``timeout`` seconds the command and its children are killed (``RuntimeError``)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    with open(log, "w") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            if time.perf_counter() - started > timeout:
                for p in [*root.children(recursive=True), root]:
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
                proc.wait()
                raise RuntimeError(f"{' '.join(map(str, args))} ran past {timeout:.0f} s (peak {peak / 2**20:,.0f} MiB)")
            try:
                tree = [root, *root.children(recursive=True)]
                rss = 0
                for p in tree:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n" + "\n".join(tail))
    return {"seconds": round(seconds, 2), "peak_mib": round(peak / 2**20), "log": str(log)}


def run_cell(items: int, events: int, engines: list[str], work: Path, requests: int,
             timeout: float = 3600.0) -> dict:
    shop = work / f"shop-{items}x{events}"
    t0 = time.perf_counter()
    if not (shop / "events.parquet").is_file():
        write_shop(shop, items, events, seed=0)
    made = time.perf_counter() - t0
    config = shop / "scale.toml"
    config.write_text(LIGHT_CONFIG)
    req_path = shop / "requests.jsonl"
    if not req_path.is_file():
        write_requests(shop / "events.parquet", req_path, requests)
    n_req = sum(1 for _ in req_path.open())
    cell = {"items": items, "events": events, "requests": n_req, "shop_seconds": round(made, 1), "engines": {}}
    for engine in engines:
        try:
            cell["engines"][engine] = _run_engine(engine, items, events, shop, config, req_path, n_req, timeout)
        except RuntimeError as exc:  # recorded, and the grid goes on (a big cell may not fit)
            cell["engines"][engine] = {"error": str(exc)[-800:]}
            print(f"  {items:>9,} x {events:>10,} {engine:>5}: FAILED {str(exc)[-300:]}", flush=True)
    if all("error" not in cell["engines"].get(e, {"error": 1}) for e in ("local", "ray")):
        a = [json.loads(x) for x in (shop / "recs-local.jsonl").read_text().splitlines()]
        b = [json.loads(x) for x in (shop / "recs-ray.jsonl").read_text().splitlines()]
        cell["same_lists_local_vs_ray"] = sum(x["items"] == y["items"] for x, y in zip(a, b)) / max(len(a), 1)
    return cell


def _run_engine(engine: str, items: int, events: int, shop: Path, config: Path, req_path: Path, n_req: int,
                timeout: float) -> dict:
    """The three commands of one cell on one engine (``RuntimeError`` when one fails)."""
    eng = ["--engine", engine]
    out: dict[str, dict] = {}
    enc_dir, model = shop / f"encoded-{engine}", shop / f"model-{engine}"
    for stale in (enc_dir, model):
        subprocess.run(["rm", "-rf", str(stale)], check=True)
    out["encode"] = run_measured(
        [*COLDBREW, "encode", "--catalog", str(shop / "items.parquet"), "--out", str(enc_dir),
         "--config", str(config), *eng], shop / f"encode-{engine}.log", timeout)
    out["encode"]["per_s"] = round(items / out["encode"]["seconds"])
    out["fit"] = run_measured(
        [*COLDBREW, "fit", "--catalog", str(shop / "items.parquet"), "--events", str(shop / "events.parquet"),
         "--out", str(model), "--config", str(config), *eng], shop / f"fit-{engine}.log", timeout)
    out["fit"]["per_s"] = round(events / out["fit"]["seconds"])
    out["recommend"] = run_measured(
        [*COLDBREW, "recommend", "--model", str(model), "--requests", str(req_path), "--k", "10",
         "--out", str(shop / f"recs-{engine}.jsonl"), *eng], shop / f"recommend-{engine}.log", timeout)
    out["recommend"]["per_s"] = round(n_req / out["recommend"]["seconds"], 1)
    print(f"  {items:>9,} x {events:>10,} {engine:>5}: " + ", ".join(
        f"{k} {v['seconds']:.1f} s ({v['peak_mib']:,} MiB)" for k, v in out.items()), flush=True)
    return out


def default_encoder_cell(items: int, engines: list[str], work: Path) -> dict:
    shop = work / f"shop-{items}x{items * 10}"
    if not (shop / "items.parquet").is_file():
        write_shop(shop, items, items * 10, seed=0)
    cell = {"items": items, "encoder": "default (use-multilingual-v3)", "engines": {}}
    for engine in engines:
        out = shop / f"encoded-default-{engine}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        m = run_measured([*COLDBREW, "encode", "--catalog", str(shop / "items.parquet"), "--out", str(out),
                          "--engine", engine], shop / f"encode-default-{engine}.log")
        m["per_s"] = round(items / m["seconds"], 1)
        cell["engines"][engine] = m
        print(f"  default encoder, {items:,} products, {engine}: {m['seconds']:.1f} s, {m['per_s']} texts/s,"
              f" {m['peak_mib']:,} MiB", flush=True)
    return cell


def slopes(cells: list[dict]) -> list[dict]:
    """log-log slopes of seconds against products (fixed events) and events (fixed products)."""
    out = []
    for axis, fixed in (("items", "events"), ("events", "items")):
        groups: dict[int, list[dict]] = {}
        for c in cells:
            groups.setdefault(c[fixed], []).append(c)
        for value, group in groups.items():
            group = sorted(group, key=lambda c: c[axis])
            for lo, hi in zip(group, group[1:]):
                for engine in lo["engines"]:
                    if "error" in lo["engines"][engine] or "error" in hi["engines"].get(engine, {"error": 1}):
                        continue
                    for cmd in ("encode", "fit", "recommend"):
                        t0, t1 = lo["engines"][engine][cmd]["seconds"], hi["engines"][engine][cmd]["seconds"]
                        m0, m1 = lo["engines"][engine][cmd]["peak_mib"], hi["engines"][engine][cmd]["peak_mib"]
                        ratio = math.log(hi[axis] / lo[axis])
                        out.append({"grows": axis, fixed: value, "from": lo[axis], "to": hi[axis], "engine": engine,
                                    "command": cmd, "time_slope": round(math.log(t1 / t0) / ratio, 2),
                                    "memory_slope": round(math.log(max(m1, 1) / max(m0, 1)) / ratio, 2)})
    return out


def markdown(result: dict) -> str:
    lines = ["| products | events | engine | encode s (texts/s) | fit s (events/s) | recommend s (req/s) |"
             " peak MiB encode / fit / recommend |", "|---:|---:|---|---:|---:|---:|---:|"]
    for c in result["cells"]:
        for engine, r in c["engines"].items():
            if "error" in r:
                lines.append(f"| {c['items']:,} | {c['events']:,} | {engine} | failed: {r['error'][-160:]} | | | |")
                continue
            lines.append(f"| {c['items']:,} | {c['events']:,} | {engine} | {r['encode']['seconds']:.1f}"
                         f" ({r['encode']['per_s']:,}) | {r['fit']['seconds']:.1f} ({r['fit']['per_s']:,}) |"
                         f" {r['recommend']['seconds']:.1f} ({r['recommend']['per_s']:,}) |"
                         f" {r['encode']['peak_mib']:,} / {r['fit']['peak_mib']:,} / {r['recommend']['peak_mib']:,} |")
    if result["slopes"]:
        lines += ["", "| grows | at | from → to | engine | command | time slope | memory slope |",
                  "|---|---|---|---|---|---:|---:|"]
        for s in result["slopes"]:
            fixed = "events" if s["grows"] == "items" else "items"
            lines.append(f"| {s['grows']} | {fixed} {s[fixed]:,} | {s['from']:,} → {s['to']:,} | {s['engine']} |"
                         f" {s['command']} | {s['time_slope']} | {s['memory_slope']} |")
    for c in result.get("default_encoder", []):
        lines += ["", f"Default encoder, {c['items']:,} products: " + "; ".join(
            f"{e} {m['seconds']:.1f} s = {m['per_s']} texts/s ({m['per_s'] / result['cores']:.1f} per core),"
            f" peak {m['peak_mib']:,} MiB" for e, m in c["engines"].items())]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", type=_cell, default=[_cell("10000x1000000"), _cell("100000x1000000")],
                        metavar="ITEMSxEVENTS")
    parser.add_argument("--engines", nargs="+", choices=["local", "ray"], default=["local", "ray"])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--default-encoder-items", type=int, default=0, metavar="N")
    parser.add_argument("--work", type=Path, default=Path("/tmp/coldbrew-scale"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale.json")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per command (default 3600)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    result = {"command": "python benchmarks/run_scale.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores,"
                         f" {psutil.virtual_memory().total / 2**30:.0f} GiB",
              "cores": os.cpu_count(), "cells": [], "default_encoder": []}
    for items, events in args.cells:
        result["cells"].append(run_cell(items, events, args.engines, args.work, args.requests, args.timeout))
        result["slopes"] = slopes(result["cells"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    if args.default_encoder_items:
        result["default_encoder"].append(default_encoder_cell(args.default_encoder_items, args.engines, args.work))
    result["slopes"] = slopes(result["cells"])
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
