"""Mixed-traffic load of ``coldbrew serve`` on the full uci_online_retail model (issue #21, part 4).

    python benchmarks/run_load.py [--clients 8 32] [--duration 120] [--warmup 10]
        [--stores sqlite postgres] [--batch 50] [--data ../shared/data/uci_online_retail]
        [--work DIR] [--postgres postgresql://postgres@127.0.0.1:5432/test]
    python benchmarks/run_service.py --mixed ...   (the same: run_service.py hands over here)

Reuses ``run_service.py``'s pieces (the real ``coldbrew serve`` process, the small asyncio
keep-alive HTTP/1.1 client, the ingestion phase). For each store and each client count, on a
fresh server and a fresh database:

1. ingestion: the shop's most recent ``--events`` events posted in batches of
   ``--ingest-batch`` (1000) by 4 clients (``run_service.ingest``): durable events/s;
2. mixed traffic: ``N`` closed-loop clients, each on its own keep-alive connection, each
   request drawn at random: 70 % ``GET /v1/users/{id}/recommendations?k=20`` for a shopper of
   the ingested events (uniform), 25 % ``POST /v1/events`` with ``--batch`` (50) events (real
   shopper, product, event type and quantity drawn from those events, timestamp = now), 5 %
   ``POST /v1/items`` with one new product (a unique ID, a catalog title with a variant
   suffix, that product's price). ``--warmup`` seconds first (not counted), then
   ``--duration`` seconds measured: per operation p50 / p99 / p99.9 latency seen by the
   client, requests/s, acknowledged events/s, answers by HTTP status;
3. memory: the RSS of the server's process tree (the server and its scoring process),
   sampled every second (psutil): at the end of the warm-up, at the end, the maximum, and the
   least-squares slope over the measured window in MB/min;
4. durability: after the server is stopped, every acknowledged event (as a multiset of
   (user, item, timestamp)) and every acknowledged product is checked to be in the store.

An event batch is acknowledged (200) only after the store committed it: SQLite in WAL mode
with ``synchronous=FULL`` (fsync per commit), PostgreSQL with ``synchronous_commit=on``
(``SQLiteEventStore.append`` / ``PostgresEventStore.append`` return after COMMIT, and
``POST /v1/events`` answers after ``append`` returns).

Writes ``benchmarks/results/load_mixed.json`` and ``benchmarks/results/load_mixed.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_service import (  # noqa: E402
    DEFAULT_DATA,
    DEFAULT_PG,
    ROOT,
    Connection,
    Service,
    _drop_schema,
    _event_batches,
    _machine,
    _postgres_reachable,
    ingest,
)

OPS = ("recommend", "events", "items")
DEFAULT_MIX = (0.70, 0.25, 0.05)
_VARIANTS = ("SET OF 2", "SET OF 3", "LARGE", "SMALL", "MINI", "JUMBO", "RED", "BLUE", "PINK", "IVORY",
             "VINTAGE", "RETRO", "CHRISTMAS", "HEART", "FLORAL", "POLKADOT", "GLASS", "WOODEN", "ENAMEL",
             "ASSORTED")


# ---------------------------------------------------------------------- what the clients send
@dataclass
class Traffic:
    """The request pools the mixed clients draw from."""

    rec_paths: list[str]  # GET .../recommendations?k=K for real shoppers
    event_rows: list[tuple[str, str, str, float | None]]  # (user, item, event, value) to draw from
    products: list[tuple[str, float | None]]  # (title, price) of catalog products
    batch: int = 50
    mix: tuple[float, float, float] = DEFAULT_MIX
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])  # new product IDs are unique per run


def traffic_from(events, catalog, users: list[str], n_recent: int, k: int = 20, batch: int = 50,
                 mix: tuple[float, float, float] = DEFAULT_MIX) -> Traffic:
    """Pools from a shop's data: ``users`` get recommendations; events are drawn from the
    ``n_recent`` most recent ones; new products copy catalog titles and prices."""
    order = np.argsort(events.timestamps, kind="stable")[-n_recent:]
    rows = [(str(events.user_ids[i]), str(events.item_ids[i]), str(events.events[i]),
             None if not np.isfinite(events.values[i]) else float(events.values[i])) for i in order]
    products = [(str(t), float(p) if np.isfinite(p) else None)
                for t, p in zip(catalog.titles, np.asarray(catalog.prices, dtype=np.float64)) if str(t).strip()]
    paths = [f"/v1/users/{quote(u, safe='')}/recommendations?k={k}" for u in users]
    return Traffic(paths, rows, products, batch=batch, mix=mix)


# ---------------------------------------------------------------------- memory
class MemorySampler(threading.Thread):
    """RSS of a process and all its descendants, every ``interval`` s: ``samples`` (t, bytes),
    t on the ``time.perf_counter`` clock."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def rss(self) -> int:
        psutil = self._psutil
        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def run(self) -> None:
        next_at = time.perf_counter()
        while not self._halt.is_set():
            self.samples.append((time.perf_counter(), self.rss()))
            next_at += self.interval
            self._halt.wait(max(0.0, next_at - time.perf_counter()))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def memory_summary(samples: list[tuple[float, int]], start: float, end: float) -> dict[str, float]:
    """Start / end / max RSS (MB) and the least-squares slope (MB/min) of the samples in [start, end]."""
    window = [(t, b) for t, b in samples if start <= t <= end + 0.5]
    if not window:
        return {"samples": 0}
    t = np.array([w[0] for w in window]) - start
    mb = np.array([w[1] for w in window], dtype=np.float64) / 1e6
    slope = float(np.polyfit(t / 60.0, mb, 1)[0]) if len(window) >= 3 else float("nan")
    return {"samples": len(window), "start_mb": float(mb[0]), "end_mb": float(mb[-1]), "max_mb": float(mb.max()),
            "min_mb": float(mb.min()), "slope_mb_per_min": slope,
            "series_mb": [round(float(x), 1) for x in mb]}


# ---------------------------------------------------------------------- the mixed driver
@dataclass
class MixedRun:
    """What the clients saw."""

    records: np.ndarray  # (n, 4) float64: op index, start (s after the measured window opened), latency s, status
    window_s: float
    acked_events: Counter  # (user, item, timestamp) -> times acknowledged (measured window and warm-up)
    acked_items: list[str]
    failures: list[str]  # first few bodies of non-2xx answers or transport errors
    window: tuple[float, float]  # perf_counter start, end of the measured window


async def _mixed(port: int, traffic: Traffic, clients: int, warmup_s: float, duration_s: float,
                 seed: int, api_key: str | None) -> MixedRun:
    connections = [await Connection("127.0.0.1", port, api_key).open() for _ in range(clients)]
    records: list[tuple[int, float, float, int]] = []
    acked: Counter = Counter()
    acked_items: list[str] = []
    failures: list[str] = []
    begin = time.perf_counter()
    opens, closes = begin + warmup_s, begin + warmup_s + duration_s
    edges = np.cumsum(traffic.mix) / sum(traffic.mix)

    async def client(c: int, conn: Connection) -> None:
        rng = np.random.default_rng([seed, c])
        n = 0
        while True:
            started = time.perf_counter()
            if started >= closes:
                return
            op = int(np.searchsorted(edges, rng.random(), side="right"))
            op = min(op, 2)
            if op == 0:
                method, path, body = "GET", traffic.rec_paths[int(rng.integers(len(traffic.rec_paths)))], None
            elif op == 1:
                now = int(time.time())
                picks = rng.integers(len(traffic.event_rows), size=traffic.batch)
                rows = [traffic.event_rows[int(i)] for i in picks]
                body = {"events": [{"user_id": u, "item_id": i, "event": e, "value": v, "timestamp": now}
                                   for u, i, e, v in rows]}
                method, path = "POST", "/v1/events"
            else:
                title, price = traffic.products[int(rng.integers(len(traffic.products)))]
                item_id = f"load-{traffic.tag}-{c}-{n}"
                n += 1
                body = {"item_id": item_id, "title": f"{title} {_VARIANTS[int(rng.integers(len(_VARIANTS)))]}"[:200],
                        "price": price}
                method, path = "POST", "/v1/items"
            try:
                status, answer = await conn.request(method, path, body)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                status, answer = -1, f"{type(exc).__name__}: {exc}".encode()
                await conn.close()
                conn = await Connection("127.0.0.1", port, api_key).open()
            finished = time.perf_counter()
            records.append((op, started - opens, finished - started, status))
            if 200 <= status < 300:
                if op == 1:
                    acked.update((e["user_id"], e["item_id"], e["timestamp"]) for e in body["events"])
                elif op == 2:
                    acked_items.append(body["item_id"])
            elif len(failures) < 20:
                failures.append(f"{status} {method} {path}: {answer[:300].decode(errors='replace')}")
        # not reached

    try:
        await asyncio.gather(*(client(c, conn) for c, conn in enumerate(connections)))
    finally:
        for conn in connections:
            await conn.close()
    return MixedRun(np.asarray(records, dtype=np.float64).reshape(-1, 4), duration_s, acked, acked_items,
                    failures, (opens, closes))


def run_mixed(service: Service, traffic: Traffic, clients: int, duration_s: float, warmup_s: float = 10.0,
              seed: int = 0, api_key: str | None = None, sample_interval: float = 1.0) -> tuple[dict, MixedRun]:
    """Drive ``service`` with mixed traffic; returns (figures, raw run)."""
    sampler = MemorySampler(service.process.pid, sample_interval)
    sampler.start()
    cpu0, client0 = service.cpu_seconds(), time.process_time()
    try:
        run = asyncio.run(_mixed(service.port, traffic, clients, warmup_s, duration_s, seed, api_key))
    finally:
        sampler.stop()
    cpu, client_cpu = service.cpu_seconds() - cpu0, time.process_time() - client0
    return summarise(run, traffic, clients, sampler.samples, cpu, client_cpu, warmup_s), run


def _percentiles(latencies: np.ndarray) -> dict[str, float]:
    if not len(latencies):
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "p999_ms": float("nan"), "max_ms": float("nan")}
    ms = 1000 * latencies
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "p999_ms": float(np.percentile(ms, 99.9)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean())}


def summarise(run: MixedRun, traffic: Traffic, clients: int, samples: list[tuple[float, int]],
              service_cpu_s: float, client_cpu_s: float, warmup_s: float) -> dict:
    r = run.records
    measured = r[(r[:, 1] >= 0) & (r[:, 1] < run.window_s)] if len(r) else r
    ops: dict[str, dict] = {}
    for j, name in enumerate(OPS):
        rows = measured[measured[:, 0] == j]
        ok = rows[(rows[:, 3] >= 200) & (rows[:, 3] < 300)]
        statuses = Counter(str(int(s)) if s >= 0 else "transport error" for s in rows[:, 3])
        ops[name] = {"requests": int(len(rows)), "ok": int(len(ok)), "req_per_s": len(rows) / run.window_s,
                     "status": dict(sorted(statuses.items())), **_percentiles(ok[:, 2])}
    ops["events"]["events_per_s"] = ops["events"]["ok"] * traffic.batch / run.window_s
    non_2xx = int(sum(n for o in ops.values() for s, n in o["status"].items() if not s.startswith("2")))
    total_s = warmup_s + run.window_s
    return {
        "clients": clients, "duration_s": run.window_s, "warmup_s": warmup_s,
        "requests_per_s": len(measured) / run.window_s, "non_2xx": non_2xx, "ops": ops,
        "failures": run.failures,
        "memory": memory_summary(samples, *run.window),
        "memory_warmup_start_mb": samples[0][1] / 1e6 if samples else float("nan"),
        # CPU over warm-up + window (both phases carry the same traffic)
        "service_cores": service_cpu_s / total_s, "client_cores": client_cpu_s / total_s,
        "acked_events_total": int(sum(run.acked_events.values())), "acked_items_total": len(run.acked_items),
    }


def check_durable(db_url: str, run: MixedRun, before: Counter | None = None) -> dict:
    """Every acknowledged event (multiset of (user, item, timestamp)) and product is in the
    store; ``before``: what was stored before the mixed run (events only)."""
    from coldbrew.storage.event_store import open_store

    store = open_store(db_url)
    try:
        snapshot = store.snapshot(with_events=True)
    finally:
        store.close()
    ev = snapshot.events
    stored = Counter(zip(ev.user_ids.tolist(), ev.item_ids.tolist(), ev.timestamps.tolist()))
    if before:
        stored.subtract(before)
    missing = sum(max(0, n - stored.get(key, 0)) for key, n in run.acked_events.items())
    items = {r.item_id for r in snapshot.items if not r.deleted}
    missing_items = sum(1 for i in run.acked_items if i not in items)
    return {"acked_events": int(sum(run.acked_events.values())), "missing_events": int(missing),
            "stored_events": int(len(ev)), "acked_items": len(run.acked_items), "missing_items": missing_items}


def _stored_counter(db_url: str) -> Counter:
    from coldbrew.storage.event_store import open_store

    store = open_store(db_url)
    try:
        ev = store.snapshot(with_events=True).events
    finally:
        store.close()
    return Counter(zip(ev.user_ids.tolist(), ev.item_ids.tolist(), ev.timestamps.tolist()))


# ---------------------------------------------------------------------- the benchmark
def _one(args: argparse.Namespace, model_dir: Path, log: Path, events, catalog, store: str, clients: int,
         mix: tuple[float, float, float] | None = None, label: str = "mixed") -> dict:
    """Fresh server and database: ingestion, then mixed traffic, then the durability check."""
    mix = tuple(args.mix) if mix is None else mix
    schema = None
    if store == "sqlite":
        db = args.work / f"load_{clients}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{db}"
    else:
        schema = f"coldbrew_load_{uuid.uuid4().hex[:8]}"
        url = f"{args.postgres}{'&' if '?' in args.postgres else '?'}schema={schema}"
    try:
        started = time.perf_counter()
        service = Service(model_dir, url, log)
        start_s = time.perf_counter() - started
        try:
            print(f"[{store} x{clients} {label}] serving on port {service.port} (started in {start_s:.0f} s)",
                  file=sys.stderr, flush=True)
            n_events = min(args.events, len(events))
            batches = _event_batches(events, n_events, args.ingest_batch)
            ingested = ingest(service, batches)
            print(f"[{store} x{clients}] ingestion: {ingested['events_per_s']:,.0f} events/s", file=sys.stderr, flush=True)
            users = sorted({row["user_id"] for _, _, body in batches for row in body["events"]})
            items_before = service.get("/healthz")
            traffic = traffic_from(events, catalog, users, n_events, k=args.k, batch=args.batch, mix=mix)
            before = _stored_counter(url)
            figures, run = run_mixed(service, traffic, clients, args.duration, args.warmup, seed=clients)
            health = service.get("/healthz")
        finally:
            service.stop()
        figures["durability"] = check_durable(url, run, before)
        figures["ingest"] = ingested
        figures["store"] = store
        figures["traffic"], figures["mix"] = label, list(mix)
        figures["scoring_process"] = service.scoring
        figures["server_start_s"] = start_s
        figures["users"] = len(users)
        figures["healthz_before"], figures["healthz_after"] = items_before, health
        m, o = figures["memory"], figures["ops"]
        print(f"[{store} x{clients} {label}] {figures['requests_per_s']:.0f} req/s; rec p50 {o['recommend']['p50_ms']:.1f}"
              f" p99 {o['recommend']['p99_ms']:.1f} p99.9 {o['recommend']['p999_ms']:.1f} ms;"
              f" events {o['events']['events_per_s']:,.0f}/s; non-2xx {figures['non_2xx']};"
              f" RSS {m.get('start_mb', 0):.0f} -> {m.get('end_mb', 0):.0f} MB (max {m.get('max_mb', 0):.0f},"
              f" slope {m.get('slope_mb_per_min', float('nan')):+.2f} MB/min); durability {figures['durability']}",
              file=sys.stderr, flush=True)
        return figures
    finally:
        if schema is not None:
            _drop_schema(args.postgres, schema)


def _markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [f"Command: `{result['command']}`", "",
             f"Machine: {result['machine']}; load average at the end {result['load_end']:.2f}", "",
             f"Model: `coldbrew fit` on the full data ({result['model']['events']:,} events,"
             f" {result['model']['items']:,} items); service `coldbrew serve --model MODEL --db URL`"
             f" (server process + scoring process); client: asyncio keep-alive HTTP/1.1 on loopback, in a third"
             f" process on the same 2 cores, closed loop (each client sends its next request when the last is"
             f" answered). Wall time of the whole command: {result['wall_s'] / 60:.1f} min.", "",
             f"Mix per request: {cfg['mix'][0]:.0%} `GET /v1/users/{{id}}/recommendations?k={cfg['k']}` (a shopper of"
             f" the {cfg['events']:,} ingested events, uniform), {cfg['mix'][1]:.0%} `POST /v1/events` with"
             f" {cfg['batch']} events (acknowledged after the store's COMMIT), {cfg['mix'][2]:.0%} `POST /v1/items`"
             f" (one new product: unique ID, a catalog title plus a variant word). {cfg['warmup']:.0f} s warm-up,"
             f" then {cfg['duration']:.0f} s measured, fresh server and database per row; latencies are those seen"
             f" by the client. Memory: RSS of the server's process tree (server + scoring process), sampled every"
             f" second over the measured window.", "",
             f"CPU share: the service's process tree used {min(f['service_cores'] for f in result['runs']):.2f}–"
             f"{max(f['service_cores'] for f in result['runs']):.2f} of the 2 cores on average (CPU time / wall time);"
             f" with the machine's load average at {result['machine'].split('load average at start ')[-1].split(' ')[0]}"
             f" → {result['load_end']:.2f}, the rest went to other jobs, so the latencies are those of a service short of"
             f" CPU; \"ms per request\" below (CPU time per request) depends less on that.", "",
             "| traffic | store | clients | recommendations p50 / p99 / p99.9 | events POST p50 / p99 / p99.9 |"
             " new product p50 / p99 / p99.9 | requests/s (rec / events / items) | durable events/s (mixed) |"
             " non-2xx | RSS start → end (max) | RSS slope | ingestion, batches of 1000 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in result["runs"]:
        o, m = f["ops"], f["memory"]

        lat = {name: f"{x['p50_ms']:.1f} / {x['p99_ms']:.1f} / {x['p999_ms']:.1f} ms" if x["ok"] else "–"
               for name, x in o.items()}
        lines.append(
            f"| {f.get('traffic', 'mixed')} | {f['store']} | {f['clients']} | {lat['recommend']} | {lat['events']} | {lat['items']} |"
            f" {f['requests_per_s']:,.0f} ({o['recommend']['req_per_s']:,.0f} / {o['events']['req_per_s']:,.0f} /"
            f" {o['items']['req_per_s']:,.1f}) | {o['events']['events_per_s']:,.0f} | {f['non_2xx']} |"
            f" {m['start_mb']:,.0f} → {m['end_mb']:,.0f} MB ({m['max_mb']:,.0f}) | {m['slope_mb_per_min']:+.2f} MB/min |"
            f" {f['ingest']['events_per_s']:,.0f} events/s |")
    lines += ["", "Per run: durability check after the server stopped (every acknowledged event and product in the"
              " store), CPU, catalog growth:", ""]
    for f in result["runs"]:
        d = f["durability"]
        added = f["healthz_after"].get("items", 0) - f["healthz_before"].get("items", 0)
        minutes = (f["warmup_s"] + f["duration_s"]) / 60
        per_product = (f"{1000 * f['memory']['slope_mb_per_min'] * minutes / added:+.0f} MB per 1,000 products added"
                       if added else "n/a (no products added)")
        lines.append(
            f"* {f.get('traffic', 'mixed')}, {f['store']} × {f['clients']}: {d['acked_events']:,} events acknowledged (warm-up included),"
            f" {d['missing_events']} missing from the store; {d['acked_items']:,} products acknowledged,"
            f" {d['missing_items']} missing; catalog {f['healthz_before'].get('items', '?'):,} →"
            f" {f['healthz_after'].get('items', '?'):,} items (+{added:,}); RSS slope"
            f" {per_product}; service CPU {f['service_cores']:.2f} of the 2 cores"
            f" ({1000 * f['service_cores'] / max(f['requests_per_s'], 1e-9):.1f} ms per request, server + scoring"
            f" process), load client {f['client_cores']:.2f} cores; answers by status:"
            f" {', '.join(f'{n} ' + json.dumps(f['ops'][n]['status']) for n in OPS)}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mixed", action="store_true", help="accepted for `run_service.py --mixed` (this is the mixed mode)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/coldbrew_load_work"),
                        help="where the model (fitted once, then reused) and the databases go")
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--duration", type=float, default=120.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of the same traffic before measuring")
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--postgres", default=DEFAULT_PG)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--batch", type=int, default=50, help="events per POST /v1/events in the mixed traffic")
    parser.add_argument("--mix", type=float, nargs=3, default=list(DEFAULT_MIX), metavar=("REC", "EVENTS", "ITEMS"))
    parser.add_argument("--events", type=int, default=100_000, help="events ingested first (and drawn from)")
    parser.add_argument("--ingest-batch", type=int, default=1000, help="events per POST in the ingestion phase")
    parser.add_argument("--baseline", type=int, nargs="*", default=[8], metavar="CLIENTS",
                        help="also run recommendations only (SQLite) at these client counts, for a same-day"
                        " comparison (none: skip)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "load_mixed")
    parser.add_argument("--render", action="store_true",
                        help="only write OUT.md again from an existing OUT.json (no measurement)")
    args = parser.parse_args(argv)
    wall = time.perf_counter()
    if args.render:
        result = json.loads(Path(f"{args.out}.json").read_text(encoding="utf-8"))
        text = _markdown(result) + "".join(f"\n{s}: not measured ({why})\n" for s, why in result["skipped"].items())
        Path(f"{args.out}.md").write_text(text, encoding="utf-8")
        print(text)
        return 0

    from coldbrew.data import load_catalog, load_events

    if not (args.data / "interactions.csv.gz").is_file():
        raise SystemExit(f"{args.data}/interactions.csv.gz not found (pass --data)")
    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = args.work / "model"
    log = args.work / "serve.log"
    machine = _machine()
    if not (model_dir / "manifest.json").is_file():
        import subprocess

        print(f"fitting the full model into {model_dir} ...", file=sys.stderr, flush=True)
        subprocess.run([str(Path(sys.executable).with_name("coldbrew")), "fit", "--catalog", str(args.data / "items.csv.gz"),
                        "--events", str(args.data / "interactions.csv.gz"), "--out", str(model_dir)], check=True)
    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    runs, skipped = [], {}
    for store in args.stores:
        if store == "postgres":
            problem = _postgres_reachable(args.postgres)
            if problem:
                skipped[store] = problem
                print(f"PostgreSQL skipped: {problem}", file=sys.stderr)
                continue
        for clients in args.clients:
            runs.append(_one(args, model_dir, log, events, catalog, store, clients))
    if "sqlite" in args.stores:
        for clients in args.baseline:
            runs.append(_one(args, model_dir, log, events, catalog, "sqlite", clients, (1.0, 0.0, 0.0),
                             "recommendations only"))
    script = Path(sys.argv[0]).name if Path(sys.argv[0]).name.startswith("run_") else "run_load.py"
    command = f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": command.strip(), "machine": machine, "load_end": os.getloadavg()[0],
              "wall_s": time.perf_counter() - wall,
              "model": {"events": len(events), "items": len(catalog)},
              "config": {"mix": args.mix, "k": args.k, "batch": args.batch, "duration": args.duration,
                         "warmup": args.warmup, "events": args.events, "ingest_batch": args.ingest_batch,
                         "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset")},
              "skipped": skipped, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    text = _markdown(result)
    if skipped:
        text += "".join(f"\n{s}: not measured ({why})\n" for s, why in skipped.items())
    Path(f"{args.out}.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
