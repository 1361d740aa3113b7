"""Service replicas: several ``coldbrew serve`` processes on one PostgreSQL database agree.

What each replica reads straight from the database on every request needs nothing more:
events (a user's history), onboarding profiles and erasures are visible to every replica in
its very next answer. What a replica holds in memory is brought in line by a
:class:`ReplicaFollower`, a background thread that polls the store's change counters every
:data:`POLL_INTERVAL_S` seconds (one primary-key query on a three-row table when nothing
changed):

* products added, changed, deleted or taken out of stock through any replica (the ``items``
  counter): the changed records are read and applied to the live model as a local
  ``POST /v1/items`` would. **Bound**: a product change committed by one replica shows in
  every other replica's answers within ``POLL_INTERVAL_S`` plus the time to apply it (a few
  milliseconds per product, encoding its text): about 0.3 s, tested at 1 s.
* the active model version (the ``model`` counter): a retrain finished by one replica is
  recorded (name, directory, activation number) before that replica swaps it in; the others
  load it from the recorded directory and swap it in the same way. **Bound**:
  ``POLL_INTERVAL_S`` plus the time to load and warm the model (well under a second for a
  small catalog; seconds for a large one). Model directories are not copied: every replica
  must be able to read the directory the retraining replica wrote (the same machine, or a
  shared volume mounted at the same path). A replica that cannot load a version logs it,
  keeps serving the one it has and tries again every :data:`RETRY_LOAD_S` seconds.

Writes go to the database first (committed), then to the replica's own memory, so no
replica's state is ever ahead of the database. A replica started later serves the active
version recorded in the database when it was retrained from the same model directory
contents (the same ``manifest.json``) as its own ``MODEL_DIR``; a replica started on a
different model keeps its own until the next retrain.

With a SQLite store (one process) no follower runs and nothing changes.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from coldbrew.storage.event_store import ReplicatedStore, SharedVersion

__all__ = ["ReplicaFollower", "POLL_INTERVAL_S", "RETRY_LOAD_S", "model_base", "start_version"]

log = logging.getLogger("coldbrew.service")

POLL_INTERVAL_S = 0.25
"""How often a replica asks the database whether anything changed (seconds)."""

RETRY_LOAD_S = 10.0
"""How long a replica waits before trying again to load a version it could not load (seconds)."""


def model_base(model_dir: Path) -> str:
    """Identity of a model directory's contents: a hash of its ``manifest.json``."""
    try:
        data = (Path(model_dir) / "manifest.json").read_bytes()
    except OSError:
        return ""
    return hashlib.sha256(data).hexdigest()[:16]


def start_version(store: ReplicatedStore, registry: Any, base: str) -> tuple[str, Path, int]:
    """The model version a replica starts with: ``(name, directory, activation number)``.

    The database's active version when it descends from the same model directory as this
    replica's (``base``), else the local registry's active one (activation number: the
    database's latest, so that version is not followed either, only newer ones).
    """
    local = str(registry.read()["active"])
    shared = store.versions()
    if not shared:
        return local, registry.directory(local), 0
    active = shared[-1]
    if active.base == base:
        return active.version, Path(active.directory), active.seq
    log.warning("the active model version %s in the database was retrained from another model directory;"
                " serving %s's own version %s until the next retrain", active.version, registry.model_dir, local)
    return local, registry.directory(local), active.seq


class ReplicaFollower:
    """Keeps one replica's in-memory catalog and model in line with a shared store.

    Parameters
    ----------
    state: the replica's :class:`~coldbrew.service.state.ServiceState`.
    store: its store (a :class:`~coldbrew.storage.event_store.ReplicatedStore`).
    base: :func:`model_base` of the replica's model directory (recorded with its versions).
    model_seq: activation number of the version the replica serves (0: none recorded).
    directory: the directory of the version the replica serves.
    interval: seconds between polls (:data:`POLL_INTERVAL_S`).

    Create it *before* reading the store's item records at start-up: it starts from the item
    revision current at creation, so nothing written in between is missed (records read
    twice are harmless: applying a record is idempotent).
    """

    def __init__(self, state: Any, store: ReplicatedStore, base: str, model_seq: int, directory: Path,
                 interval: float = POLL_INTERVAL_S) -> None:
        self.state = state
        self.store = store
        self.base = base
        self.interval = float(interval)
        self.model_seq = int(model_seq)
        self.directory = Path(directory)
        self.swap_lock = threading.Lock()  # a check of model_seq and the swap it allows are one step
        self.polls = 0
        self._items_rev = int(store.change_counters().get("items", 0))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loader: threading.Thread | None = None
        self._failed: dict[int, float] = {}  # activation number -> when its load last failed
        self._failing = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="coldbrew-replica-sync", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop polling (waits for a poll in progress; a model being loaded is abandoned)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # the database is down, say: keep serving, try again
                if not self._failing:
                    log.warning("replica sync: %s; trying again every %.2f s", exc, self.interval)
                self._failing = True
            else:
                if self._failing:
                    log.info("replica sync: the database answers again")
                self._failing = False

    def poll(self) -> None:
        """One round: apply new item records; start loading a newly activated model version."""
        self.polls += 1
        counters = self.store.change_counters()
        if counters.get("items", 0) > self._items_rev:
            with self.state.catalog_lock:
                self.catch_up(counters["items"])
        activation = counters.get("model", 0)
        failed_at = self._failed.get(activation)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_LOAD_S:
            return  # that version could not be loaded a moment ago
        if activation > self.model_seq and (self._loader is None or not self._loader.is_alive()):
            self._loader = threading.Thread(target=self._follow_model, name="coldbrew-replica-model", daemon=True)
            self._loader.start()

    # ------------------------------------------------------------------ catalog
    def catch_up(self, seen: int = 0) -> int:
        """Apply the item records written since the last catch-up (hold ``state.catalog_lock``).

        ``seen``: an ``items`` counter value read before this call (every write up to it is
        committed, so the next catch-up can start there). Returns how many records changed
        something here (records this replica wrote itself change nothing).
        """
        from coldbrew.service.state import catalog_from_records

        state = self.state
        records, rev = self.store.items_since(self._items_rev)
        self._items_rev = max(rev, int(seen))
        with state.lock.read():
            fresh = [r for r in records if not state.holds(r)]
        if not fresh:
            return 0
        live = [r for r in fresh if not r.deleted]
        if live:  # encode outside the write lock (readers wait for it); the cache answers inside
            state.model.encode(catalog_from_records(live).texts())
        follow: list = []
        with state.lock.write():
            state.apply_items(state.model, fresh, follow)
        for wait in follow:  # the scoring process follows too, awaited outside the write lock
            wait()
        if state.metrics is not None:
            state.metrics.model_items.set(len(state.model.item_map_))
        return len(fresh)

    # ------------------------------------------------------------------ model versions
    def reserve_version(self, at_least: int) -> str:
        """A version name no replica has used (at least ``v<at_least>``)."""
        return self.store.reserve_version(at_least)

    def versions(self) -> list[SharedVersion]:
        """The versions replicas activated, oldest first (the last is active)."""
        return self.store.versions()

    def activate(self, fresh: Any, version: str, directory: Path, entry: dict[str, Any]) -> bool:
        """Record a version this replica trained as the active one, then swap it in here.

        The record is committed first: other replicas pick it up within the bound. Returns
        ``False`` when a newer activation was followed meanwhile (then it is not swapped in).
        """
        from coldbrew.service.retrain import swap_model

        record = SharedVersion(
            version=version, directory=str(Path(directory).resolve()), created_at=str(entry.get("created_at", "")),
            events=int(entry.get("events", 0)), items=int(entry.get("items", 0)), base=self.base,
        )
        seq = self.store.record_version(record)
        with self.swap_lock:
            if seq <= self.model_seq:
                return False
            swap_model(self.state, fresh, directory, version)
            self.model_seq, self.directory = seq, Path(directory)
        return True

    def _follow_model(self) -> None:
        from coldbrew.service.retrain import swap_model
        from coldbrew.service.state import prepare_model
        from coldbrew.storage import load_model

        try:
            versions = self.store.versions()
        except Exception as exc:
            log.warning("replica sync: cannot read the model versions: %s", exc)
            return
        if not versions or versions[-1].seq <= self.model_seq:
            return
        active = versions[-1]
        failed_at = self._failed.get(active.seq)
        if failed_at is not None and time.monotonic() - failed_at < RETRY_LOAD_S:
            return
        directory = Path(active.directory)
        if directory.resolve() == self.directory.resolve():  # already serving it (e.g. recorded here)
            with self.swap_lock:
                self.model_seq = max(self.model_seq, active.seq)
            return
        started = time.perf_counter()
        try:
            fresh = load_model(directory)
            prepare_model(fresh)
        except Exception as exc:
            if active.seq not in self._failed:
                log.warning("replica sync: cannot load model version %s from %s (%s: %s); still serving %s,"
                            " trying again every %.0f s", active.version, directory, type(exc).__name__, exc,
                            self.state.model_version, RETRY_LOAD_S)
            self._failed[active.seq] = time.monotonic()
            return
        with self.swap_lock:
            if active.seq <= self.model_seq:  # this replica activated a newer one meanwhile
                return
            swap_model(self.state, fresh, directory, active.version)
            self.model_seq, self.directory = active.seq, directory
        self._failed.pop(active.seq, None)
        log.info("replica sync: now serving model version %s (activated by another replica; loaded in %.1f s)",
                 active.version, time.perf_counter() - started)
