"""SQLite event store: the embedded default (one file, WAL mode).

Durability: the database runs in WAL mode with ``synchronous=FULL``, so every commit fsyncs
the write-ahead log before ``append`` returns. (``NORMAL`` would already survive a killed
process, since committed pages sit in the OS cache, but not a power cut; FULL costs one
fsync per commit, which batching amortises.) Writes go through one connection under a
lock; reads use one connection per thread, which WAL lets run beside the writer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

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

__all__ = ["SQLiteEventStore"]


# SQLite result codes (primary, the low byte of an extended code) the service tells apart.
_SQLITE_READONLY, _SQLITE_FULL, _SQLITE_CANTOPEN = 8, 13, 14


def _storage_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """A ``StorageError`` naming the database file: 507 when it is out of space, else 503."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc)
    if code == _SQLITE_FULL or "database or disk is full" in text:
        return StorageError(f"event store {path}: the database or disk is full ({text}); free space on"
                            f" {path.parent}", status=507, retry_after=60)
    if code == _SQLITE_READONLY or "readonly database" in text:
        return StorageError(f"event store {path}: the database is read-only ({text}); check the"
                            " permissions of the file and of its directory", retry_after=60)
    if code == _SQLITE_CANTOPEN:
        return StorageError(f"event store {path}: cannot open the database file ({text})", retry_after=60)
    return StorageError(f"event store {path}: {text}")


def _guarded(method):
    """Report the driver's operational failures as ``StorageError`` (the service answers 503,
    or 507 when the disk is full), naming the database file."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise _storage_error(self.path, exc) from exc

    return wrapper

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    event TEXT NOT NULL,
    value REAL
);
CREATE INDEX IF NOT EXISTS events_user_ts ON events (user_id, ts);
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    in_stock INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS profiles (
    user_id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    categories TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
"""


class SQLiteEventStore:
    """An :class:`~coldbrew.storage.event_store.EventStore` in one SQLite file.

    Parameters
    ----------
    path: the database file (created with its tables when missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise ConfigError(f"--db: directory {self.path.parent} does not exist")
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        try:
            self._writer = self._connect()
            self._writer.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.close()
            if getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY_DIRECTORY":
                # WAL mode keeps PATH-wal and PATH-shm beside the file: without them SQLite
                # cannot even read, so the service cannot start (a read-only file can be read)
                raise ConfigError(f"--db {self.path}: the directory {self.path.parent} is read-only;"
                                  f" SQLite must create {self.path.name}-wal and {self.path.name}-shm there"
                                  f" ({exc})") from None
            raise ConfigError(f"--db {self.path}: not a usable SQLite database ({exc})") from None

    def __repr__(self) -> str:
        return f"SQLiteEventStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _write(self, *statements: tuple[str, Sequence[tuple]]) -> list[int]:
        """Run ``(sql, rows)`` statements in one transaction; row counts of each."""
        with self._write_lock:
            cur = self._writer.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                counts = []
                for sql, rows in statements:
                    cur.executemany(sql, rows)
                    counts.append(cur.rowcount)
                cur.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (a COMMIT failing with SQLITE_FULL does):
                # a second ROLLBACK would fail and hide the error that matters.
                if self._writer.in_transaction:
                    try:
                        cur.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise
            return counts

    @_guarded
    def append(self, events: Sequence[StoredEvent]) -> int:
        if not events:
            return 0
        rows = [(e.user_id, e.item_id, int(e.timestamp), e.event, e.value) for e in events]
        self._write(("INSERT INTO events (user_id, item_id, ts, event, value) VALUES (?, ?, ?, ?, ?)", rows))
        return len(rows)

    @_guarded
    def history(self, user_id: str, limit: int) -> UserHistory:
        conn = self._reader()
        rows = conn.execute(
            "SELECT item_id, ts, event, value FROM events WHERE user_id = ?"
            " ORDER BY ts DESC, id DESC LIMIT ?",
            (user_id, int(limit)),
        ).fetchall()
        found = conn.execute(
            "SELECT text, categories, updated_at FROM profiles WHERE user_id = ?", (user_id,)
        ).fetchone()
        profile = None
        if found is not None:
            profile = UserProfile(user_id, found[0], tuple(json.loads(found[1])), int(found[2]))
        events = [StoredEvent(user_id, item, ts, event, value) for item, ts, event, value in rows]
        return UserHistory(events, profile)

    @_guarded
    def erase_user(self, user_id: str) -> tuple[int, bool]:
        events, profiles = self._write(
            ("DELETE FROM events WHERE user_id = ?", [(user_id,)]),
            ("DELETE FROM profiles WHERE user_id = ?", [(user_id,)]),
        )
        return int(events), profiles > 0

    @_guarded
    def save(self, items: Sequence[ItemRecord] = (), profiles: Sequence[UserProfile] = ()) -> None:
        if not items and not profiles:
            return
        now = int(time.time())
        item_rows = [
            (r.item_id, json.dumps(r.fields, ensure_ascii=False), int(r.in_stock), int(r.deleted),
             r.updated_at or now)
            for r in items
        ]
        profile_rows = [
            (p.user_id, p.text, json.dumps(list(p.categories), ensure_ascii=False), p.updated_at or now)
            for p in profiles
        ]
        self._write(
            ("INSERT INTO items (item_id, data, in_stock, deleted, updated_at) VALUES (?, ?, ?, ?, ?)"
             " ON CONFLICT (item_id) DO UPDATE SET data = excluded.data, in_stock = excluded.in_stock,"
             " deleted = excluded.deleted, updated_at = excluded.updated_at", item_rows),
            ("INSERT INTO profiles (user_id, text, categories, updated_at) VALUES (?, ?, ?, ?)"
             " ON CONFLICT (user_id) DO UPDATE SET text = excluded.text,"
             " categories = excluded.categories, updated_at = excluded.updated_at", profile_rows),
        )

    @_guarded
    def snapshot(self, with_events: bool = True) -> Snapshot:
        conn = self._reader()
        conn.execute("BEGIN")  # one consistent read of both tables
        try:
            n = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
            items = [
                ItemRecord(item_id, json.loads(data), bool(in_stock), bool(deleted), int(updated))
                for item_id, data, in_stock, deleted, updated in conn.execute(
                    "SELECT item_id, data, in_stock, deleted, updated_at FROM items ORDER BY updated_at, item_id"
                )
            ]
            events = None
            if with_events:
                rows = conn.execute("SELECT user_id, item_id, ts, event, value FROM events ORDER BY id").fetchall()
                events = events_from_rows(rows)
        finally:
            conn.execute("COMMIT")
        return Snapshot(n_events=n, items=items, events=events)

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
