"""Load benchmark of ``coldbrew serve`` on the full uci_online_retail model, over loopback.

    python benchmarks/run_service.py [--data ../shared/data/uci_online_retail] [--work DIR]
        [--requests 3000] [--concurrency 1 8] [--events 100000] [--batch 1000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--trials 15] [--repeats 3]

The service runs as its own process (``coldbrew serve``, the real command); this process
drives it with a small asyncio HTTP/1.1 client (keep-alive connections, one per simulated
client, a few microseconds of client work per request so the client does not steal the
service's CPU). Measured, medians where repeated:

* ingestion: the shop's events (real users and items, the most recent ``--events`` of them)
  posted in batches of ``--batch`` by 4 clients, each acknowledged only once stored durably,
  into SQLite (the default store) and PostgreSQL (``?schema=`` a schema of its own, dropped
  afterwards); events/s = events / wall time;
* recommendations: ``GET /v1/users/{id}/recommendations?k=20`` for real shoppers of the
  ingested events (uniformly drawn), at 1 and 8 concurrent clients: p50 / p99 latency seen
  by the client and throughput; with the scoring process (``serve``'s default on 2+ cores)
  and, as the baseline on the same store, scored inside the server process;
* new item visibility: a new product is posted (``POST /v1/items``) with the text of a
  shopper's favourite product and a category of its own; the time from sending the POST to
  the first answer of that shopper's recommendations for that category (polled back to
  back) that contains it; and where it ranks in the shopper's unfiltered list.

``--mixed`` runs the mixed-traffic load instead (``benchmarks/run_load.py``, which takes
the arguments then: ``--mixed --clients 8 32 --duration 120``).

The whole round runs ``--repeats`` times on fresh servers and databases; the table gives the
median of each figure and every run's value. Writes it to
``benchmarks/results/service_uci.md`` and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import numpy as np

from coldbrew.data import load_catalog, load_events

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "uci_online_retail"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


# ---------------------------------------------------------------------- a tiny HTTP client
class Connection:
    """One keep-alive HTTP/1.1 connection; ``request`` returns (status, body bytes)."""

    def __init__(self, host: str, port: int, api_key: str | None = None) -> None:
        self.host, self.port = host, port
        self.extra = f"X-API-Key: {api_key}\r\n" if api_key else ""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    async def request(self, method: str, path: str, body: object | None = None) -> tuple[int, bytes]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.extra}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        if self.writer is None or self.reader is None:
            raise RuntimeError("the connection is not open: call open() first")
        self.writer.write(head.encode() + b"\r\n" + payload)
        status = int((await self.reader.readline()).split()[1])
        length, chunked = 0, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if not chunked:
            return status, await self.reader.readexactly(length)
        parts = []
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            if size == 0:
                await self.reader.readline()
                return status, b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readline()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except ConnectionError:
                pass


async def _drive(port: int, calls: list[tuple[str, str, object | None]], concurrency: int,
                 api_key: str | None) -> tuple[np.ndarray, float, list[bytes]]:
    """Run ``calls`` (method, path, body) with ``concurrency`` clients sharing one queue.

    Returns per-call latencies in seconds (float64, in completion order), the wall time, and
    the bodies of failed calls (status >= 300).
    """
    connections = [await Connection("127.0.0.1", port, api_key).open() for _ in range(concurrency)]
    latencies: list[float] = []
    failures: list[bytes] = []
    position = 0

    async def client(conn: Connection) -> None:
        nonlocal position
        while position < len(calls):
            method, path, body = calls[position]
            position += 1
            started = time.perf_counter()
            status, answer = await conn.request(method, path, body)
            latencies.append(time.perf_counter() - started)
            if status >= 300:
                failures.append(f"{status} {method} {path}: ".encode() + answer[:300])

    started = time.perf_counter()
    await asyncio.gather(*(client(c) for c in connections))
    wall = time.perf_counter() - started
    for c in connections:
        await c.close()
    return np.asarray(latencies), wall, failures


def drive(port: int, calls: list[tuple[str, str, object | None]], concurrency: int,
          api_key: str | None = None) -> tuple[np.ndarray, float]:
    latencies, wall, failures = asyncio.run(_drive(port, calls, concurrency, api_key))
    if failures:
        raise SystemExit(f"{len(failures)} of {len(calls)} calls failed, e.g. {failures[0].decode(errors='replace')}")
    return latencies, wall


# ---------------------------------------------------------------------- the service process
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``coldbrew serve`` in its own process, stopped with SIGTERM (SIGKILL after 20 s)."""

    def __init__(self, model_dir: Path, db_url: str, log: Path, extra: list[str] = ()) -> None:
        self.port = _free_port()
        command = [str(Path(sys.executable).with_name("coldbrew")), "serve", "--model", str(model_dir),
                   "--db", db_url, "--host", "127.0.0.1", "--port", str(self.port), *extra]
        self.command = command
        self.log = log.open("ab")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"coldbrew serve exited with {self.process.returncode}; see {log}")
            try:
                status, body = asyncio.run(_get(self.port, "/healthz"))
                # Ready once the scoring process (when on) has loaded its replica.
                if status == 200 and json.loads(body).get("scoring_process") != "starting":
                    self.scoring = json.loads(body).get("scoring_process")
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"coldbrew serve did not answer /healthz within 300 s; see {log}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the service process and its children (the scoring process)
        have used so far (from /proc)."""
        pids = [self.process.pid]
        try:
            pids += [int(p) for p in Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()]
        except OSError:
            pass
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def get(self, path: str) -> dict:
        status, body = asyncio.run(_get(self.port, path))
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


async def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = await Connection("127.0.0.1", port).open()
    try:
        return await conn.request("GET", path)
    finally:
        await conn.close()


# ---------------------------------------------------------------------- measurements
def _event_batches(events, n: int, batch: int, user_prefix: str = "") -> list[tuple[str, str, object]]:
    """The most recent ``n`` events, in time order, as POST /v1/events batches."""
    order = np.argsort(events.timestamps, kind="stable")[-n:]
    rows = [{"user_id": user_prefix + str(events.user_ids[i]), "item_id": str(events.item_ids[i]),
             "timestamp": int(events.timestamps[i]), "event": str(events.events[i]),
             "value": float(events.values[i])} for i in order]
    return [("POST", "/v1/events", {"events": rows[s:s + batch]}) for s in range(0, len(rows), batch)]


def ingest(service: Service, batches: list[tuple[str, str, object]], clients: int = 4) -> dict[str, float]:
    n = sum(len(body["events"]) for _, _, body in batches)
    cpu = service.cpu_seconds()
    latencies, wall = drive(service.port, batches, clients)
    cpu = service.cpu_seconds() - cpu
    return {"events": n, "wall_s": wall, "events_per_s": n / wall, "cpu_us_per_event": 1e6 * cpu / n,
            "batch_p50_ms": 1000 * float(np.median(latencies)),
            "batch_p99_ms": 1000 * float(np.percentile(latencies, 99))}


def recommend_load(service: Service, users: list[str], n: int, concurrency: int, k: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    calls = [("GET", f"/v1/users/{quote(users[u], safe='')}/recommendations?k={k}", None) for u in rng.integers(0, len(users), n)]
    # Check the answers once: k items each, for real shoppers.
    sample = service.get(calls[0][1])
    if len(sample["items"]) != k:
        raise SystemExit(f"expected {k} recommendations, got {len(sample['items'])}: {sample}")
    cpu, client_cpu = service.cpu_seconds(), time.process_time()
    latencies, wall = drive(service.port, calls, concurrency)
    cpu, client_cpu = service.cpu_seconds() - cpu, time.process_time() - client_cpu
    return {"requests": n, "cpu_ms_per_request": 1000 * cpu / n, "client_cpu_ms_per_request": 1000 * client_cpu / n,
            "p50_ms": 1000 * float(np.median(latencies)), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
            "req_per_s": n / wall}


async def _new_item_trial(port: int, user: str, anchor: dict, trial: int, k: int,
                          timeout_s: float) -> tuple[float, int, str]:
    """Seconds from sending POST /v1/items to the first answer of ``user``'s list containing it.

    The product gets a category of its own and the list asks for that category (a "new
    arrivals" shelf), so what is timed is how soon the service ranks it, not whether the model
    ranks a product without any sale above the shop's best sellers.
    """
    conn = await Connection("127.0.0.1", port).open()
    try:
        item_id = f"bench-new-{trial}-{uuid.uuid4().hex[:8]}"
        category = f"New arrivals > bench {uuid.uuid4().hex[:8]}"
        item = {"item_id": item_id, "title": f"{anchor['title']} NEW EDITION", "category": category,
                "price": anchor.get("price")}
        path = f"/v1/users/{quote(user, safe='')}/recommendations?k={k}&category={quote(category, safe='')}"
        started = time.perf_counter()
        status, body = await conn.request("POST", "/v1/items", item)
        if status >= 300:
            raise SystemExit(f"POST /v1/items: {status} {body[:300]!r}")
        polls = 0
        while time.perf_counter() - started < timeout_s:
            status, body = await conn.request("GET", path)
            polls += 1
            if status == 200 and any(i["item_id"] == item_id for i in json.loads(body)["items"]):
                return time.perf_counter() - started, polls, item_id
        return float("nan"), polls, item_id
    finally:
        await conn.close()


def new_item_visibility(service: Service, user: str, anchor: dict, trials: int, k: int) -> dict[str, float]:
    times, polls = [], []
    for t in range(trials):
        seconds, n, item_id = asyncio.run(_new_item_trial(service.port, user, anchor, t, k, timeout_s=5.0))
        times.append(seconds)
        polls.append(n)
    # Where the last one ranks for the same shopper without the category filter.
    answer = service.get(f"/v1/users/{quote(user, safe='')}/recommendations?k=1000")
    ranked = [i["item_id"] for i in answer["items"]]
    seen = [s for s in times if s == s]
    return {"trials": trials, "visible": len(seen),
            "median_ms": 1000 * statistics.median(seen) if seen else float("nan"),
            "max_ms": 1000 * max(seen) if seen else float("nan"),
            "median_polls": statistics.median(polls),
            "unfiltered_rank": ranked.index(item_id) + 1 if item_id in ranked else None}


def _shopper_and_anchor(service: Service, events, catalog) -> tuple[str, dict]:
    """A recent shopper with a clear favourite product (bought most often), and that product."""
    order = np.argsort(events.timestamps, kind="stable")
    counts: dict[tuple[str, str], int] = {}
    for i in order[-50_000:]:
        key = (str(events.user_ids[i]), str(events.item_ids[i]))
        counts[key] = counts.get(key, 0) + 1
    (user, item), _ = max(counts.items(), key=lambda kv: kv[1])
    return user, service.get(f"/v1/items/{quote(item, safe='')}")


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    load = os.getloadavg()
    return (f"{os.cpu_count()} CPU cores ({model}), {memory / 1024:.0f} GiB, {platform.system()} {platform.release()};"
            f" load average at start {load[0]:.2f} (the machine is shared)")


def _postgres_reachable(url: str) -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'coldbrew[postgres]')"
    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return f"{url} is not reachable ({str(error).strip().splitlines()[0]})"


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

def _run_once(args: argparse.Namespace, model_dir: Path, log: Path, events, catalog) -> dict[str, dict]:
    """One full round on fresh servers and stores: results by phase."""
    n_events = min(args.events, len(events))
    out: dict[str, dict] = {}
    # SQLite: ingestion, then recommendation latency for the shoppers just ingested.
    db = args.work / "events.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    service = Service(model_dir, f"sqlite:///{db}", log)
    try:
        print(f"serving on port {service.port}: {' '.join(service.command)}", file=sys.stderr, flush=True)
        batches = _event_batches(events, n_events, args.batch)
        out["sqlite"] = ingest(service, batches)
        users = sorted({row["user_id"] for _, _, body in batches for row in body["events"]})
        out["scoring"] = {"mode": service.scoring}
        recommend_load(service, users, 200, 1, args.k, seed=99)  # warm-up
        for concurrency in args.concurrency:
            out[f"recommend@{concurrency}"] = {
                **recommend_load(service, users, args.requests, concurrency, args.k, seed=concurrency),
                "users": len(users)}
        user, anchor = _shopper_and_anchor(service, events, catalog)
        out["new_item"] = {**new_item_visibility(service, user, anchor, args.trials, args.k),
                           "user": user, "anchor": anchor.get("title")}
    finally:
        service.stop()
    if args.compare_in_process:
        # The same store and shoppers, scored inside the server process (the baseline).
        service = Service(model_dir, f"sqlite:///{db}", log, ["--no-scoring-process"])
        try:
            recommend_load(service, users, 200, 1, args.k, seed=99)  # warm-up
            for concurrency in args.concurrency:
                out[f"inprocess@{concurrency}"] = {
                    **recommend_load(service, users, args.requests, concurrency, args.k, seed=concurrency),
                    "users": len(users)}
        finally:
            service.stop()
    # PostgreSQL: ingestion only, into a schema of its own that is dropped afterwards.
    if args.postgres:
        problem = _postgres_reachable(args.postgres)
        if problem:
            out["postgres"] = {"problem": problem}
        else:
            schema = f"coldbrew_bench_{uuid.uuid4().hex[:8]}"
            separator = "&" if "?" in args.postgres else "?"
            service = Service(model_dir, f"{args.postgres}{separator}schema={schema}", log)
            try:
                out["postgres"] = ingest(service, _event_batches(events, n_events, args.batch))
            finally:
                service.stop()
                _drop_schema(args.postgres, schema)
    for phase, values in out.items():
        print(phase, {k: round(v, 2) if isinstance(v, float) else v for k, v in values.items()}, file=sys.stderr, flush=True)
    return out


def _rows(runs: list[dict[str, dict]], args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """Markdown rows: the median of each figure over the runs, each run's value in brackets."""

    def med(phase: str, key: str) -> float:
        values = [v for v in (r[phase].get(key) for r in runs) if v is not None and v == v]  # not NaN
        return statistics.median(values) if values else float("nan")

    def each(phase: str, key: str, fmt: str) -> str:
        return " / ".join(format(r[phase][key], fmt) for r in runs)

    rows = []
    stores = [("sqlite", "SQLite")] + ([("postgres", "PostgreSQL")] if args.postgres else [])
    for phase, name in stores:
        if "problem" in runs[0].get(phase, {}):
            rows.append((f"events ingested durably, {name}", "not measured", runs[0][phase]["problem"]))
            continue
        rows.append((f"events ingested durably, {name} (batches of {args.batch}, 4 clients)",
                     f"{med(phase, 'events_per_s'):,.0f} events/s [{each(phase, 'events_per_s', ',.0f')}]",
                     f"{runs[0][phase]['events']:,} events per run; batch p50 {med(phase, 'batch_p50_ms'):.0f} ms,"
                     f" p99 {med(phase, 'batch_p99_ms'):.0f} ms; service CPU {med(phase, 'cpu_us_per_event'):.0f} µs/event"))
    modes = [("recommend", f"scoring process {runs[0]['scoring']['mode']}")]
    if args.compare_in_process:
        modes.append(("inprocess", "scored in the server process (`--no-scoring-process`)"))
    for prefix, mode in modes:
        for concurrency in args.concurrency:
            phase = f"{prefix}@{concurrency}"
            rows.append((f"recommendations, k={args.k}, {concurrency} concurrent client{'s' if concurrency > 1 else ''},"
                         f" {mode}",
                         f"p50 {med(phase, 'p50_ms'):.1f} ms [{each(phase, 'p50_ms', '.1f')}],"
                         f" p99 {med(phase, 'p99_ms'):.1f} ms [{each(phase, 'p99_ms', '.1f')}]",
                         f"{med(phase, 'req_per_s'):,.0f} requests/s [{each(phase, 'req_per_s', ',.0f')}], {args.requests:,}"
                         f" requests per run over {runs[0][phase]['users']:,} shoppers; service CPU"
                         f"{' (with the scoring process)' if prefix == 'recommend' else ''}"
                         f" {med(phase, 'cpu_ms_per_request'):.1f} ms/request, load client"
                         f" {med(phase, 'client_cpu_ms_per_request'):.2f} ms/request"))
    item = runs[0]["new_item"]
    ranks = {r["new_item"]["unfiltered_rank"] for r in runs}
    rows.append(("new item: POST /v1/items → first appearance in a shopper's recommendations",
                 f"median {med('new_item', 'median_ms'):.0f} ms [{each('new_item', 'median_ms', '.0f')}]"
                 f" (max {max(r['new_item']['max_ms'] for r in runs):.0f} ms)",
                 f"visible in {sum(r['new_item']['visible'] for r in runs)} of {sum(r['new_item']['trials'] for r in runs)}"
                 f" trials, in the list filtered to its category (`&category=`), after a median of"
                 f" {med('new_item', 'median_polls'):.0f} recommendation request(s); shopper {item['user']}, new item"
                 f" titled like '{item['anchor']}'; unfiltered, it ranks"
                 f" {', '.join(str(x) for x in sorted(ranks, key=str)) if ranks != {None} else 'below 1000'} for that shopper"))
    return rows


def main(argv: list[str] | None = None) -> int:
    if "--mixed" in (sys.argv[1:] if argv is None else argv):
        # Mixed traffic (recommendations, event batches, new products) for minutes: run_load.py.
        from run_load import main as mixed

        return mixed(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "coldbrew-bench-service",
                        help="where the model (fitted once, then reused) and the databases go")
    parser.add_argument("--requests", type=int, default=3000, help="recommendation requests per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--events", type=int, default=100_000, help="events ingested per store")
    parser.add_argument("--batch", type=int, default=1000, help="events per POST")
    parser.add_argument("--postgres", default=DEFAULT_PG, help="PostgreSQL URL ('' to skip)")
    parser.add_argument("--trials", type=int, default=15, help="new-item visibility trials")
    parser.add_argument("--compare-in-process", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure recommendations scored inside the server process (the baseline)")
    parser.add_argument("--repeats", type=int, default=3, help="whole runs (fresh servers and stores); medians are reported")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "service_uci.md")
    args = parser.parse_args(argv)

    if not (args.data / "interactions.csv.gz").is_file():
        raise SystemExit(f"{args.data}/interactions.csv.gz not found (pass --data)")
    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = args.work / "model"
    log = args.work / "serve.log"
    machine = _machine()
    coldbrew = str(Path(sys.executable).with_name("coldbrew"))
    if not (model_dir / "manifest.json").is_file():
        print(f"fitting the full model into {model_dir} ...", file=sys.stderr, flush=True)
        subprocess.run([coldbrew, "fit", "--catalog", str(args.data / "items.csv.gz"),
                        "--events", str(args.data / "interactions.csv.gz"), "--out", str(model_dir)], check=True)
    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    runs = []
    for repeat in range(args.repeats):
        print(f"run {repeat + 1} of {args.repeats}", file=sys.stderr, flush=True)
        runs.append(_run_once(args, model_dir, log, events, catalog))
    rows = _rows(runs, args)
    load_end = os.getloadavg()[0]
    command = "python benchmarks/run_service.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"Command: `{command.strip()}`", "", f"Machine: {machine}, at the end {load_end:.2f}", "",
             f"Service: `coldbrew serve --model MODEL --db URL` (the server process and, by default on 2+ cores, its"
             f" scoring process), model fitted with"
             f" `coldbrew fit` on the full data ({len(events):,} events, {len(catalog):,} items); client: asyncio,"
             f" keep-alive HTTP/1.1 on loopback, in a second process on the same machine;"
             f" OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}. \"service CPU\" is the user + system"
             f" CPU time of the service process over the phase, divided by the work done (load-independent).", "",
             f"Each figure is the median over {args.repeats} runs (fresh server and database each run; every"
             f" run's value in brackets).", "",
             "| measurement | result (median of runs) | details (medians) |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
