"""PostgreSQL event store (``--db postgresql://user@host:port/db``; the ``postgres`` extra).

Each write is one transaction committed before the method returns; with PostgreSQL's default
``synchronous_commit=on`` the commit waits for the WAL flush, so an acknowledged event
survives a crash of either process. Events are written with ``COPY`` (fast batches). Each
thread has its own connection (the service's worker threads are few and long-lived).

A lost connection (the server restarted, the session was terminated) costs no restart of
the service: a connection the server closed while idle is noticed before its next use (no
round trip) and replaced; a read that fails because its connection broke is tried once more
on a new one; a write that fails is reported (``StorageError``, the service answers 503) and
the next call reconnects. While the server is down, every call fails fast (connection
refused, or ``connect_timeout`` when the host does not answer).

Several ``coldbrew serve`` processes may share one database (replicas, see
:mod:`coldbrew.service.replicas`); for them the store also keeps, in the same schema:

* ``replica_sync (name, seq)``: counters. ``items`` is bumped by every catalog write in the
  same transaction as its rows, and the row lock it takes makes item writers commit in
  counter order; each item row carries the counter value in ``items.rev``, so "every item
  changed since revision r" is one indexed query. ``model`` numbers model activations,
  ``names`` hands out version names.
* ``model_versions``: the model versions replicas activated (name, directory, activation
  number): the one with the highest number is the active model of every replica.

Tables and columns are created when missing (idempotent, serialised by an advisory lock, so
replicas starting at the same moment do not race on ``CREATE TABLE``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from coldbrew.errors import ConfigError
from coldbrew.storage.event_store import (
    ItemRecord,
    SharedVersion,
    Snapshot,
    StorageError,
    StoredEvent,
    UserHistory,
    UserProfile,
    events_from_rows,
)

__all__ = ["PostgresEventStore"]


def _guarded(method=None, *, retry: bool = False):
    """Report lost connections and server errors as ``StorageError`` (the service answers 503).

    A broken connection is dropped, so the next call of that thread reconnects. ``retry``
    (reads only, never writes: a write whose COMMIT was cut off may have committed): a read
    that fails on a connection which turns out broken is tried once more on a new one, so
    the first request of each thread after the database came back does not fail.
    """
    import functools

    def wrap(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            errors = (self._psycopg.OperationalError, self._psycopg.InterfaceError)
            for attempt in (0, 1):
                try:
                    return method(self, *args, **kwargs)
                except errors as exc:
                    conn = getattr(self._local, "conn", None)
                    broken = conn is not None and (conn.closed or conn.broken)
                    if broken:
                        self._discard(conn)
                    if retry and broken and attempt == 0:
                        continue
                    raise StorageError(f"event store (PostgreSQL): {str(exc).strip()}") from exc
            raise AssertionError("unreachable")

        return wrapper

    return wrap if method is None else wrap(method)


# Connection parameters added unless the URL sets them: a database host that does not answer
# fails a request after CONNECT_TIMEOUT_S instead of holding it for minutes, keepalives find
# a connection whose peer vanished, and the name lets an operator find (or terminate) the
# service's sessions in pg_stat_activity.
CONNECT_TIMEOUT_S = 5
_CONNECT_DEFAULTS = {
    "connect_timeout": str(CONNECT_TIMEOUT_S), "application_name": "coldbrew",
    "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3",
}


def _dropped(conn) -> bool:
    """Whether the server closed an idle connection (restart, ``pg_terminate_backend``) while
    it sat unused: checked before it is used again, without a round trip.

    An idle session receives nothing unasked but the server's farewell (an error message, then
    the end of the stream) and, rarely, a notice: a readable socket means the session is over,
    or almost always so (a needless reconnect costs a few milliseconds).
    """
    import select

    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except Exception:  # the socket is gone already
        return True
    return bool(readable)


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
        self._sync = f"{s}.replica_sync"
        self._versions = f"{s}.model_versions"
        try:
            conn = self._conn()
        except StorageError as exc:
            raise ConfigError(f"--db: {exc}") from None
        with conn.transaction():
            # Replicas starting together would race on CREATE TABLE IF NOT EXISTS (a unique
            # violation in pg_type); one schema's migrations run one at a time.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"coldbrew:{schema}",))
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
            conn.execute(f"ALTER TABLE {self._items} ADD COLUMN IF NOT EXISTS rev BIGINT NOT NULL DEFAULT 0")
            conn.execute(f"CREATE INDEX IF NOT EXISTS items_rev ON {self._items} (rev)")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self._sync} (name TEXT PRIMARY KEY, seq BIGINT NOT NULL)")
            conn.execute(
                f"INSERT INTO {self._sync} (name, seq) VALUES ('items', 0), ('model', 0), ('names', 0)"
                " ON CONFLICT (name) DO NOTHING"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._versions} (version TEXT PRIMARY KEY,"
                " directory TEXT NOT NULL, seq BIGINT NOT NULL, created_at TEXT NOT NULL,"
                " events BIGINT NOT NULL, items BIGINT NOT NULL, base TEXT NOT NULL)"
            )

    def __repr__(self) -> str:
        return f"PostgresEventStore(schema={self.schema!r})"

    def _conn(self):
        """This thread's connection: a new one when it has none or its session has ended."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.broken or _dropped(conn)):
            self._discard(conn)
            conn = None
        if conn is None:
            try:
                conn = self._psycopg.connect(self.conninfo, autocommit=True, **self._connect_defaults())
            except self._psycopg.OperationalError as exc:
                raise StorageError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _connect_defaults(self) -> dict[str, str]:
        from psycopg.conninfo import conninfo_to_dict

        given = conninfo_to_dict(self.conninfo)
        return {k: v for k, v in _CONNECT_DEFAULTS.items() if k not in given}

    def _discard(self, conn) -> None:
        """Forget a connection that broke (this thread reconnects on its next call)."""
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._all_lock:
            self._all = [c for c in self._all if c is not conn]
        try:
            conn.close()
        except Exception:
            pass

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

    @_guarded(retry=True)
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
                # The counter's row lock is held to the commit: item writes commit in revision
                # order, so a replica that saw revision r has seen every write below it.
                rev = int(cur.execute(
                    f"UPDATE {self._sync} SET seq = seq + 1 WHERE name = 'items' RETURNING seq"
                ).fetchone()[0])
                cur.executemany(
                    f"INSERT INTO {self._items} (item_id, data, in_stock, deleted, updated_at, rev)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (item_id) DO UPDATE SET"
                    " data = EXCLUDED.data, in_stock = EXCLUDED.in_stock, deleted = EXCLUDED.deleted,"
                    " updated_at = EXCLUDED.updated_at, rev = EXCLUDED.rev",
                    [(*row, rev) for row in item_rows],
                )
            if profile_rows:
                cur.executemany(
                    f"INSERT INTO {self._profiles} (user_id, text, categories, updated_at)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (user_id) DO UPDATE SET"
                    " text = EXCLUDED.text, categories = EXCLUDED.categories,"
                    " updated_at = EXCLUDED.updated_at",
                    profile_rows,
                )

    @_guarded(retry=True)
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

    # ------------------------------------------------------------------ replicas
    @_guarded(retry=True)
    def change_counters(self) -> dict[str, int]:
        rows = self._conn().execute(f"SELECT name, seq FROM {self._sync}").fetchall()
        return {str(name): int(seq) for name, seq in rows}

    @_guarded(retry=True)
    def items_since(self, revision: int) -> tuple[list[ItemRecord], int]:
        rows = self._conn().execute(
            f"SELECT item_id, data, in_stock, deleted, updated_at, rev FROM {self._items}"
            " WHERE rev > %s ORDER BY rev, item_id",
            (int(revision),),
        ).fetchall()
        records = [
            ItemRecord(item_id, json.loads(data), bool(in_stock), bool(deleted), int(updated))
            for item_id, data, in_stock, deleted, updated, _ in rows
        ]
        return records, max([int(revision)] + [int(row[5]) for row in rows])

    @_guarded
    def reserve_version(self, at_least: int) -> str:
        n = self._conn().execute(
            f"UPDATE {self._sync} SET seq = GREATEST(seq + 1, %s) WHERE name = 'names' RETURNING seq",
            (int(at_least),),
        ).fetchone()[0]
        return f"v{int(n)}"

    @_guarded
    def record_version(self, version: SharedVersion) -> int:
        conn = self._conn()
        with conn.transaction():
            seq = int(conn.execute(
                f"UPDATE {self._sync} SET seq = seq + 1 WHERE name = 'model' RETURNING seq"
            ).fetchone()[0])
            conn.execute(
                f"INSERT INTO {self._versions} (version, directory, seq, created_at, events, items, base)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (version) DO UPDATE SET"
                " directory = EXCLUDED.directory, seq = EXCLUDED.seq, created_at = EXCLUDED.created_at,"
                " events = EXCLUDED.events, items = EXCLUDED.items, base = EXCLUDED.base",
                (version.version, version.directory, seq, version.created_at, int(version.events),
                 int(version.items), version.base),
            )
        return seq

    @_guarded(retry=True)
    def versions(self) -> list[SharedVersion]:
        rows = self._conn().execute(
            f"SELECT version, directory, seq, created_at, events, items, base FROM {self._versions} ORDER BY seq"
        ).fetchall()
        return [SharedVersion(str(v), str(d), int(q), str(c), int(e), int(i), str(b)) for v, d, q, c, e, i, b in rows]

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold a lock named ``name`` among all processes using this schema (e.g. replicas
        seeding an empty store at start-up: one seeds, the others then find it seeded).

        The lock belongs to this thread's connection: do the guarded work on this thread.
        """
        conn = self._conn()
        key = f"coldbrew:{self.schema}:{name}"
        try:
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        except self._psycopg.OperationalError as exc:
            raise StorageError(f"event store (PostgreSQL): {str(exc).strip()}") from exc
        try:
            yield
        finally:
            if not (conn.closed or conn.broken):
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))

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
