"""Two real ``coldbrew serve`` processes on one PostgreSQL schema agree (issue #19).

Each replica has its own copy of the model directory, so a retrained version can only reach
the other through the path recorded in the database. Replica B runs a scoring process, so
the changes it follows also reach its scoring replica.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

BOUND_S = 1.0  # the propagation bound the service states (coldbrew.service.replicas)


@dataclass
class Replica:
    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def get(self, path: str, **params: Any) -> Any:
        return httpx.get(self.url + path, params=params, timeout=10)

    def post(self, path: str, json: Any) -> Any:
        return httpx.post(self.url + path, json=json, timeout=10)

    def patch(self, path: str, json: Any) -> Any:
        return httpx.patch(self.url + path, json=json, timeout=10)

    def delete(self, path: str) -> Any:
        return httpx.delete(self.url + path, timeout=10)

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(name: str, model_dir: Path, db_url: str, work: Path, *extra: str) -> Replica:
    port = _free_port()
    log = work / f"{name}.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = [sys.executable, "-m", "coldbrew.cli", "serve", "--model", str(model_dir), "--db", db_url,
               "--port", str(port), "--log-level", "info", *extra]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    return Replica(name, f"http://127.0.0.1:{port}", process, log)


def _wait_healthy(replica: Replica, timeout: float = 60.0, scoring: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if replica.process.poll() is not None:
            raise AssertionError(f"replica {replica.name} exited:\n{replica.logs()[-3000:]}")
        try:
            health = replica.get("/healthz").json()
            if scoring is None or health["scoring_process"] == scoring:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"replica {replica.name} did not start in {timeout:.0f} s:\n{replica.logs()[-3000:]}")


def _within(check: Callable[[], bool], timeout: float, step: float = 0.02) -> float | None:
    """Seconds until ``check()`` holds (polled every ``step``), or ``None`` after ``timeout``."""
    started = time.perf_counter()
    while True:
        if check():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            return None
        time.sleep(step)


@pytest.fixture(scope="module")
def replicas(pg_base_url: str, demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Replica, Replica, str]]:
    """Replicas A and B (with a scoring process) started together on one fresh schema, both
    told to seed it with the demo events (only one of them may)."""
    import psycopg

    work = tmp_path_factory.mktemp("replicas")
    schema = f"coldbrew_test_{uuid.uuid4().hex[:12]}"
    db_url = f"{pg_base_url}?schema={schema}"
    dirs = [Path(shutil.copytree(demo_model_dir, work / name / "model")) for name in ("a", "b")]
    events_csv = demo_model_dir.parent / "events.csv"
    a = _launch("a", dirs[0], db_url, work, "--events", str(events_csv), "--no-scoring-process")
    b = _launch("b", dirs[1], db_url, work, "--events", str(events_csv), "--scoring-process")
    try:
        _wait_healthy(a)
        _wait_healthy(b, scoring="on")
        yield a, b, db_url
    finally:
        for replica in (a, b):
            replica.process.terminate()
        for replica in (a, b):
            try:
                replica.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                replica.process.kill()
        with psycopg.connect(pg_base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_replicas_started_together_seed_the_empty_store_once(replicas, demo_events_csv) -> None:
    from coldbrew.storage.event_store import open_store

    _, _, db_url = replicas
    rows = len(demo_events_csv.read_text(encoding="utf-8").strip().splitlines()) - 1
    store = open_store(db_url)
    try:
        assert store.snapshot(with_events=False).n_events == rows
    finally:
        store.close()


def test_an_event_posted_to_one_replica_is_in_the_others_next_answer(replicas) -> None:
    a, b, _ = replicas
    user = f"shopper-{uuid.uuid4().hex[:8]}"
    assert b.get(f"/v1/users/{user}/profile").json()["events"] == 0
    assert a.post("/v1/events", {"user_id": user, "item_id": "tea-001", "event": "purchase"}).status_code == 200
    profile = b.get(f"/v1/users/{user}/profile").json()  # the very next answer: no wait at all
    assert profile["events"] == 1 and profile["history"][0]["item_id"] == "tea-001"
    assert b.get(f"/v1/users/{user}/recommendations", k=5).status_code == 200

    b.post("/v1/onboarding", {"user_id": user, "text": "loose leaf green tea"})
    assert "loose leaf green tea" in a.get(f"/v1/users/{user}/profile").json()["interests"]
    assert b.delete(f"/v1/users/{user}").json()["deleted_events"] == 1
    assert a.get(f"/v1/users/{user}/profile").json()["events"] == 0


def test_a_product_posted_to_one_replica_is_served_by_the_other_within_the_bound(replicas) -> None:
    a, b, _ = replicas
    item = f"new-{uuid.uuid4().hex[:8]}"
    assert b.get(f"/v1/items/{item}").status_code == 404
    written = a.post("/v1/items", {"item_id": item, "title": "Matcha whisk", "category": "Food > Tea",
                                   "price": 12.5})
    assert written.status_code == 201
    delay = _within(lambda: b.get(f"/v1/items/{item}").status_code == 200, timeout=5)
    assert delay is not None and delay <= BOUND_S, f"B saw the product after {delay} s"
    assert b.get(f"/v1/items/{item}").json()["title"] == "Matcha whisk"
    # B's scoring process follows too: the product can be recommended by B.
    tea = b.get("/v1/users/cold-user/recommendations", k=100, category="Tea").json()["items"]
    assert item in [i["item_id"] for i in tea]

    # Out of stock through A: B stops recommending it within the bound.
    assert a.patch(f"/v1/items/{item}", {"in_stock": False}).status_code == 200

    def gone_from_b() -> bool:
        listed = b.get("/v1/users/cold-user/recommendations", k=100, category="Tea").json()["items"]
        return item not in [i["item_id"] for i in listed]

    delay = _within(gone_from_b, timeout=5)
    assert delay is not None and delay <= BOUND_S

    # A PATCH on B merges into A's change (B catches up first) instead of undoing it.
    patched = b.patch(f"/v1/items/{item}", {"price": 9.0}).json()
    assert patched["price"] == 9.0 and patched["in_stock"] is False
    delay = _within(lambda: a.get(f"/v1/items/{item}").json()["price"] == 9.0, timeout=5)
    assert delay is not None and delay <= BOUND_S

    # Deleted through B: A answers 404 within the bound, and refuses events for it.
    assert b.delete(f"/v1/items/{item}").status_code == 200
    delay = _within(lambda: a.get(f"/v1/items/{item}").status_code == 404, timeout=5)
    assert delay is not None and delay <= BOUND_S
    refused = a.post("/v1/events", {"user_id": "u001", "item_id": item})
    assert refused.status_code == 404 and "deleted item" in refused.text


def test_an_event_for_a_product_just_added_elsewhere_is_accepted_at_once(replicas) -> None:
    a, b, _ = replicas
    item = f"fresh-{uuid.uuid4().hex[:8]}"
    assert a.post("/v1/items", {"item_id": item, "title": "Tea tin"}).status_code == 201
    accepted = b.post("/v1/events", {"user_id": "u002", "item_id": item, "event": "view"})
    assert accepted.status_code == 200, accepted.text  # B catches up before refusing
    # Bad input still gets a clear error on either replica.
    unknown = b.post("/v1/events", {"user_id": "u002", "item_id": "no-such-item"})
    assert unknown.status_code == 404 and "unknown item 'no-such-item'" in unknown.text
    invalid = a.post("/v1/items", {"item_id": "", "title": "x"})
    assert invalid.status_code == 422 and "item_id" in invalid.text


def test_a_retrain_on_one_replica_is_picked_up_by_the_other(replicas, demo_model_dir, tmp_path) -> None:
    a, b, db_url = replicas
    started = a.post("/v1/models/retrain", {})
    assert started.status_code == 202
    version = started.json()["version"]
    during = f"during-{uuid.uuid4().hex[:8]}"
    assert b.post("/v1/items", {"item_id": during, "title": "Tea cosy", "category": "Food > Tea"}).status_code == 201

    swapped = _within(lambda: a.get("/healthz").json()["model_version"] == version, timeout=120, step=0.05)
    assert swapped is not None, a.logs()[-2000:]
    delay = _within(lambda: b.get("/healthz").json()["model_version"] == version, timeout=10)
    # The bound: one poll (0.25 s) plus loading and warming the (tiny) model.
    assert delay is not None and delay <= BOUND_S + 0.5, f"B picked {version} up after {delay} s"
    assert b.get("/v1/users/u001/recommendations", k=5).json()["model_version"] == version
    models = b.get("/v1/models").json()
    assert models["active"] == version
    assert {v["version"]: v["status"] for v in models["versions"]}[version] == "active"
    for replica in (a, b):  # the product written during the retrain survived both swaps
        assert replica.get(f"/v1/items/{during}").status_code == 200

    # A replica started later serves the shared active version at once.
    from fastapi.testclient import TestClient

    from coldbrew.service.app import create_app
    from coldbrew.service.settings import ServiceSettings

    late_dir = Path(shutil.copytree(demo_model_dir, tmp_path / "model"))
    with TestClient(create_app(ServiceSettings(model_dir=late_dir, db_url=db_url))) as late:
        assert late.get("/healthz").json()["model_version"] == version
        assert late.get(f"/v1/items/{during}").status_code == 200


def test_a_version_that_cannot_be_loaded_leaves_the_old_one_serving(replicas, tmp_path) -> None:
    from coldbrew.storage.event_store import SharedVersion, open_store

    a, b, db_url = replicas
    serving = b.get("/healthz").json()["model_version"]
    store = open_store(db_url)
    try:
        store.record_version(SharedVersion("v999", str(tmp_path / "missing"), created_at="now"))
    finally:
        store.close()
    logged = _within(lambda: "cannot load model version v999" in b.logs(), timeout=5)
    assert logged is not None, b.logs()[-2000:]
    for replica in (a, b):
        assert replica.get("/healthz").json()["model_version"] == serving
        assert replica.get("/v1/users/u001/recommendations", k=3).status_code == 200


def test_a_sqlite_service_runs_no_follower(client) -> None:
    state = client.app.state.coldbrew
    assert "replicas" not in state.extras  # one process: behaviour exactly as before
    assert client.get("/healthz").json()["store"] == "SQLiteEventStore"
