"""Retraining under traffic: a full-scale retrain of ``coldbrew serve`` while a client keeps asking.

    python benchmarks/run_retrain.py --model MODEL_DIR --events EVENTS [--db sqlite:///PATH]
        [--requests 300] [--port 8765]

Starts ``coldbrew serve`` (seeding an empty store from ``--events``), measures one client's
recommendation latency (k=20, shoppers of the events file) with no retrain running, then
starts ``POST /v1/models/retrain`` and measures the same while it runs, then keeps asking until
the new version answers: reports the retrain time, whether any request failed, and the
latencies. Fit a model first with ``coldbrew fit --out MODEL_DIR``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _latencies(client: httpx.Client, users: list[str], n: int, codes: list[int]) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        r = client.get(f"/v1/users/{random.choice(users)}/recommendations", params={"k": 20})
        out.append((time.perf_counter() - started) * 1000)
        codes.append(r.status_code)
    return sorted(out)


def _summary(lat: list[float]) -> str:
    return f"p50 {statistics.median(lat):.1f} ms, p99 {lat[int(0.99 * len(lat)) - 1]:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--db", default=None, help="default: a fresh SQLite file in a temporary directory")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    import pandas as pd

    users = pd.read_csv(args.events, usecols=["user_id"], dtype=str)["user_id"].drop_duplicates().tolist()
    random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite:///{Path(tmp) / 'events.db'}"
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        server = subprocess.Popen(
            [sys.executable, "-m", "coldbrew.cli", "serve", "--model", args.model, "--db", db, "--events",
             args.events, "--port", str(args.port), "--log-level", "warning"], env=env,
        )
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=60)
            for _ in range(600):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            codes: list[int] = []
            idle = _latencies(client, users, args.requests, codes)
            before = client.get("/v1/models").json()["active"]
            started = time.perf_counter()
            job = client.post("/v1/models/retrain").json()
            during = _latencies(client, users, args.requests, codes)
            while client.get("/v1/models").json()["active"] == before:
                statuses = {v["version"]: v["status"] for v in client.get("/v1/models").json()["versions"]}
                if statuses.get(job["version"]) == "failed":
                    raise SystemExit(f"retrain failed: {client.get('/v1/models').json()}")
                codes.append(client.get(f"/v1/users/{random.choice(users)}/recommendations").status_code)
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            failed = sum(c != 200 for c in codes)
            print(f"retrain {job['version']}: swapped in after {elapsed:.0f} s;"
                  f" {len(codes)} requests, {failed} failed")
            print(f"latency, no retrain running: {_summary(idle)}")
            print(f"latency, while retraining:   {_summary(during)}")
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
