"""PostgreSQL event store (``--db postgresql://user@host:port/db``; the ``postgres`` extra).

Each write is one transaction committed before the method returns; with PostgreSQL's default
``synchronous_commit=on`` the commit waits for the WAL flush, so an acknowledged event
survives a crash of either process. Events are written with ``COPY`` (fast batches). Each
thread has its own connection (the service's worker threads are few and long-lived).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Sequence

from coldbrew.errors import ConfigError
from coldbrew.storage.event_store import (
    ItemRecord,
    Snapshot,
    StorageError,
    StoredEvent,
    UserHistory,
    UserProfile,
    events_from_rows,
)

__all__ = ["PostgresEventStore"]


def _guarded(method):
    """Report lost connections and server errors as ``StorageError`` (the service answers 503).

    A broken connection is dropped, so the next call of that thread reconnects.
    """
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except self._psycopg.OperationalError as exc:
            conn = getattr(self._local, "conn", None)
            if conn is not None and (conn.closed or conn.broken):
                self._local.conn = None
            raise StorageError(f"event store (PostgreSQL): {str(exc).strip()}") from exc

    return wrapper

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "a postgresql:// event store needs psycopg 3: pip install 'coldbrew[postgres]'"
        ) from None
    return psycopg


class PostgresEventStore:
    """An :class:`~coldbrew.storage.event_store.EventStore` in a PostgreSQL database.

    Parameters
    ----------
    conninfo: a libpq URL, e.g. ``postgresql://postgres@127.0.0.1:5432/test``.
    schema: the schema holding the ``events`` and ``items`` tables (created when missing).
    """

    def __init__(self, conninfo: str, schema: str = "public") -> None:
        if not _NAME.match(schema):
            raise ConfigError(f"--db: schema {schema!r} must be a plain SQL identifier")
        self.conninfo = conninfo
        self.schema = schema
        self._psycopg = _psycopg()
        self._local = threading.local()
        self._all: list = []
        self._all_lock = threading.Lock()
        s = f'"{schema}"'
        self._events = f"{s}.events"
        self._items = f"{s}.items"
        self._profiles = f"{s}.profiles"
        try:
            conn = self._conn()
        except StorageError as exc:
            raise ConfigError(f"--db: {exc}") from None
        with conn.transaction():
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._events} (id BIGSERIAL PRIMARY KEY,"
                " user_id TEXT NOT NULL, item_id TEXT NOT NULL, ts BIGINT NOT NULL,"
                " event TEXT NOT NULL, value DOUBLE PRECISION)"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS events_user_ts ON {self._events} (user_id, ts)")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._items} (item_id TEXT PRIMARY KEY,"
                " data TEXT NOT NULL, in_stock BOOLEAN NOT NULL, deleted BOOLEAN NOT NULL,"
                " updated_at BIGINT NOT NULL)"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._profiles} (user_id TEXT PRIMARY KEY,"
                " text TEXT NOT NULL, categories TEXT NOT NULL, updated_at BIGINT NOT NULL)"
            )

    def __repr__(self) -> str:
        return f"PostgresEventStore(schema={self.schema!r})"

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = self._psycopg.connect(self.conninfo, autocommit=True)
            except self._psycopg.OperationalError as exc:
                raise StorageError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @_guarded
    def append(self, events: Sequence[StoredEvent]) -> int:
        if not events:
            return 0
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY {self._events} (user_id, item_id, ts, event, value) FROM STDIN") as copy:
                for e in events:
                    copy.write_row((e.user_id, e.item_id, int(e.timestamp), e.event, e.value))
        return len(events)

    @_guarded
    def history(self, user_id: str, limit: int) -> UserHistory:
        conn = self._conn()
        rows = conn.execute(
            f"SELECT item_id, ts, event, value FROM {self._events} WHERE user_id = %s"
            " ORDER BY ts DESC, id DESC LIMIT %s",
            (user_id, int(limit)),
        ).fetchall()
        found = conn.execute(
            f"SELECT text, categories, updated_at FROM {self._profiles} WHERE user_id = %s", (user_id,)
        ).fetchone()
        profile = None
        if found is not None:
            profile = UserProfile(user_id, found[0], tuple(json.loads(found[1])), int(found[2]))
        events = [StoredEvent(user_id, item, int(ts), event, value) for item, ts, event, value in rows]
        return UserHistory(events, profile)

    @_guarded
    def erase_user(self, user_id: str) -> tuple[int, bool]:
        conn = self._conn()
        with conn.transaction():
            events = conn.execute(f"DELETE FROM {self._events} WHERE user_id = %s", (user_id,)).rowcount
            profiles = conn.execute(f"DELETE FROM {self._profiles} WHERE user_id = %s", (user_id,)).rowcount
        return int(events), profiles > 0

    @_guarded
    def save(self, items: Sequence[ItemRecord] = (), profiles: Sequence[UserProfile] = ()) -> None:
        if not items and not profiles:
            return
        now = int(time.time())
        item_rows = [
            (r.item_id, json.dumps(r.fields, ensure_ascii=False), bool(r.in_stock), bool(r.deleted),
             r.updated_at or now)
            for r in items
        ]
        profile_rows = [
            (p.user_id, p.text, json.dumps(list(p.categories), ensure_ascii=False), p.updated_at or now)
            for p in profiles
        ]
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            if item_rows:
                cur.executemany(
                    f"INSERT INTO {self._items} (item_id, data, in_stock, deleted, updated_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (item_id) DO UPDATE SET"
                    " data = EXCLUDED.data, in_stock = EXCLUDED.in_stock, deleted = EXCLUDED.deleted,"
                    " updated_at = EXCLUDED.updated_at",
                    item_rows,
                )
            if profile_rows:
                cur.executemany(
                    f"INSERT INTO {self._profiles} (user_id, text, categories, updated_at)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET"
                    " text = EXCLUDED.text, categories = EXCLUDED.categories,"
                    " updated_at = EXCLUDED.updated_at",
                    profile_rows,
                )

    @_guarded
    def snapshot(self, with_events: bool = True) -> Snapshot:
        conn = self._conn()
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            n = int(conn.execute(f"SELECT count(*) FROM {self._events}").fetchone()[0])
            items = [
                ItemRecord(item_id, json.loads(data), bool(in_stock), bool(deleted), int(updated))
                for item_id, data, in_stock, deleted, updated in conn.execute(
                    f"SELECT item_id, data, in_stock, deleted, updated_at FROM {self._items}"
                    " ORDER BY updated_at, item_id"
                ).fetchall()
            ]
            events = None
            if with_events:
                rows = conn.execute(
                    f"SELECT user_id, item_id, ts, event, value FROM {self._events} ORDER BY id"
                ).fetchall()
                events = events_from_rows(rows)
        return Snapshot(n_events=n, items=items, events=events)

    def drop(self) -> None:
        """Drop this store's schema with everything in it (used by tests to clean up)."""
        if self.schema == "public":
            raise ConfigError("refusing to drop the public schema")
        conn = self._conn()
        conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
