"""Crash safety and database faults of ``coldbrew serve`` (issue #21, parts 2 and 3).

    python benchmarks/run_crash.py [--kills 20] [--db sqlite postgres]
        [--cases events items retrain erase] [--db-fault | --no-db-fault] [--outage 5]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--work DIR] [--seed 0]
        [--scoring-process]

**Crash cases.** For each database and case, a real ``coldbrew serve`` process (the small
demo model, ``hashing`` encoder, fitted once into ``--work``; ``--no-scoring-process`` so a
start takes about two seconds) is killed with SIGKILL at a random moment of a workload, then
started again on the same model directory and database, and checked:

* ``events``: three clients stream event batches (1 to 6 events, each batch with
  timestamps of its own). Every acknowledged (200) batch is stored whole; a batch in flight
  at the kill is stored whole or not at all; nothing else appears; the restarted service
  counts the events of a user as the store does.
* ``items``: three clients each own a few products (new ones and demo ones) and POST (1 to 3
  products per request), PATCH and DELETE them. After the restart every product is as its
  last acknowledged write left it (``GET /v1/items/{id}``; 404 for deleted), except the one
  request each client had in flight: its products are all as before or all as after it.
* ``retrain``: ``POST /v1/models/retrain`` and the kill somewhere in the retrain (half of the
  kills while the model is fitted, in the first 80 % of a retrain's time; half from the
  moment the fitted version is complete on disk to 1.6 s later: while it is loaded, warmed
  up, recorded, swapped in, old versions pruned) while a client polls ``GET /v1/models`` and
  asks for recommendations. After the
  restart the active version is not older than any version a client saw active, it loads
  and serves recommendations, no half-written version directory is left, no fit process
  outlived the server, and a retrain after the crash succeeds (each round's, and a last one
  that is not interrupted).
* ``erase``: 60 users with events (and an onboarding profile for a third of them) are
  erased (``DELETE /v1/users/{id}``) by two clients. An acknowledged erasure removed every
  event and the profile; one in flight removed all or nothing; the others are intact.

Any deviation is a violation (there must be none). ``orphans`` counts processes of the
killed server still alive 3 s after the kill.

**Database faults** (``--db-fault``, PostgreSQL): under traffic (two clients posting event
batches, one asking recommendations and reading a product), the PostgreSQL server is
stopped for ``--outage`` seconds (``pg_ctlcluster ... stop -m fast``, always started again)
and, separately, the service's sessions are terminated (``pg_terminate_backend``, scoped to
the service's ``application_name``). Reported: requests during the outage by status (writes
and reads that need the database must get 503 with ``Retry-After`` and the JSON error
shape; reads served from memory may answer 200), seconds until the first acknowledged write
after PostgreSQL is back (no restart of the service), acknowledged events lost (must be 0).

Writes ``benchmarks/results/crash.json`` and prints a markdown table. The checker functions
are imported by ``tests/service/test_crash_safety.py`` and ``tests/service/test_db_faults.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "crash.json"
PG_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")
CASES = ("events", "items", "retrain", "erase")
BASE_TS = 1_700_000_000


# ---------------------------------------------------------------------- the model
def build_model(root: Path) -> tuple[Path, Path]:
    """A demo-shop model (``root/model``) and the events it was fitted on (``root/events.csv``),
    fitted like ``tests/service/conftest.py``'s ``demo_model_dir``; reused when present."""
    model_dir, events_csv = root / "model", root / "events.csv"
    if (model_dir / "manifest.json").is_file() and events_csv.is_file():
        return model_dir, events_csv
    from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
    from coldbrew.data import load_catalog
    from coldbrew.data.events import events_from_frame
    from coldbrew.demo import demo_events, demo_paths
    from coldbrew.pipeline import Recommender
    from coldbrew.storage import save_model

    catalog, _ = load_catalog(demo_paths()[0])
    frame = demo_events(list(catalog.item_ids))
    events, _ = events_from_frame(frame)
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))
    model = Recommender(config).fit(catalog, events, progress=False)
    root.mkdir(parents=True, exist_ok=True)
    frame.drop(columns=["taste"]).to_csv(events_csv, index=False)
    save_model(model, model_dir)
    return model_dir, events_csv


# ---------------------------------------------------------------------- databases
def reachable_pg(urls: tuple[str, ...] = PG_URLS) -> str | None:
    """The first PostgreSQL URL that accepts a connection, or ``None``."""
    try:
        import psycopg
    except ImportError:
        return None
    for url in urls:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.OperationalError:
            continue
    return None


class Database:
    """Direct access to a service's store for the checks (``sqlite:///...`` or a PostgreSQL
    URL with ``?schema=``). SQL is written with ``?`` placeholders."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            self.kind = "sqlite"
            self.path = Path(url[len("sqlite:///"):])
        else:
            self.kind = "postgres"
            parts = urlsplit(url)
            query = parse_qs(parts.query)
            self.schema = query.pop("schema", ["public"])[-1]
            self.conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                return conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        import psycopg

        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"')
            return conn.execute(sql.replace("?", "%s"), params).fetchall()

    def drop(self) -> None:
        if self.kind == "postgres" and self.schema != "public":
            import psycopg

            with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def pg_store_url(pg_base: str, label: str) -> tuple[str, str]:
    """``(URL with a fresh schema and an application_name of its own, that name)``."""
    tag = uuid.uuid4().hex[:10]
    app = f"coldbrew-crash-{tag}"
    return f"{pg_base}?schema=crash_{label}_{tag}&application_name={app}", app


# ---------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid`` (Linux ``/proc``; [] elsewhere)."""
    out = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            out.append(int(entry.name))
    return out


class Server:
    """One ``coldbrew serve`` process (its own session, so leftovers can be found and ended).

    ``SCORING``: start it with its scoring process (``--scoring-process``, the default of
    ``serve`` on two cores or more) instead of ``--no-scoring-process`` (a lighter start).
    """

    SCORING = False

    def __init__(self, model_dir: Path, db_url: str, log_path: Path, extra: tuple[str, ...] = (),
                 wrapper: tuple[str, ...] = ()) -> None:
        self.model_dir = Path(model_dir)
        self.db_url = db_url
        self.log_path = Path(log_path)
        self.extra = tuple(extra)
        self.wrapper = tuple(wrapper)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, seed_events: Path | None = None, timeout: float = 120.0) -> Server:
        self.port = free_port()
        argv = [*self.wrapper, sys.executable, "-m", "coldbrew.cli", "serve", "--model", str(self.model_dir),
                "--port", str(self.port), "--db", self.db_url, "--log-level", "warning",
                "--scoring-process" if self.SCORING else "--no-scoring-process", *self.extra]
        if seed_events is not None:
            argv += ["--events", str(seed_events)]
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self, grace: float = 3.0) -> int:
        """SIGKILL the server process (only it, as a crash would); returns how many of its
        processes (fit, scoring process) were still alive ``grace`` seconds later (then ended).
        A scoring process caught loading its model takes about a second to notice."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + grace
        while (left := session_members(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._end_session()
        return len(left)

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._end_session()

    def _end_session(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def client(server: Server, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(base_url=server.base, timeout=timeout)


# ---------------------------------------------------------------------- results
@dataclass
class CaseResult:
    case: str
    db: str
    kills: int = 0
    checked: int = 0
    violations: list[str] = field(default_factory=list)
    orphans: int = 0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    def violate(self, message: str) -> None:
        self.violations.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case, "db": self.db, "kills": self.kills, "acknowledged_checked": self.checked,
                "violations": len(self.violations), "violation_examples": self.violations[:10],
                "orphans": self.orphans, "seconds": round(self.seconds, 1), **self.notes}


@dataclass
class Context:
    """What a case needs: the server factory, the database, the seeded events file."""

    model_dir: Path
    db_url: str
    db: Database
    log_path: Path
    events_csv: Path
    rng: random.Random

    def server(self) -> Server:
        return Server(self.model_dir, self.db_url, self.log_path)


def _start_threads(target: Any, n: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=(w,), daemon=True) for w in range(n)]
    for t in threads:
        t.start()
    return threads


def spare_items(server: Server, n: int = 20) -> list[str]:
    """The last ``n`` products of the catalog: the items case (which owns the first few
    demo products and may delete them) never touches these."""
    with client(server) as http:
        items = [i["item_id"] for i in http.get("/v1/items", params={"limit": 500}).json()["items"]]
    return items[-n:]


# ---------------------------------------------------------------------- case: events
class EventsCase:
    """Event batches streamed by three clients; a batch is all or nothing.

    Batch ``n`` of client ``w`` goes to one of 8 users of that client, with timestamps of
    its own (``BASE_TS + 10 n + j``), so each stored event tells which batch it came from.
    ``pace_s``: a pause between a client's batches (0: as fast as the server answers).
    """

    name = "events"
    seed = False
    writers = 3

    def __init__(self, pace_s: float = 0.0) -> None:
        self.pace_s = pace_s

    def setup(self, ctx: Context, server: Server, result: CaseResult) -> None:
        self.items = spare_items(server)

    def delay(self, ctx: Context, k: int) -> float:
        return ctx.rng.uniform(0.15, 1.0)

    def begin(self, ctx: Context, server: Server, k: int, result: CaseResult, window: float) -> dict[str, Any]:
        tag = f"r{k:03d}"
        data: dict[str, Any] = {"tag": tag, "attempts": {}, "acked": []}
        attempts, acked = data["attempts"], data["acked"]
        lock = threading.Lock()

        def write(w: int) -> None:
            with client(server) as http:
                for n in itertools.count():
                    user = f"{tag}-w{w}-{n % 8}"
                    size = 1 + (n * 7 + w) % 6
                    batch = [{"user_id": user, "item_id": self.items[(n + j) % len(self.items)],
                              "timestamp": BASE_TS + 10 * n + j, "event": "view"} for j in range(size)]
                    key = (user, n)
                    with lock:
                        attempts[key] = sorted((e["item_id"], e["timestamp"]) for e in batch)
                    try:
                        r = http.post("/v1/events", json={"events": batch})
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        with lock:
                            acked.append(key)
                    else:
                        result.violate(f"events: batch answered {r.status_code}: {r.text[:200]}")
                    time.sleep(self.pace_s)

        data["threads"] = _start_threads(write, self.writers)
        return data

    def check(self, ctx: Context, server: Server, data: dict[str, Any], result: CaseResult) -> None:
        rows = ctx.db.rows("SELECT user_id, item_id, ts FROM events WHERE user_id LIKE ?", (data["tag"] + "-%",))
        stored: dict[tuple[str, int], list[tuple[str, int]]] = defaultdict(list)
        for user, item, ts in rows:
            stored[(user, (int(ts) - BASE_TS) // 10)].append((item, int(ts)))
        acked = set(data["acked"])
        for key, want in data["attempts"].items():
            got = sorted(stored.get(key, []))
            if key in acked:
                result.checked += 1
                if got != want:
                    result.violate(f"events: acknowledged batch {key} has {len(got)}/{len(want)} events")
            elif got and got != want:
                result.violate(f"events: unacknowledged batch {key} stored in part ({len(got)}/{len(want)})")
        for key in set(stored) - set(data["attempts"]):
            result.violate(f"events: {len(stored[key])} events of batch {key}, never sent")
        if data["acked"]:  # and the restarted service sees them
            user = data["acked"][-1][0]
            want = sum(len(stored[key]) for key in stored if key[0] == user)
            with client(server) as http:
                profile = http.get(f"/v1/users/{user}/profile").json()
            if profile.get("events") != want:
                result.violate(f"events: the restarted service counts {profile.get('events')} events of"
                               f" {user}, the store {want}")


# ---------------------------------------------------------------------- case: items
_ITEM_FIELDS = ("title", "description", "category", "brand", "price", "tags", "in_stock")


def _item_state(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body.get(k) for k in _ITEM_FIELDS}


class ItemsCase:
    """Product posts (1 to 3 per request), patches and deletes by three clients, each on
    products of its own; each request is all or nothing."""

    name = "items"
    seed = False
    writers = 3

    def __init__(self, pace_s: float = 0.0) -> None:
        self.pace_s = pace_s

    def setup(self, ctx: Context, server: Server, result: CaseResult) -> None:
        with client(server) as http:
            base = [i["item_id"] for i in http.get("/v1/items", params={"limit": 100}).json()["items"]]
            self.owned = {w: [f"x{w}-{j}" for j in range(5)] + base[3 * w: 3 * w + 3] for w in range(self.writers)}
            self.expected: dict[str, dict[str, Any] | None] = {}
            for items in self.owned.values():
                for item in items:
                    r = http.get(f"/v1/items/{item}")
                    self.expected[item] = _item_state(r.json()) if r.status_code == 200 else None

    def _post_body(self, r: random.Random, items: list[str], k: int) -> tuple[dict, dict[str, dict]]:
        bodies, states = [], {}
        for item in items:
            body = {"item_id": item, "title": f"{item} title {k}-{r.randrange(10_000)}",
                    "description": f"made in round {k}", "category": r.choice(["Tea", "Kitchen", "Garden"]),
                    "brand": r.choice(["Acme", "Brewco", ""]), "price": round(r.uniform(1, 80), 2),
                    "tags": [r.choice(["green", "blue", "gift"])], "in_stock": r.random() < 0.8}
            bodies.append(body)
            states[item] = _item_state(body)
        return ({"items": bodies} if len(bodies) > 1 else bodies[0]), states

    def delay(self, ctx: Context, k: int) -> float:
        return ctx.rng.uniform(0.2, 1.2)

    def begin(self, ctx: Context, server: Server, k: int, result: CaseResult, window: float) -> dict[str, Any]:
        data: dict[str, Any] = {"inflight": {}, "ops": Counter()}
        inflight, acked = data["inflight"], data["ops"]
        seed = ctx.rng.randrange(1 << 30)

        def write(w: int) -> None:
            r = random.Random(seed + w)
            owned = self.owned[w]
            with client(server) as http:
                while True:
                    item = r.choice(owned)
                    current = self.expected[item]
                    choice = r.random()
                    if current is None or choice < 0.35:
                        batch = [item] + r.sample([i for i in owned if i != item], r.randrange(0, 3))
                        body, states = self._post_body(r, batch, k)
                        op = ("POST", "/v1/items", body)
                    elif choice < 0.75:
                        changes = {"price": round(r.uniform(1, 80), 2)}
                        if r.random() < 0.5:
                            changes["in_stock"] = not current["in_stock"]
                        if r.random() < 0.3:
                            changes["title"] = f"{item} patched {k}-{r.randrange(10_000)}"
                        states = {item: {**current, **changes}}
                        op = ("PATCH", f"/v1/items/{item}", changes)
                    else:
                        states = {item: None}
                        op = ("DELETE", f"/v1/items/{item}", None)
                    inflight[w] = states
                    try:
                        resp = http.request(op[0], op[1], json=op[2])
                    except httpx.HTTPError:
                        return  # the server is gone: this request is in flight
                    del inflight[w]
                    if resp.status_code in (200, 201):
                        self.expected.update(states)
                        acked[op[0]] += 1
                    else:
                        result.violate(f"items: {op[0]} {op[1]} answered {resp.status_code}: {resp.text[:200]}")
                        return
                    time.sleep(self.pace_s)

        data["threads"] = _start_threads(write, self.writers)
        return data

    def check(self, ctx: Context, server: Server, data: dict[str, Any], result: CaseResult) -> None:
        actual: dict[str, dict[str, Any] | None] = {}
        with client(server) as http:
            for item in self.expected:
                r = http.get(f"/v1/items/{item}")
                if r.status_code == 200:
                    actual[item] = _item_state(r.json())
                elif r.status_code == 404:
                    actual[item] = None
                else:
                    result.violate(f"items: GET {item} answered {r.status_code} after the restart")
                    actual[item] = self.expected[item]
        pending = {item for states in data["inflight"].values() for item in states}
        for item, want in self.expected.items():
            if item not in pending and actual[item] != want:
                result.violate(f"items: {item} is {actual[item]}, its last acknowledged write left {want}")
        for w, states in data["inflight"].items():
            before = all(actual[i] == self.expected[i] for i in states)
            after = all(actual[i] == s for i, s in states.items())
            if not (before or after):
                result.violate(f"items: the request in flight of client {w} ({sorted(states)}) was applied in part")
            for item in states:  # the restarted service is the truth from now on
                self.expected[item] = actual[item]
        result.checked += sum(data["ops"].values())
        result.notes.setdefault("ops", Counter()).update(data["ops"])


# ---------------------------------------------------------------------- case: retrain
def _vnum(version: str) -> int:
    return int(version[1:]) if version[1:].isdigit() else -1


class RetrainCase:
    """A retrain killed while it trains or swaps the new version in."""

    name = "retrain"
    seed = True  # a retrain needs events in the store

    def __init__(self, expected_s: float | None = None, last_retrain: bool = True) -> None:
        """``expected_s``: how long a retrain takes (default: time one first, not killed);
        ``last_retrain``: end with one retrain that is not killed, which must be served."""
        self.expected_s = expected_s
        self.last_retrain = last_retrain

    def _retrain(self, server: Server, timeout: float = 180.0) -> tuple[str, float, dict]:
        started = time.monotonic()
        with client(server) as http:
            job = http.post("/v1/models/retrain").json()
            while time.monotonic() - started < timeout:
                models = http.get("/v1/models").json()
                entry = {v["version"]: v for v in models["versions"]}.get(job["version"], {})
                if models["active"] == job["version"] or entry.get("status") in ("failed", "removed"):
                    return job["version"], time.monotonic() - started, models
                time.sleep(0.05)
        raise RuntimeError("retrain did not finish")

    def setup(self, ctx: Context, server: Server, result: CaseResult) -> None:
        self.active = "v0"
        if self.expected_s is None:  # one retrain not interrupted, to time the kills
            version, seconds, models = self._retrain(server)
            if models["active"] != version:
                result.violate(f"retrain: the first retrain did not finish: {models}")
            self.active, self.expected_s = models["active"], seconds
        result.notes["retrain_s"] = round(self.expected_s, 2)

    def delay(self, ctx: Context, k: int) -> float:
        """Even rounds: a kill while the model is fitted. Odd rounds: the kill is triggered
        once the fitted version is complete on disk (see ``begin``); this is the nominal time."""
        fraction = ctx.rng.uniform(0.05, 0.8) if k % 2 == 0 else 1.2
        return self.expected_s * fraction

    def begin(self, ctx: Context, server: Server, k: int, result: CaseResult, window: float) -> dict[str, Any]:
        seen: dict[str, Any] = {"active": self.active, "failed": {}, "bad": []}
        data: dict[str, Any] = {"seen": seen, "stop": threading.Event()}
        with client(server) as http:
            r = http.post("/v1/models/retrain")
            if r.status_code != 202:
                result.violate(f"retrain: POST answered {r.status_code}: {r.text[:200]}")
            data["job"] = r.json().get("version", "?")

        def poll(_: int) -> None:
            with client(server) as http:
                while not data["stop"].is_set():
                    try:
                        models = http.get("/v1/models").json()
                        recs = http.get("/v1/users/u000/recommendations", params={"k": 5})
                    except (httpx.HTTPError, ValueError):
                        return
                    if _vnum(models["active"]) > _vnum(seen["active"]):
                        seen["active"] = models["active"]
                    seen["failed"].update({v["version"]: v for v in models["versions"] if v["status"] == "failed"})
                    if recs.status_code != 200:
                        seen["bad"].append(recs.status_code)
                    time.sleep(0.05)

        data["threads"] = _start_threads(poll, 1)
        if k % 2 == 1:
            # Kill between "the fit is written" and a moment after the swap: loading and warming
            # the new version, recording it, swapping it in, pruning old ones (about 1.5 s).
            data["kill_at"] = threading.Event()
            final = ctx.model_dir / "versions" / data["job"] / "manifest.json"
            after = ctx.rng.uniform(0.0, 1.6)
            deadline = time.monotonic() + 3 * self.expected_s + 60

            def watch() -> None:
                while not final.is_file() and time.monotonic() < deadline and not data["stop"].is_set():
                    time.sleep(0.02)
                data["fitted"] = final.is_file()
                time.sleep(after)
                data["kill_at"].set()

            threading.Thread(target=watch, daemon=True).start()
        return data

    def end(self, data: dict[str, Any], result: CaseResult) -> None:
        data["stop"].set()
        if "kill_at" in data:
            del data["kill_at"]
            if data.pop("fitted", False):
                result.notes["killed_after_fit"] = result.notes.get("killed_after_fit", 0) + 1
            else:  # this retrain came after a crash: it must still get its version written
                result.violate(f"retrain: {data['job']} was not written within {3 * self.expected_s + 60:.0f} s")
        for entry in data["seen"]["failed"].values():
            result.violate(f"retrain: version {entry['version']} failed: {entry.get('message')}")
        for status in data["seen"]["bad"]:
            result.violate(f"retrain: a recommendation during the retrain answered {status}")
        data["seen"] = data["seen"]["active"]

    def check(self, ctx: Context, server: Server, data: dict[str, Any], result: CaseResult) -> None:
        with client(server) as http:
            health = http.get("/healthz")
            models = http.get("/v1/models").json()
            recs = http.get("/v1/users/u000/recommendations", params={"k": 5})
        result.checked += 1
        active = models["active"]
        if health.status_code != 200:
            result.violate(f"retrain: /healthz answered {health.status_code} after the restart")
        if _vnum(active) < _vnum(data["seen"]):
            result.violate(f"retrain: {data['seen']} was reported active, the restarted service serves {active}")
        if recs.status_code != 200 or not recs.json().get("items"):
            result.violate(f"retrain: recommendations after the restart: {recs.status_code} {recs.text[:200]}")
        elif recs.json()["model_version"] != active:
            result.violate(f"retrain: recommendations from {recs.json()['model_version']}, active {active}")
        versions = ctx.model_dir / "versions"
        for path in versions.iterdir() if versions.is_dir() else ():
            if path.name.startswith("."):
                if path.is_dir():
                    result.violate(f"retrain: a half-written version {path.name} is left after the restart")
            elif path.is_dir() and not (path / "manifest.json").is_file():
                result.violate(f"retrain: version directory {path.name} has no manifest (half-written or"
                               " half-deleted)")
        registry = versions / "versions.json"
        entries = json.loads(registry.read_text(encoding="utf-8"))["versions"] if registry.is_file() else []
        for entry in entries:
            if entry["version"] != "v0" and entry.get("status") == "ready" \
                    and not (versions / entry["version"] / "manifest.json").is_file():
                result.violate(f"retrain: {entry['version']} is listed as ready, its directory is not complete")
        result.notes.setdefault("killed_after_swap", 0)
        if _vnum(active) >= _vnum(data["job"]):
            result.notes["killed_after_swap"] += 1
        self.active = active

    def finish(self, ctx: Context, server: Server, result: CaseResult) -> None:
        """A retrain after all those crashes finishes and is served."""
        if not self.last_retrain:
            return
        version, _, models = self._retrain(server)
        if models["active"] != version:
            result.violate(f"retrain: the retrain after the crashes did not finish: {models['versions'][-1]}")
        else:
            with client(server) as http:
                recs = http.get("/v1/users/u000/recommendations", params={"k": 5}).json()
            if recs.get("model_version") != version:
                result.violate(f"retrain: the last retrain is not served: {recs}")


# ---------------------------------------------------------------------- case: erase
class EraseCase:
    """User erasures (events and profile in one transaction) by two clients."""

    name = "erase"
    seed = False
    users = 60

    def setup(self, ctx: Context, server: Server, result: CaseResult) -> None:
        self.items = spare_items(server)

    def delay(self, ctx: Context, k: int) -> float:
        return ctx.rng.uniform(0.0, 0.4)

    def begin(self, ctx: Context, server: Server, k: int, result: CaseResult, window: float) -> dict[str, Any]:
        """Users with events and profiles, then two clients erase them; when the kill comes
        later than a fast erasure stream would last (``window``), erasures are paced to span it."""
        tag = f"e{k:03d}"
        users = {f"{tag}-{i}": 2 + i % 9 for i in range(self.users)}
        profiles = {u for i, u in enumerate(users) if i % 3 == 0}
        with client(server) as http:
            batch = [{"user_id": u, "item_id": self.items[(i + j) % len(self.items)], "timestamp": BASE_TS + j}
                     for i, (u, n) in enumerate(users.items()) for j in range(n)]
            r = http.post("/v1/events", json={"events": batch})
            if r.status_code != 200:
                result.violate(f"erase: the setup batch answered {r.status_code}")
            for u in profiles:
                r = http.post("/v1/onboarding", json={"user_id": u, "text": "green tea and gardening", "k": 1})
                if r.status_code != 200:
                    result.violate(f"erase: onboarding answered {r.status_code}")
        data: dict[str, Any] = {"tag": tag, "users": users, "profiles": profiles, "attempted": set(),
                                "acked": set()}
        order = list(users)
        ctx.rng.shuffle(order)
        pace = 0.0 if window <= 0.4 else window / (self.users / 2) * ctx.rng.uniform(0.6, 1.5)

        def erase(w: int) -> None:
            with client(server) as http:
                for u in order[w::2]:
                    data["attempted"].add(u)
                    try:
                        r = http.delete(f"/v1/users/{u}")
                    except httpx.HTTPError:
                        return
                    if r.status_code != 200:
                        result.violate(f"erase: DELETE {u} answered {r.status_code}")
                        continue
                    data["acked"].add(u)
                    body = r.json()
                    if body["deleted_events"] != users[u] or body["deleted_profile"] != (u in profiles):
                        result.violate(f"erase: DELETE {u} reported {body}, expected {users[u]} events")
                    time.sleep(pace)

        data["threads"] = _start_threads(erase, 2)
        return data

    def check(self, ctx: Context, server: Server, data: dict[str, Any], result: CaseResult) -> None:
        pattern = (data["tag"] + "-%",)
        counts = dict(ctx.db.rows("SELECT user_id, count(*) FROM events WHERE user_id LIKE ? GROUP BY user_id", pattern))
        with_profile = {u for (u,) in ctx.db.rows("SELECT user_id FROM profiles WHERE user_id LIKE ?", pattern)}
        for u, n in data["users"].items():
            state = (int(counts.get(u, 0)), u in with_profile)
            full, empty = (n, u in data["profiles"]), (0, False)
            if u in data["acked"]:
                result.checked += 1
                if state != empty:
                    result.violate(f"erase: {u} was erased (acknowledged) but {state[0]} events, profile {state[1]} remain")
            elif u in data["attempted"]:
                if state not in (full, empty):
                    result.violate(f"erase: the erasure in flight of {u} left {state} of {full}")
            elif state != full:
                result.violate(f"erase: {u} was never erased but has {state} of {full}")
        if data["acked"]:
            u = sorted(data["acked"])[0]
            with client(server) as http:
                profile = http.get(f"/v1/users/{u}/profile").json()
            if profile.get("events") != 0 or profile.get("interests"):
                result.violate(f"erase: the restarted service still knows erased {u}: {profile}")


CASE_TYPES = {"events": EventsCase, "items": ItemsCase, "retrain": RetrainCase, "erase": EraseCase}


def _context(label: str, db_kind: str, work: Path, base_model: Path, events_csv: Path,
             pg_base: str | None, seed: int) -> Context:
    root = work / f"{label}-{db_kind}-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)
    model_dir = Path(shutil.copytree(base_model, root / "model"))
    if db_kind == "sqlite":
        db_url = f"sqlite:///{root / 'events.db'}"
    else:
        if pg_base is None:
            raise RuntimeError("PostgreSQL is not reachable")
        db_url, _ = pg_store_url(pg_base, label)
    return Context(model_dir, db_url, Database(db_url), root / "server.log", events_csv,
                   random.Random(f"{seed}-{label}-{db_kind}"))


def _kill_round(ctx: Context, server: Server, k: int, cases: list[Any], results: list[CaseResult],
                delay: float) -> list[dict[str, Any]]:
    """Start every case's clients, SIGKILL the server after ``delay`` s, wait for the clients.

    A retrain is started last, so that the others' set-up does not eat into its timing."""
    order = sorted(range(len(cases)), key=lambda j: isinstance(cases[j], RetrainCase))
    begun = {j: cases[j].begin(ctx, server, k, results[j], delay) for j in order}
    handles = [begun[j] for j in range(len(cases))]
    triggers = [data["kill_at"] for data in handles if "kill_at" in data]
    if triggers:  # a case picks the moment by what it sees (it sets the event in any case)
        triggers[0].wait(timeout=600)
    else:
        time.sleep(delay)
    orphans = server.kill()
    for case, result, data in zip(cases, results, handles):
        for t in data.pop("threads"):
            t.join(timeout=30)
        if hasattr(case, "end"):
            case.end(data, result)
        result.kills += 1
        result.orphans += orphans
    return handles


def run_cases(cases: list[Any], db_kind: str, kills: int, work: Path, base_model: Path, events_csv: Path,
              pg_base: str | None = None, seed: int = 0, together: bool = False, say=print) -> list[CaseResult]:
    """Kill a server ``kills`` times during each case's workload on one database, checking
    every restart. ``together=False``: one case at a time, each on a model directory and
    database of its own, killed at a moment its workload chooses. ``together=True`` (the
    fast test): every case's clients run at once on one server and each kill interrupts them
    all (the retrain case, if present, chooses the moment), so ``kills`` restarts serve all."""
    groups = [cases] if together else [[case] for case in cases]
    out: list[CaseResult] = []
    for group in groups:
        started = time.monotonic()
        label = "-".join(case.name for case in group) if len(group) < 4 else "all"
        ctx = _context(label, db_kind, work, base_model, events_csv, pg_base, seed)
        results = [CaseResult(case.name, db_kind) for case in group]
        server = ctx.server().start(seed_events=events_csv if any(c.seed for c in group) else None)
        try:
            for case, result in zip(group, results):
                case.setup(ctx, server, result)
            for k in range(kills):
                timed = [c for c in group if isinstance(c, RetrainCase)] or group
                delay = max(c.delay(ctx, k) for c in timed)
                handles = _kill_round(ctx, server, k, group, results, delay)
                server = ctx.server().start()
                for case, result, data in zip(group, results, handles):
                    case.check(ctx, server, data, result)
            for case, result in zip(group, results):
                if hasattr(case, "finish"):
                    case.finish(ctx, server, result)
        finally:
            server.stop()
            ctx.db.drop()
        seconds = time.monotonic() - started
        for result in results:
            result.seconds = seconds
            if "ops" in result.notes:
                result.notes["ops"] = dict(result.notes["ops"])
            say(f"  {result.case:8s} {db_kind:8s} kills {result.kills:3d}  checked {result.checked:6d}  "
                f"violations {len(result.violations)}  orphans {result.orphans}  ({seconds:.0f} s)")
            for v in result.violations[:5]:
                say(f"      ! {v}")
        if not any(r.violations for r in results):
            shutil.rmtree(ctx.model_dir.parent, ignore_errors=True)
        out += results
    return out


# ---------------------------------------------------------------------- database faults
def pg_cluster() -> tuple[str, str] | None:
    """``(version, name)`` of the local PostgreSQL cluster ``pg_ctlcluster`` manages, if any."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if (p / "main").is_dir())
    return (versions[0], "main") if versions else None


def _pg_ctl(action: str, cluster: tuple[str, str]) -> None:
    mode = ["-m", "fast"] if action == "stop" else []
    argv = ["pg_ctlcluster", "--skip-systemctl-redirect", *mode, cluster[0], cluster[1], action]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def start_pg(cluster: tuple[str, str], tries: int = 3) -> None:
    """Start the local PostgreSQL cluster (again), trying up to ``tries`` times."""
    for attempt in range(tries):
        try:
            _pg_ctl("start", cluster)
            return
        except subprocess.CalledProcessError as exc:
            status = subprocess.run(["pg_ctlcluster", cluster[0], cluster[1], "status"], capture_output=True)
            if status.returncode == 0:  # it runs (already started)
                return
            if attempt == tries - 1:
                raise RuntimeError(f"cannot start PostgreSQL again: {exc.stderr!r}") from exc
            time.sleep(1.0)


def _wait_pg(pg_base: str, since: float, timeout: float = 30.0) -> float:
    """When PostgreSQL first accepted a connection (probing every 50 ms from ``since``)."""
    import psycopg

    deadline = since + timeout
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(pg_base, connect_timeout=2):
                return time.monotonic()
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise RuntimeError("PostgreSQL did not come back")


@dataclass
class Traffic:
    """Clients of a server under a database fault: every answer, timed and classified."""

    server: Server
    log: list[tuple[float, str, int, bool]] = field(default_factory=list)  # (t, kind, status, well formed)
    acked: list[tuple[str, str, int]] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, writers: int = 2) -> None:
        with client(self.server) as http:
            self.items = [i["item_id"] for i in http.get("/v1/items", params={"limit": 100}).json()["items"]]
        self.threads = [threading.Thread(target=self._write, args=(w,)) for w in range(writers)]
        self.threads.append(threading.Thread(target=self._read))
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _record(self, kind: str, resp: httpx.Response | None) -> None:
        if resp is None:
            self.log.append((time.monotonic(), kind, 0, False))
            return
        ok = True
        if resp.status_code >= 400:
            try:
                body = resp.json()
                ok = isinstance(body.get("error", {}).get("message"), str) and "field" in body["error"]
            except ValueError:
                ok = False
            if resp.status_code in (503, 507):
                ok = ok and resp.headers.get("retry-after", "").isdigit()
        self.log.append((time.monotonic(), kind, resp.status_code, ok))

    def _write(self, w: int) -> None:
        with client(self.server, timeout=15.0) as http:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                user = f"f{w}-{n}-{uuid.uuid4().hex[:4]}"
                batch = [{"user_id": user, "item_id": self.items[(n + j) % len(self.items)], "timestamp": BASE_TS + j}
                         for j in range(1 + n % 4)]
                try:
                    r = http.post("/v1/events", json={"events": batch})
                except httpx.HTTPError:
                    self._record("write", None)
                    time.sleep(0.05)
                    continue
                self._record("write", r)
                if r.status_code == 200:
                    self.acked += [(e["user_id"], e["item_id"], e["timestamp"]) for e in batch]
                else:
                    time.sleep(0.05)
                time.sleep(0.01)

    def _read(self) -> None:
        with client(self.server, timeout=15.0) as http:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                for kind, path in (("recommend", f"/v1/users/u{n % 150:03d}/recommendations?k=5"),
                                   ("item", f"/v1/items/{self.items[n % len(self.items)]}")):
                    try:
                        r = http.get(path)
                    except httpx.HTTPError:
                        self._record(kind, None)
                        continue
                    self._record(kind, r)
                time.sleep(0.02)

    def summary(self, t0: float, t1: float) -> dict[str, Any]:
        """Answers in ``[t0, t1)`` by kind and status, and how many errors were malformed."""
        by: dict[str, Counter] = defaultdict(Counter)
        malformed = 0
        for t, kind, status, ok in self.log:
            if t0 <= t < t1:
                by[kind][str(status) if status else "no answer"] += 1
                malformed += (status >= 400 or status == 0) and not ok
        return {"by_kind": {k: dict(v) for k, v in by.items()}, "malformed_errors": malformed,
                "requests": sum(sum(v.values()) for v in by.values())}

    def first_write_ok(self, after: float) -> float | None:
        times = [t for t, kind, status, _ in self.log if kind == "write" and status == 200 and t >= after]
        return min(times) if times else None


def lost_acked(db: Database, acked: list[tuple[str, str, int]]) -> int:
    """How many acknowledged events (a multiset of (user, item, timestamp)) the store lacks."""
    rows = db.rows("SELECT user_id, item_id, ts FROM events WHERE user_id LIKE ?", ("f%",))
    stored = Counter((u, i, int(t)) for u, i, t in rows)
    want = Counter(acked)
    return sum(max(0, n - stored[key]) for key, n in want.items())


def pg_outage(work: Path, base_model: Path, pg_base: str, outage_s: float = 5.0, say=print) -> dict[str, Any]:
    """Stop PostgreSQL for ``outage_s`` seconds under traffic (it is always started again).

    Windows: ``during`` from the moment the stop command returned (the server is down) to
    the moment the start command is issued; ``after_recovery`` from the first acknowledged
    write after PostgreSQL accepts connections again to the end (2 s). ``recovery_s``: from
    PostgreSQL accepting connections (a probe connects every 50 ms) to that first write.
    """
    cluster = pg_cluster()
    if cluster is None:
        raise RuntimeError("pg_ctlcluster / /etc/postgresql not found: cannot stop PostgreSQL here")
    root = work / f"pg-outage-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)
    model_dir = Path(shutil.copytree(base_model, root / "model"))
    db_url, _ = pg_store_url(pg_base, "outage")
    db = Database(db_url)
    server = Server(model_dir, db_url, root / "server.log").start()
    traffic = Traffic(server)
    down_at = start_at = ready_at = None
    try:
        traffic.start()
        time.sleep(2.0)
        stop_issued = time.monotonic()
        try:
            _pg_ctl("stop", cluster)
            down_at = time.monotonic()
            time.sleep(outage_s)
        finally:
            start_at = time.monotonic()
            probe: dict[str, float] = {}
            prober = threading.Thread(target=lambda: probe.update(ready=_wait_pg(pg_base, since=start_at)))
            prober.start()
            start_pg(cluster)  # always: other processes use this PostgreSQL
            prober.join()
            ready_at = probe.get("ready", time.monotonic())
        deadline = time.monotonic() + 30
        while traffic.first_write_ok(ready_at) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        recovered = traffic.first_write_ok(ready_at)
        time.sleep(2.0)
        end = time.monotonic()
    finally:
        traffic.close()
        server.stop()
    during = traffic.summary(down_at, start_at)
    after = traffic.summary(recovered if recovered is not None else ready_at, end)
    out = {
        "fault": "postgres stopped", "outage_s": round(ready_at - stop_issued, 2),
        "down_s": round(start_at - down_at, 2), "stop_command_s": round(down_at - stop_issued, 2),
        "start_command_s": round(ready_at - start_at, 2),
        "during": during, "after_recovery": after,
        "recovery_s": None if recovered is None else round(max(0.0, recovered - ready_at), 2),
        "acknowledged": len(traffic.acked), "lost_acknowledged": lost_acked(db, traffic.acked),
    }
    db.drop()
    shutil.rmtree(root, ignore_errors=True)
    say(f"  postgres down {out['down_s']} s: {during['requests']} requests meanwhile {during['by_kind']},"
        f" recovery {out['recovery_s']} s after it accepted connections, lost acknowledged"
        f" {out['lost_acknowledged']}")
    return out


def pg_terminate(work: Path, base_model: Path, pg_base: str, rounds: int = 5, say=print) -> dict[str, Any]:
    """Terminate the service's PostgreSQL sessions ``rounds`` times under traffic."""
    import psycopg

    root = work / f"pg-terminate-{uuid.uuid4().hex[:6]}"
    root.mkdir(parents=True)
    model_dir = Path(shutil.copytree(base_model, root / "model"))
    db_url, app = pg_store_url(pg_base, "term")
    db = Database(db_url)
    server = Server(model_dir, db_url, root / "server.log").start()
    traffic = Traffic(server)
    terminated = 0
    try:
        traffic.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        for _ in range(rounds):
            with psycopg.connect(pg_base, autocommit=True) as admin:
                terminated += sum(bool(r[0]) for r in admin.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE application_name = %s AND pid <> pg_backend_pid()", (app,)).fetchall())
            time.sleep(1.0)
        end = time.monotonic()
    finally:
        traffic.close()
        server.stop()
    summary = traffic.summary(t0, end)
    out = {"fault": "sessions terminated", "rounds": rounds, "sessions_terminated": terminated, **summary,
           "acknowledged": len(traffic.acked), "lost_acknowledged": lost_acked(db, traffic.acked)}
    db.drop()
    shutil.rmtree(root, ignore_errors=True)
    say(f"  postgres sessions terminated x{rounds} ({terminated} sessions): {summary['by_kind']},"
        f" lost acknowledged {out['lost_acknowledged']}")
    return out


def outage_violations(result: dict[str, Any]) -> list[str]:
    """What a database-fault result breaks of the contract (an empty list: nothing).

    PostgreSQL stopped: while it is down, writes answer 503 only and reads 200 (served from
    memory) or 503; every error has ``Retry-After`` and the JSON error shape; after it is
    back everything answers 200 again, and no acknowledged event is lost. Sessions
    terminated: 200 or 503 (a request whose session was cut in the middle), nothing lost.
    """
    bad = []
    outage = "during" in result
    during = result["during"] if outage else result
    for kind, statuses in during["by_kind"].items():
        allowed = {"503"} if outage and kind == "write" else {"200", "503"}
        for status, n in statuses.items():
            if status not in allowed:
                bad.append(f"{n} {kind} answers {status}")
    if outage and not any("503" in v for v in during["by_kind"].values()):
        bad.append("no 503 while PostgreSQL was down")
    if during["malformed_errors"]:
        bad.append(f"{during['malformed_errors']} error answers without Retry-After or the JSON error shape")
    if outage and result["recovery_s"] is None:
        bad.append("no acknowledged write after PostgreSQL came back")
    for kind, statuses in (result.get("after_recovery") or {"by_kind": {}})["by_kind"].items():
        if set(statuses) - {"200"}:
            bad.append(f"after recovery, {kind} answers {statuses}")
    if result["lost_acknowledged"]:
        bad.append(f"{result['lost_acknowledged']} acknowledged events lost")
    return bad


# ---------------------------------------------------------------------- report
def markdown(results: list[CaseResult], faults: list[dict[str, Any]]) -> str:
    lines = ["| case | database | kills | acknowledged writes checked | violations | orphaned processes | seconds |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r.case} | {r.db} | {r.kills} | {r.checked} | {len(r.violations)} | {r.orphans} |"
                     f" {r.seconds:.0f} |")
    if faults:
        lines += ["", "| database fault | requests during it | 503 | other statuses | recovery s |"
                  " acknowledged | lost acknowledged | violations |",
                  "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
        for f in faults:
            during = f.get("during", f)
            n503 = sum(s.get("503", 0) for s in during["by_kind"].values())
            other = {f"{k} {s}": n for k, v in during["by_kind"].items() for s, n in v.items() if s != "503"}
            lines.append(f"| {f['fault']} | {during['requests']} | {n503} | {other} | {f.get('recovery_s', '-')} |"
                         f" {f['acknowledged']} | {f['lost_acknowledged']} | {len(outage_violations(f))} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=20,
                   help="kills per case and database (default 20; 0: only the database faults)")
    p.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--db-fault", action=argparse.BooleanOptionalAction, default=True,
                   help="also stop PostgreSQL under traffic and terminate its sessions (default on)")
    p.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL stays stopped (default 5)")
    p.add_argument("--postgres", default=None, help="PostgreSQL URL (default: the local test database)")
    p.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one)")
    p.add_argument("--scoring-process", action="store_true",
                   help="start servers with their scoring process (default: --no-scoring-process, faster starts)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import tempfile

    Server.SCORING = args.scoring_process
    started = time.monotonic()
    work = args.work or Path(tempfile.mkdtemp(prefix="coldbrew-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    pg_base = args.postgres or reachable_pg()
    if "postgres" in args.db and pg_base is None:
        p.error("PostgreSQL is not reachable (give --postgres URL or --db sqlite)")
    print(f"model: fitting the demo shop into {work} ...", flush=True)
    model_dir, events_csv = build_model(work / "demo")
    results: list[CaseResult] = []
    for db in args.db if args.kills > 0 else ():  # --kills 0: the database faults only
        results += run_cases([CASE_TYPES[name]() for name in args.cases], db, args.kills, work, model_dir,
                             events_csv, pg_base=pg_base, seed=args.seed)
    faults: list[dict[str, Any]] = []
    if args.db_fault and pg_base is not None:
        faults.append(pg_terminate(work, model_dir, pg_base))
        faults.append(pg_outage(work, model_dir, pg_base, outage_s=args.outage))
    wall = time.monotonic() - started
    table = markdown(results, faults)
    report = {
        "kills_per_case": args.kills, "seed": args.seed, "wall_s": round(wall, 1),
        "scoring_process": args.scoring_process,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "cases": [r.as_dict() for r in results],
        "db_faults": [dict(f, violations=outage_violations(f)) for f in faults],
        "total_violations": sum(len(r.violations) for r in results) + sum(len(outage_violations(f)) for f in faults),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print()
    print(table)
    print(f"\nwall time {wall:.0f} s; total violations {report['total_violations']}; written to {args.out}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if report["total_violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
