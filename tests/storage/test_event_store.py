"""EventStore contract, run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from coldbrew.errors import ConfigError
from coldbrew.storage.event_store import (
    EventStore,
    ItemRecord,
    StoredEvent,
    UserProfile,
    open_store,
)

pytest.importorskip("psycopg")

PG_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_base() -> str:
    import os

    import psycopg

    for url in PG_URLS:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.OperationalError:
            continue
    message = "PostgreSQL is not reachable at 127.0.0.1:5432 (database 'test', trust auth)"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI is set: the PostgreSQL tests must run)")
    pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> EventStore:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'events.db'}")
        yield s
        s.close()
        return
    import uuid

    schema = f"coldbrew_test_{uuid.uuid4().hex[:12]}"
    s = open_store(f"{request.getfixturevalue('pg_base')}?schema={schema}")
    yield s
    s.drop()
    s.close()


def _ev(user: str, item: str, ts: int, event: str = "view", value: float | None = None) -> StoredEvent:
    return StoredEvent(user, item, ts, event, value)


def test_stores_follow_the_protocol(store: EventStore) -> None:
    assert isinstance(store, EventStore)


def test_append_then_history_latest_first_with_limit(store: EventStore) -> None:
    assert store.append([_ev("u1", "a", 100), _ev("u1", "b", 300, "purchase", 2.0), _ev("u2", "c", 200)]) == 3
    assert store.append([_ev("u1", "c", 200)]) == 1
    history = store.history("u1", limit=10)
    assert [e.item_id for e in history.events] == ["b", "c", "a"]
    assert history.events[0] == StoredEvent("u1", "b", 300, "purchase", 2.0)
    assert history.events[2].value is None
    assert [e.item_id for e in store.history("u1", limit=2).events] == ["b", "c"]
    assert store.history("nobody", limit=5).events == []
    assert store.history("nobody", limit=5).profile is None


def test_erase_user_counts_rows_and_profile(store: EventStore) -> None:
    store.append([_ev("u1", "a", 1), _ev("u1", "b", 2), _ev("u2", "a", 3)])
    store.save(profiles=[UserProfile("u1", "green tea", ("Food",))])
    assert store.history("u1", 10).profile == UserProfile("u1", "green tea", ("Food",), store.history("u1", 10).profile.updated_at)
    assert store.erase_user("u1") == (2, True)
    assert store.history("u1", 10).events == []
    assert store.history("u1", 10).profile is None
    assert store.erase_user("u1") == (0, False)
    assert len(store.history("u2", 10).events) == 1


def test_items_upsert_and_snapshot(store: EventStore) -> None:
    store.save(items=[ItemRecord("n1", {"title": "Tea", "price": 3.5}), ItemRecord("n2", {"title": "Pot"})])
    store.save(items=[ItemRecord("n1", {"title": "Green tea", "price": None}, in_stock=False)])
    store.save(items=[ItemRecord("n2", {"title": "Pot"}, deleted=True)])
    store.append([_ev("u1", "n1", 10), _ev("u2", "n2", 20, "rating", 4.0)])
    snap = store.snapshot(with_events=True)
    items = {r.item_id: r for r in snap.items}
    assert items["n1"].fields == {"title": "Green tea", "price": None} and not items["n1"].in_stock
    assert items["n2"].deleted and not items["n1"].deleted
    assert snap.n_events == 2
    assert list(snap.events.user_ids) == ["u1", "u2"]
    assert list(snap.events.item_ids) == ["n1", "n2"]
    assert snap.events.timestamps.dtype == np.int64 and list(snap.events.timestamps) == [10, 20]
    assert np.isnan(snap.events.values[0]) and snap.events.values[1] == 4.0
    light = store.snapshot(with_events=False)
    assert light.events is None and light.n_events == 2


def test_unicode_and_long_ids_round_trip(store: EventStore) -> None:
    user = "用户-" + "x" * 200
    store.append([_ev(user, "茶-001", 5, "click")])
    store.save(items=[ItemRecord("茶-001", {"title": "铁观音 乌龙茶"})])
    assert store.history(user, 1).events[0].item_id == "茶-001"
    assert store.snapshot(False).items[0].fields["title"] == "铁观音 乌龙茶"


def test_concurrent_appends_lose_nothing(store: EventStore) -> None:
    def write(t: int) -> None:
        for j in range(20):
            store.append([_ev(f"u{t}", f"i{j}", j), _ev(f"u{t}", f"i{j}", j + 1)])

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert store.snapshot(False).n_events == 4 * 20 * 2
    assert len(store.history("u3", 1000).events) == 40


def test_a_failing_batch_stores_nothing(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    bad = [_ev("u1", "a", 1), StoredEvent("u1", None, 2)]  # type: ignore[arg-type]  # NOT NULL violated
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError
        store.append(bad)
    assert store.snapshot(False).n_events == 0
    store.close()


def test_data_survives_reopening(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    store = open_store(url)
    store.append([_ev("u1", "a", 1)])
    store.close()
    again = open_store(url)
    assert [e.item_id for e in again.history("u1", 5).events] == ["a"]
    again.close()


@pytest.mark.parametrize("url", ["mysql://x", "sqlite://", "sqlite:///no/such/dir/e.db", "events.db"])
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="--db"):
        open_store(url)


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    conn = store._reader()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_postgres_reconnects_after_a_lost_connection(pg_base) -> None:
    import uuid

    import psycopg

    store = open_store(f"{pg_base}?schema=coldbrew_test_{uuid.uuid4().hex[:12]}")

    def terminate() -> None:
        pid = store._conn().info.backend_pid
        with psycopg.connect(pg_base, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]

    try:
        store.append([_ev("u1", "a", 1)])
        terminate()  # the server ends the idle session: noticed before the next use, no error
        assert [e.item_id for e in store.history("u1", 5).events] == ["a"]
        terminate()
        store.append([_ev("u1", "b", 2)])  # a write on a fresh connection too
        assert store.snapshot(False).n_events == 2
        assert len(store._all) == 1  # the dead connections were let go
        assert store._conn().info.parameter_status("application_name") == "coldbrew"
    finally:
        store.drop()
        store.close()


def test_postgres_down_then_back_fails_fast_then_recovers(pg_base) -> None:
    """While the server cannot be reached every call is a ``StorageError`` (503), nothing is
    stored; once it answers again the same store object works (no restart)."""
    import uuid

    import psycopg

    from coldbrew.storage.event_store import StorageError

    store = open_store(f"{pg_base}?schema=coldbrew_test_{uuid.uuid4().hex[:12]}")
    real = store.conninfo
    try:
        store.append([_ev("u1", "a", 1)])
        store.conninfo = "postgresql://postgres@127.0.0.1:1/test"  # "down": nothing listens there
        with psycopg.connect(pg_base, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (store._conn().info.backend_pid,))
        with pytest.raises(StorageError, match="PostgreSQL"):
            store.append([_ev("u1", "lost", 2)])
        with pytest.raises(StorageError, match="PostgreSQL"):
            store.history("u1", 5)
        store.conninfo = real  # "back"
        store.append([_ev("u1", "b", 3)])
        assert [e.item_id for e in store.history("u1", 5).events] == ["b", "a"]
    finally:
        store.conninfo = real
        store.drop()
        store.close()


def test_unreachable_postgres_is_a_config_error_at_start() -> None:
    with pytest.raises(ConfigError, match="cannot connect"):
        open_store("postgresql://postgres@127.0.0.1:1/test")
