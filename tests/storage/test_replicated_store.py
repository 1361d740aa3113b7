"""The PostgreSQL store's replica tables: item revisions, version names, activations, migration."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest

from coldbrew.storage.event_store import ItemRecord, ReplicatedStore, SharedVersion, open_store

psycopg = pytest.importorskip("psycopg")

PG_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_base() -> str:
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


@pytest.fixture
def schema_url(pg_base: str) -> Iterator[str]:
    schema = f"coldbrew_test_{uuid.uuid4().hex[:12]}"
    yield f"{pg_base}?schema={schema}"
    with psycopg.connect(pg_base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_only_postgres_is_a_replicated_store(schema_url: str, tmp_path) -> None:
    pg = open_store(schema_url)
    lite = open_store(f"sqlite:///{tmp_path / 'events.db'}")
    try:
        assert isinstance(pg, ReplicatedStore)
        assert not isinstance(lite, ReplicatedStore)  # one process: nothing to follow
    finally:
        pg.close()
        lite.close()


def test_items_since_returns_each_changed_item_once_in_its_latest_state(schema_url: str) -> None:
    store = open_store(schema_url)
    try:
        assert store.change_counters() == {"items": 0, "model": 0, "names": 0}
        assert store.items_since(0) == ([], 0)
        store.save(items=[ItemRecord("a", {"title": "A"}), ItemRecord("b", {"title": "B"})])
        seen = store.change_counters()["items"]
        records, rev = store.items_since(0)
        assert [r.item_id for r in records] == ["a", "b"] and rev == seen == 1
        store.save(items=[ItemRecord("a", {"title": "A2"}, in_stock=False)])
        store.save(items=[ItemRecord("c", {"title": "C"}, deleted=True)])
        records, rev = store.items_since(seen)
        assert [(r.item_id, r.fields.get("title"), r.in_stock, r.deleted) for r in records] == [
            ("a", "A2", False, False), ("c", "C", True, True)]
        assert rev == store.change_counters()["items"] == 3
        assert store.items_since(rev) == ([], 3)
        store.save(profiles=[])  # nothing written: no revision taken
        assert store.change_counters()["items"] == 3
    finally:
        store.close()


def test_concurrent_item_writers_never_hide_a_write_from_a_follower(schema_url: str) -> None:
    """Revisions commit in order: a follower that saw revision r has seen all below it."""
    store = open_store(schema_url)
    stop = threading.Event()
    written: list[str] = []

    def writer(name: str) -> None:
        for j in range(40):
            store.save(items=[ItemRecord(f"{name}-{j}", {"title": name})])
            written.append(f"{name}-{j}")

    followed: set[str] = set()
    rev = 0

    def follow() -> None:
        nonlocal rev
        while not stop.is_set():
            records, rev = store.items_since(rev)
            followed.update(r.item_id for r in records)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("w1", "w2", "w3")]
    follower = threading.Thread(target=follow)
    try:
        follower.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        follower.join()
    records, rev = store.items_since(rev)
    followed.update(r.item_id for r in records)
    store.close()
    assert followed == set(written) and len(written) == 120


def test_version_names_are_unique_and_activations_ordered(schema_url: str) -> None:
    one, two = open_store(schema_url), open_store(schema_url)
    try:
        names = [one.reserve_version(1), two.reserve_version(1), one.reserve_version(1)]
        assert names == ["v1", "v2", "v3"]
        assert two.reserve_version(10) == "v10"  # never below the local registry's next name
        assert one.versions() == []
        s1 = one.record_version(SharedVersion("v1", "/models/a/versions/v1", created_at="t1", events=5, base="x"))
        s2 = two.record_version(SharedVersion("v2", "/models/b/versions/v2", created_at="t2", base="x"))
        assert s2 > s1
        assert [v.version for v in one.versions()] == ["v1", "v2"]  # the last one is active
        assert one.versions()[0] == SharedVersion("v1", "/models/a/versions/v1", s1, "t1", 5, 0, "x")
        one.record_version(SharedVersion("v1", "/models/a/versions/v1", created_at="t1", base="x"))  # reactivated
        assert [v.version for v in two.versions()] == ["v2", "v1"]
        assert two.change_counters()["model"] == 3
    finally:
        one.close()
        two.close()


def test_an_older_schema_is_migrated_in_place(pg_base: str, schema_url: str) -> None:
    """An items table from before replicas (no rev column) gets one; its rows stay."""
    schema = schema_url.rsplit("=", 1)[1]
    with psycopg.connect(pg_base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".items (item_id TEXT PRIMARY KEY, data TEXT NOT NULL,'
                     " in_stock BOOLEAN NOT NULL, deleted BOOLEAN NOT NULL, updated_at BIGINT NOT NULL)")
        conn.execute(f"INSERT INTO \"{schema}\".items VALUES ('old', '{{\"title\": \"Old\"}}', true, false, 1)")
    store = open_store(schema_url)
    try:
        assert [r.item_id for r in store.snapshot(with_events=False).items] == ["old"]
        store.save(items=[ItemRecord("new", {"title": "New"})])
        assert [r.item_id for r in store.items_since(0)[0]] == ["new"]  # the old row has revision 0
    finally:
        store.close()
    open_store(schema_url).close()  # running the migrations again changes nothing


def test_replicas_opening_a_fresh_schema_at_once_do_not_race(schema_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def opener() -> None:
        try:
            barrier.wait()
            open_store(schema_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_only_one_of_two_replicas_seeds_an_empty_store(schema_url: str) -> None:
    import time

    from coldbrew.storage.event_store import StoredEvent

    store = open_store(schema_url)
    barrier = threading.Barrier(2)

    def seed(user: str) -> None:
        barrier.wait()
        with store.exclusive("seed"):
            if store.snapshot(with_events=False).n_events == 0:
                time.sleep(0.2)  # the other replica arrives meanwhile
                store.append([StoredEvent(user, "i", 1)] * 10)

    threads = [threading.Thread(target=seed, args=(u,)) for u in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert store.snapshot(with_events=False).n_events == 10
    finally:
        store.close()
