"""Database faults: the service answers a clear error, keeps what it acknowledged, recovers.

* SQLite out of space (a tiny tmpfs when this runs as root and may mount one; a
  ``PRAGMA max_page_count`` limit on the writer connection everywhere): 507 with the JSON
  error shape, ``Retry-After`` and the database file's path; reads go on; the file passes
  ``PRAGMA integrity_check`` with every acknowledged event in it; writes work again once
  there is room (no restart).
* SQLite read-only (the file chmod 0444, or its directory 0555; a server started on it):
  reads answer, writes get 503 naming the file; nothing is damaged.
* PostgreSQL: the service's sessions terminated under traffic (fast), and PostgreSQL
  stopped for about 5 s under traffic (``slow``: it stops the machine's PostgreSQL, which is
  always started again): writes get 503 with ``Retry-After`` while it is down, reads served
  from memory answer, the service recovers by itself, nothing acknowledged is lost.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from tests.service.benchmarks_harness import load_benchmark  # noqa: E402

pytest.importorskip("httpx")

def _post_until_full(client: Any, limit: int = 3000) -> tuple[list[str], Any]:
    """Post batches of 20 events (one new user each) until one is refused; (acked users, refusal)."""
    acked = []
    for n in range(limit):
        user = f"full-{n}"
        batch = [{"user_id": user, "item_id": "tea-001", "timestamp": 1_700_000_000 + j} for j in range(20)]
        r = client.post("/v1/events", json={"events": batch})
        if r.status_code != 200:
            return acked, r
        acked.append(user)
    raise AssertionError(f"{limit} batches were accepted: the store never filled up")


def _check_sound(path: Path, acked: list[str], per_user: int = 20) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = dict(conn.execute("SELECT user_id, count(*) FROM events GROUP BY user_id").fetchall())
    finally:
        conn.close()
    lost = [u for u in acked if counts.get(u) != per_user]
    assert not lost, f"{len(lost)} acknowledged batches are missing or partial, e.g. {lost[:3]}"
    assert all(n == per_user for u, n in counts.items() if u.startswith("full-")), "a refused batch was stored in part"


def _assert_storage_error(r: Any, status: int, path: Path, words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["retry-after"].isdigit()
    error = r.json()["error"]
    assert error["field"] == "db" and "nothing was stored" in error["message"]
    assert str(path) in error["message"] and words in error["message"], error["message"]


# ---------------------------------------------------------------------- SQLite: disk full
@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (root only); skipped where it cannot be mounted."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tiny tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_answers_507_and_the_file_stays_sound(make_client, tiny_fs: Path) -> None:
    db = tiny_fs / "events.db"
    client = make_client(db_url=f"sqlite:///{db}")
    acked, refused = _post_until_full(client)
    assert len(acked) >= 3
    _assert_storage_error(refused, 507, db, "full")
    # other writes are refused the same way; reads go on
    _assert_storage_error(client.post("/v1/items", json={"item_id": "N1", "title": "New"}), 507, db, "full")
    assert client.get("/v1/items/N1").status_code == 404  # not applied either
    assert client.get(f"/v1/users/{acked[0]}/profile").json()["events"] == 20
    assert client.get(f"/v1/users/{acked[0]}/recommendations?k=3").status_code == 200
    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_fs)], check=True)  # room again
    r = client.post("/v1/events", json={"events": [{"user_id": "after", "item_id": "tea-001"}]})
    assert r.status_code == 200  # no restart needed
    _check_sound(db, acked)


def test_a_page_limit_reached_answers_507_and_recovers(make_client, tmp_path: Path) -> None:
    """The same without root: SQLITE_FULL from ``PRAGMA max_page_count`` on the writer.

    Also the regression test of a masked error: SQLite rolls the transaction back itself
    on SQLITE_FULL, and the store's own ROLLBACK then failed with "cannot rollback - no
    transaction is active", which hid why nothing was stored."""
    db = tmp_path / "events.db"
    client = make_client(db_url=f"sqlite:///{db}")
    writer = client.app.state.coldbrew.store._writer
    pages = writer.execute("PRAGMA page_count").fetchone()[0]
    writer.execute(f"PRAGMA max_page_count = {pages + 12}")
    acked, refused = _post_until_full(client)
    assert len(acked) >= 3
    _assert_storage_error(refused, 507, db, "database or disk is full")
    assert "cannot rollback" not in refused.json()["error"]["message"]
    writer.execute(f"PRAGMA max_page_count = {pages + 100_000}")
    assert client.post("/v1/events", json={"user_id": "after", "item_id": "tea-001"}).status_code == 200
    _check_sound(db, acked)


# ---------------------------------------------------------------------- SQLite: read-only
def _without_root_override() -> tuple[str, ...]:
    """A command prefix under which file permissions apply (root ignores them otherwise)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file read-only for the server")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def _acked_events(model_dir: Path, url: str, users: list[str]) -> None:
    """Events of ``users`` (20 each) posted to a service on ``url``, which is then shut down."""
    from fastapi.testclient import TestClient

    from coldbrew.service.app import create_app
    from coldbrew.service.settings import ServiceSettings

    with TestClient(create_app(ServiceSettings(model_dir=model_dir, db_url=url))) as client:
        for user in users:
            batch = [{"user_id": user, "item_id": "tea-001", "timestamp": 1_700_000_000 + j} for j in range(20)]
            assert client.post("/v1/events", json={"events": batch}).status_code == 200


def _read_only(target: Path, wrapper: tuple[str, ...]) -> None:
    os.chmod(target, 0o444 if target.is_file() else 0o555)
    if subprocess.run([*wrapper, "sh", "-c", f"test -w '{target}'"]).returncode == 0:
        os.chmod(target, 0o644 if target.is_file() else 0o755)
        pytest.skip(f"{target} stays writable for this user: cannot test read-only here")


def test_a_read_only_database_file_answers_503_naming_the_file(model_dir: Path, tmp_path: Path) -> None:
    """Reads answer from a read-only file; every write gets 503 naming it; nothing is damaged.

    (A file made read-only under a running server changes nothing: its connections were
    opened for writing before; this is the server started on such a file.)"""
    rc = load_benchmark("run_crash")
    wrapper = _without_root_override()
    db = tmp_path / "events.db"
    url = f"sqlite:///{db}"
    acked = [f"full-{n}" for n in range(3)]
    _acked_events(model_dir, url, acked)
    _read_only(db, wrapper)
    server = rc.Server(model_dir, url, tmp_path / "server.log", wrapper=wrapper)
    try:
        server.start()
        with rc.client(server) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get(f"/v1/users/{acked[0]}/profile").json()["events"] == 20  # reads work
            assert http.get(f"/v1/users/{acked[0]}/recommendations?k=3").status_code == 200
            r = http.post("/v1/events", json={"user_id": "z", "item_id": "tea-001"})
            _assert_storage_error(r, 503, db, "read-only")
            _assert_storage_error(http.delete(f"/v1/users/{acked[0]}"), 503, db, "read-only")
            _assert_storage_error(http.patch("/v1/items/tea-001", json={"price": 1.5}), 503, db, "read-only")
            assert http.get("/v1/items/tea-001").json()["price"] != 1.5  # not applied in memory either
    finally:
        server.stop()
        os.chmod(db, 0o644)
    _check_sound(db, acked)


def test_a_read_only_database_directory_is_a_one_line_error_at_start(model_dir: Path, tmp_path: Path) -> None:
    """In a read-only directory SQLite cannot create the WAL files it needs even to read:
    ``coldbrew serve`` refuses to start, naming the file and the directory."""
    import sys

    wrapper = _without_root_override()
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "events.db"
    acked = [f"full-{n}" for n in range(3)]
    _acked_events(model_dir, f"sqlite:///{db}", acked)
    _read_only(folder, wrapper)
    try:
        out = subprocess.run([*wrapper, sys.executable, "-m", "coldbrew.cli", "serve", "--model", str(model_dir),
                              "--db", f"sqlite:///{db}", "--port", "0"], capture_output=True, text=True, timeout=120)
    finally:
        os.chmod(folder, 0o755)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("coldbrew: error:") and "Traceback" not in out.stderr
    assert str(db) in out.stderr and "read-only" in out.stderr and str(folder) in out.stderr
    _check_sound(db, acked)


# ---------------------------------------------------------------------- PostgreSQL
@pytest.fixture
def demo_model(demo_model_dir: Path, demo_events_csv: Path) -> tuple[Path, Path]:
    return demo_model_dir, demo_events_csv


def test_terminated_postgres_sessions_cost_no_restart(pg_base_url: str, demo_model, tmp_path: Path) -> None:
    rc = load_benchmark("run_crash")
    result = rc.pg_terminate(tmp_path, demo_model[0], pg_base_url, rounds=2, say=lambda line: None)
    assert result["sessions_terminated"] >= 2, result
    assert rc.outage_violations(result) == [], result
    assert result["acknowledged"] > 0 and result["lost_acknowledged"] == 0
    # Only a write whose session was cut in the middle may fail (at most one per client and
    # round): idle sessions are replaced before use, and a read cut in the middle is retried.
    # Before, every worker thread's next request after each round failed.
    assert result["by_kind"]["write"].get("503", 0) <= 2 * 2, result
    assert result["by_kind"]["recommend"].get("503", 0) == 0, result


@pytest.mark.slow
def test_postgres_stopped_under_traffic_then_back(pg_base_url: str, demo_model, tmp_path: Path) -> None:
    rc = load_benchmark("run_crash")
    if os.geteuid() != 0 or rc.pg_cluster() is None:
        pytest.skip("stopping the local PostgreSQL needs root and pg_ctlcluster")
    result = rc.pg_outage(tmp_path, demo_model[0], pg_base_url, outage_s=5.0, say=lambda line: None)
    assert rc.outage_violations(result) == [], result
    during = result["during"]["by_kind"]
    assert during["write"].get("503", 0) > 0 and set(during["write"]) == {"503"}
    assert during["item"].get("200", 0) > 0  # a product page is served from memory
    assert result["recovery_s"] is not None and result["recovery_s"] < 5.0, result
    assert result["lost_acknowledged"] == 0


def test_the_store_url_may_name_its_own_application(pg_base_url: str) -> None:
    """``?application_name=`` in ``--db`` reaches PostgreSQL (to find the service's sessions)."""
    from coldbrew.storage.event_store import open_store

    name = f"coldbrew-test-{uuid.uuid4().hex[:8]}"
    store = open_store(f"{pg_base_url}?schema=coldbrew_test_{uuid.uuid4().hex[:12]}&application_name={name}")
    try:
        assert store._conn().info.parameter_status("application_name") == name
    finally:
        store.drop()
        store.close()
