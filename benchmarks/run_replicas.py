"""Propagation delays between two ``coldbrew serve`` replicas on one PostgreSQL database.

    python benchmarks/run_replicas.py [--postgres postgresql://postgres@127.0.0.1:5432/test]
        [--model MODEL_DIR --events-file EVENTS] [--events 100] [--products 40] [--retrains 3]

Two real ``coldbrew serve`` processes (A and B, each with its own copy of the model
directory) share one PostgreSQL schema of their own (dropped afterwards). Without
``--model`` the model is the bundled demo shop fitted with the hashing encoder (seconds).
Measured, each from the moment A acknowledged the write (its 2xx answer) to the first answer
of B that reflects it, B being polled back to back (keep-alive, about a millisecond per
request on loopback):

* event: ``POST /v1/events`` to A (a new shopper each time), then
  ``GET /v1/users/{id}/profile`` on B until it counts the event;
* product: ``POST /v1/items`` to A (a new product), then ``GET /v1/items/{id}`` on B until 200;
* retrain: ``POST /v1/models/retrain`` to A, then ``/healthz`` of both polled; the delay is
  from A serving the new version to B serving it (A records the version in the database
  just before its own swap, so B may even be first: the delay can be negative).

Writes the figures to ``benchmarks/results/replicas.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo_model(work: Path) -> tuple[Path, Path]:
    """Fit the demo shop with the hashing encoder: ``(model dir, events csv)``."""
    from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
    from coldbrew.data import load_catalog
    from coldbrew.data.events import events_from_frame
    from coldbrew.demo import demo_events, demo_paths
    from coldbrew.pipeline import Recommender
    from coldbrew.storage import save_model

    catalog, _ = load_catalog(demo_paths()[0])
    frame = demo_events(list(catalog.item_ids))
    events, _ = events_from_frame(frame)
    frame.drop(columns=["taste"]).to_csv(work / "events.csv", index=False)
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))
    save_model(Recommender(config).fit(catalog, events, progress=False), work / "model")
    return work / "model", work / "events.csv"


class Server:
    """One ``coldbrew serve`` process and a keep-alive client to it."""

    def __init__(self, name: str, model_dir: Path, db_url: str, work: Path, *extra: str) -> None:
        self.name = name
        self.port = _free_port()
        self.log = work / f"{name}.log"
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        command = [sys.executable, "-m", "coldbrew.cli", "serve", "--model", str(model_dir), "--db", db_url,
                   "--port", str(self.port), *extra]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def wait(self, timeout: float = 300.0, scoring: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"replica {self.name} exited:\n{self.log.read_text()[-3000:]}")
            try:
                health = self.client.get("/healthz").json()
                if scoring is None or health["scoring_process"] == scoring:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"replica {self.name} did not start in {timeout:.0f} s")

    def version(self) -> str:
        return self.client.get("/healthz").json()["model_version"]

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _until(check, timeout: float) -> tuple[float, int]:
    """Seconds until ``check()`` is true (polled back to back) and how many polls it took."""
    started = time.perf_counter()
    polls = 0
    while True:
        polls += 1
        if check():
            return time.perf_counter() - started, polls
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"not propagated within {timeout} s")


def _summary(delays: list[float]) -> dict[str, float]:
    ms = np.asarray(delays) * 1000.0
    return {"n": int(len(ms)), "median_ms": round(float(np.median(ms)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "max_ms": round(float(ms.max()), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_PG)
    parser.add_argument("--model", type=Path, default=None, help="model directory (default: the demo shop)")
    parser.add_argument("--events-file", type=Path, default=None, help="events to seed the store with (for retrains)")
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--products", type=int, default=40)
    parser.add_argument("--retrains", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "replicas.json")
    args = parser.parse_args()

    import psycopg

    from coldbrew.service.replicas import POLL_INTERVAL_S

    work = Path(tempfile.mkdtemp(prefix="coldbrew-replicas-"))
    schema = f"coldbrew_bench_{uuid.uuid4().hex[:10]}"
    db_url = f"{args.postgres}?schema={schema}"
    servers: list[Server] = []
    try:
        if args.model is None:
            model_dir, events_file = _demo_model(work)
        else:
            model_dir, events_file = args.model, args.events_file
        dirs = [Path(shutil.copytree(model_dir, work / name / "model")) for name in ("a", "b")]
        seed = ["--events", str(events_file)] if events_file else []
        a = Server("a", dirs[0], db_url, work, *seed, "--no-scoring-process")
        servers.append(a)
        a.wait()  # A seeds the empty store; B starts on the seeded one
        b = Server("b", dirs[1], db_url, work, "--scoring-process")
        servers.append(b)
        b.wait(scoring="on")
        item = a.client.get("/v1/items", params={"limit": 1}).json()["items"][0]["item_id"]

        event_delays, event_polls = [], []
        for _ in range(args.events):
            user = f"bench-{uuid.uuid4().hex[:10]}"
            assert a.client.post("/v1/events", json={"user_id": user, "item_id": item}).status_code == 200
            delay, polls = _until(lambda u=user: b.client.get(f"/v1/users/{u}/profile").json()["events"] == 1, 10)
            event_delays.append(delay)
            event_polls.append(polls)

        product_delays = []
        for j in range(args.products):
            new = f"bench-item-{uuid.uuid4().hex[:10]}"
            body = {"item_id": new, "title": f"Benchmark product {j}", "category": "Bench", "price": 1.0 + j}
            assert a.client.post("/v1/items", json=body).status_code == 201
            delay, _ = _until(lambda i=new: b.client.get(f"/v1/items/{i}").status_code == 200, 10)
            product_delays.append(delay)
            time.sleep(0.037 * (j % 7))  # do not stay in phase with the replicas' polling

        retrain_delays, retrain_seconds = [], []
        for _ in range(args.retrains):
            started = time.perf_counter()
            version = a.client.post("/v1/models/retrain").json()["version"]
            seen: dict[str, float] = {}
            while len(seen) < 2:
                for server in (a, b):
                    if server.name not in seen and server.version() == version:
                        seen[server.name] = time.perf_counter()
                if time.perf_counter() - started > 600:
                    raise SystemExit("retrain not picked up within 600 s")
                time.sleep(0.005)
            retrain_seconds.append(seen["a"] - started)
            retrain_delays.append(seen["b"] - seen["a"])

        results = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "python": platform.python_version(),
            "model": "demo shop (52 products, hashing encoder)" if args.model is None else str(args.model),
            "poll_interval_s": POLL_INTERVAL_S,
            "event": {**_summary(event_delays), "first_answer_share": round(event_polls.count(1) / len(event_polls), 3)},
            "product": _summary(product_delays),
            "retrain_pickup": _summary(retrain_delays),
            "retrain_seconds_median": round(statistics.median(retrain_seconds), 2),
        }
    finally:
        for server in servers:
            server.stop()
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(work, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"Two replicas on one PostgreSQL ({results['machine']}; poll every {POLL_INTERVAL_S} s;"
          f" {results['model']})\n")
    print("| change written to A | seen by B | n | median | p99 | max |")
    print("|---|---|---:|---:|---:|---:|")
    e, p, r = results["event"], results["product"], results["retrain_pickup"]
    print(f"| event (POST /v1/events) | profile counts it ({e['first_answer_share']:.0%} on the first answer)"
          f" | {e['n']} | {e['median_ms']} ms | {e['p99_ms']} ms | {e['max_ms']} ms |")
    print(f"| product (POST /v1/items) | GET /v1/items/ID is 200 | {p['n']} | {p['median_ms']} ms |"
          f" {p['p99_ms']} ms | {p['max_ms']} ms |")
    print(f"| retrain (A swapped; retrain took {results['retrain_seconds_median']} s) | B serves the version"
          f" | {r['n']} | {r['median_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms |")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
