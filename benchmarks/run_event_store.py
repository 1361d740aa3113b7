"""Event store micro-benchmark: durable append throughput and history reads, SQLite and PostgreSQL.

    python benchmarks/run_event_store.py [--events 100000] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Below HTTP: what the stores themselves sustain. Each ``append`` is one transaction committed
(SQLite: WAL + synchronous=FULL, an fsync per commit; PostgreSQL: synchronous_commit=on)
before it returns, so events/s here are durable events/s. Also measured: ``history`` (a
user's latest 200 events + profile), the per-request read of ``GET .../recommendations``.
Synthetic events (20,000 users, 4,000 items) so that it runs without the shared data.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from coldbrew.storage.event_store import StoredEvent, open_store


def _events(n: int, seed: int = 0) -> list[StoredEvent]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 20_000, n)
    items = rng.integers(0, 4_000, n)
    ts = 1_700_000_000 + np.sort(rng.integers(0, 86_400 * 365, n))
    kinds = rng.choice(["view", "cart", "purchase"], n, p=[0.7, 0.2, 0.1])
    return [StoredEvent(f"user{u}", f"item{i}", int(t), str(k)) for u, i, t, k in zip(users, items, ts, kinds)]


def _bench(url: str, events: list[StoredEvent], label: str) -> list[str]:
    rows = []
    store = open_store(url)
    try:
        for batch in (1, 100, 1000, 10_000):
            n = min(len(events), 2_000 if batch == 1 else len(events))
            part = events[:n]
            started = time.perf_counter()
            for start in range(0, n, batch):
                store.append(part[start : start + batch])
            elapsed = time.perf_counter() - started
            rows.append(f"| {label} | append, batches of {batch:,} | {n / elapsed:,.0f} events/s | {n:,} events |")
        users = [f"user{u}" for u in np.random.default_rng(1).integers(0, 20_000, 500)]
        lat = []
        for user in users:
            started = time.perf_counter()
            store.history(user, 200)
            lat.append((time.perf_counter() - started) * 1000)
        lat.sort()
        rows.append(f"| {label} | history (latest 200 + profile) | p50 {statistics.median(lat):.2f} ms,"
                    f" p99 {lat[int(0.99 * len(lat)) - 1]:.2f} ms | {store.snapshot(False).n_events:,} stored |")
    finally:
        if hasattr(store, "drop"):
            store.drop()
        store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL URL ('' to skip)")
    args = parser.parse_args()
    events = _events(args.events)
    rows = ["| store | operation | result | size |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        rows += _bench(f"sqlite:///{Path(tmp) / 'events.db'}", events, "SQLite (WAL, synchronous=FULL)")
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        rows += _bench(f"{args.postgres}?schema={schema}", events, "PostgreSQL (COPY per batch)")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
