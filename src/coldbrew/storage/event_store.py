"""The event store: where the service keeps events and catalog changes, durably.

One small protocol with two implementations chosen by URL (as Gorse does):
``sqlite:///path/to/events.db`` (the default, embedded) and ``postgresql://user@host/db``
(:mod:`coldbrew.storage.postgres_store`, needs the ``postgres`` extra).

Every write method returns only after the data is committed, so the service can answer 2xx
knowing an acknowledged event survives a crash of the process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qs, urlsplit, urlunsplit

from coldbrew.data.events import Events
from coldbrew.errors import ColdbrewError, ConfigError

__all__ = [
    "EventStore",
    "StoredEvent",
    "ItemRecord",
    "UserProfile",
    "UserHistory",
    "Snapshot",
    "SharedVersion",
    "ReplicatedStore",
    "open_store",
    "ITEM_FIELDS",
    "StorageError",
]

# The catalog fields an item record may carry (besides item_id, in_stock and deleted).
ITEM_FIELDS = ("title", "description", "category", "brand", "price", "tags")


class StorageError(ColdbrewError, RuntimeError):
    """The database could not be used (down, locked, out of space): nothing was stored.

    ``status`` is the HTTP status the service answers with: 503 (unavailable: down, locked,
    read-only) or 507 (out of space); ``retry_after`` the seconds it suggests to wait.
    """

    def __init__(self, message: str, *, status: int = 503, retry_after: int = 1) -> None:
        super().__init__(message)
        self.status = int(status)
        self.retry_after = int(retry_after)


@dataclass(frozen=True)
class StoredEvent:
    """One event as stored: the (possibly pseudonymised) user, the item, unix seconds."""

    user_id: str
    item_id: str
    timestamp: int
    event: str = "view"
    value: float | None = None


@dataclass(frozen=True)
class ItemRecord:
    """A catalog change made through the service: the full current state of one item.

    ``fields`` holds any of :data:`ITEM_FIELDS`; ``deleted`` items are kept as tombstones so
    that a restart (or a retrain from the original model) never brings them back.
    """

    item_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    in_stock: bool = True
    deleted: bool = False
    updated_at: int = 0


@dataclass(frozen=True)
class UserProfile:
    """What a user told the shop about themselves at onboarding (free text, categories)."""

    user_id: str
    text: str = ""
    categories: tuple[str, ...] = ()
    updated_at: int = 0


@dataclass(frozen=True)
class UserHistory:
    """A user's most recent events (latest first) and their onboarding profile, if any."""

    events: list[StoredEvent]
    profile: UserProfile | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything a store holds, for a retrain or a restart.

    ``events`` is ``None`` when the snapshot was taken without them.
    """

    n_events: int
    items: list[ItemRecord]
    events: Events | None = None


@runtime_checkable
class EventStore(Protocol):
    """Durable storage of events and catalog changes (plus ``close``)."""

    def append(self, events: Sequence[StoredEvent]) -> int:
        """Store events atomically (all or none) and commit; returns how many."""
        ...

    def history(self, user_id: str, limit: int) -> UserHistory:
        """The user's most recent events, latest first (at most ``limit``), and profile."""
        ...

    def erase_user(self, user_id: str) -> tuple[int, bool]:
        """Delete a user's events and profile; returns (events deleted, whether a profile was)."""
        ...

    def save(self, items: Sequence[ItemRecord] = (), profiles: Sequence[UserProfile] = ()) -> None:
        """Insert or replace item records and user profiles atomically, and commit."""
        ...

    def snapshot(self, with_events: bool = True) -> Snapshot:
        """The event count, every item record and (optionally) all events in arrival order."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class SharedVersion:
    """A model version some replica activated, as a shared store records it.

    ``directory`` is the path the replica wrote it to (other replicas load it from there, so
    it must be on a filesystem they all read); ``seq`` orders activations (the highest is the
    active version); ``base`` identifies the model directory the replica was started with.
    """

    version: str
    directory: str
    seq: int = 0
    created_at: str = ""
    events: int = 0
    items: int = 0
    base: str = ""


@runtime_checkable
class ReplicatedStore(Protocol):
    """A store several ``coldbrew serve`` processes share (PostgreSQL), so they can agree.

    Item records carry a revision from one counter that item writers take in commit order,
    so a replica that has applied everything up to revision ``r`` only needs the rows above
    it. Model activations are numbered by a second counter. SQLite stores do not implement
    this: a SQLite service is one process.
    """

    def change_counters(self) -> dict[str, int]:
        """``{"items": latest item revision, "model": latest activation}`` (one cheap query)."""
        ...

    def items_since(self, revision: int) -> tuple[list[ItemRecord], int]:
        """Current records of the items changed after ``revision``, and the highest revision seen."""
        ...

    def reserve_version(self, at_least: int) -> str:
        """A version name (``v<n>``, ``n >= at_least``) no replica of this store has used."""
        ...

    def record_version(self, version: SharedVersion) -> int:
        """Record a version and make it the active one; returns its activation number."""
        ...

    def versions(self) -> list[SharedVersion]:
        """Every recorded version, oldest activation first (the last one is active)."""
        ...


def open_store(url: str) -> EventStore:
    """Open (creating tables if needed) the store a URL names.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or ``postgresql://...``;
    a ``?schema=NAME`` query parameter puts the PostgreSQL tables in their own schema.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        from coldbrew.storage.sqlite_store import SQLiteEventStore

        path = url[len("sqlite:///"):] if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(f"--db {url!r}: expected sqlite:///path/to/events.db")
        return SQLiteEventStore(path)
    if scheme in ("postgresql", "postgres"):
        from coldbrew.storage.postgres_store import PostgresEventStore

        query = parse_qs(parts.query)
        schema = query.pop("schema", ["public"])[-1]
        rest = "&".join(f"{k}={v}" for k, values in query.items() for v in values)
        conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        return PostgresEventStore(conninfo, schema=schema)
    raise ConfigError(
        f"--db {url!r}: unknown database; expected sqlite:///path or postgresql://user@host/db"
    )


def events_from_rows(rows: Sequence[tuple[str, str, int, str, float | None]]) -> Events:
    """Build an :class:`Events` batch from ``(user_id, item_id, ts, event, value)`` rows.

    Column-wise (one list per column, then one array each): a retrain reads ~10^6 rows while
    the server keeps answering, so no per-row Python work.
    """
    import numpy as np

    if not rows:
        empty = np.empty(0, dtype=object)
        return Events(empty, empty.copy(), np.empty(0, np.int64), empty.copy(), np.empty(0, np.float64))
    users, items, ts, kinds, values = ([row[c] for row in rows] for c in range(5))
    raw = np.array(values, dtype=object)
    missing = np.equal(raw, None)
    raw[missing] = np.nan
    return Events(
        np.array(users, dtype=object), np.array(items, dtype=object), np.array(ts, dtype=np.int64),
        np.array(kinds, dtype=object), raw.astype(np.float64),
    )
