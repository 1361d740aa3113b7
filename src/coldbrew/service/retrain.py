"""Model versions and background retraining with an atomic hot swap.

Versions live in ``<model_dir>/versions/``: ``versions.json`` (the registry: which version is
active, and each version's events, items and status) and one model directory per retrained
version (``v1``, ``v2``, ...). ``v0`` is the model directory the service was started with.

A retrain reads every stored event and the live catalog and runs ``coldbrew fit`` on them in a
child process at a lower CPU priority, watched by a background thread (requests keep being
answered by the active model, without competing for the server's interpreter). The new version
is loaded and warmed up, then the model lock is taken for a moment to catch up with catalog
changes made meanwhile and swap.

Crash safety (``benchmarks/run_crash.py`` kills the server at random points of retrains): a
version is written to ``versions/.vN.partial-<pid>`` and renamed to ``versions/vN`` only when
complete; the fit process is killed with the server (``PR_SET_PDEATHSIG`` on Linux) instead
of running on as an orphan; the registry names the new version active before it is swapped
in, so a version a client has seen active is the one a restart loads. Staging directories of
dead processes are removed at the next start.

On a PostgreSQL store shared by several replicas (:mod:`coldbrew.service.replicas`), version
names come from the database (no two replicas train the same ``vN``) and the new version is
recorded there as the active one before it is swapped in; the other replicas load it from
this replica's ``versions/`` directory, so that directory must be readable by all of them.

Size (about 430 lines): the registry, the child fit process and the swap are one
crash-safety protocol, kept in one file so its invariants read in one place.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from coldbrew.errors import ModelFormatError

__all__ = ["VersionRegistry", "Retrainer", "load_active_model", "swap_model", "remove_stale_staging"]

log = logging.getLogger("coldbrew.service")
_REGISTRY = "versions.json"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class VersionRegistry:
    """The ``versions.json`` file of a model directory (written atomically)."""

    def __init__(self, model_dir: Path, versions_dir: Path) -> None:
        self.model_dir = Path(model_dir)
        self.versions_dir = Path(versions_dir)
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self.versions_dir / _REGISTRY

    def read(self) -> dict[str, Any]:
        """``{"active": name, "versions": [{version, created_at, events, items, status, ...}]}``."""
        if not self.path.is_file():
            return {"active": "v0", "versions": [self._base_entry()]}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"{self.path} is damaged ({exc}); remove it to serve {self.model_dir}") from None
        if not isinstance(data, dict) or "active" not in data or not isinstance(data.get("versions"), list):
            raise ModelFormatError(f"{self.path} is not a version registry; remove it to serve {self.model_dir}")
        return data

    def _base_entry(self) -> dict[str, Any]:
        try:
            manifest = json.loads((self.model_dir / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        report = manifest.get("fit_report", {})
        return {
            "version": "v0", "created_at": manifest.get("created_at", ""),
            "events": int(report.get("events", 0)), "items": int(manifest.get("items", 0)),
            "status": "ready",
        }

    def directory(self, version: str) -> Path:
        return self.model_dir if version == "v0" else self.versions_dir / version

    def next_name(self) -> str:
        numbers = [_version_number(str(v["version"])) for v in self.read()["versions"]]
        return f"v{max(numbers, default=0) + 1}"

    def prune(self, keep: int) -> list[str]:
        """Delete the directories of all but the ``keep`` newest retrained versions.

        ``v0`` (the model directory) and the active version are never deleted; pruned versions
        stay in the registry with status ``removed``. Returns the names removed.

        Crash-safe: the registry marks them ``removed`` first, then each directory is renamed
        out of sight (``.vN.partial-<pid>``, one atomic step) and only then deleted, so a crash
        never leaves a half-deleted directory under a version's name nor a "ready" version
        without its directory. A directory of a ``removed`` version that a crash left behind is
        deleted by the next prune (a renamed one by :func:`remove_stale_staging` at start).
        """
        import shutil

        with self._lock:
            data = self.read()
            retrained = sorted(
                (v for v in data["versions"] if v["version"] != "v0" and v.get("status") == "ready"),
                key=lambda v: _version_number(v["version"]),
            )
            old = [v for v in retrained[: max(len(retrained) - keep, 0)] if v["version"] != data["active"]]
            for entry in old:
                entry["status"] = "removed"
            if old:
                self._write(data)
            for entry in data["versions"]:
                name = str(entry["version"])
                path = self.directory(name)
                if entry.get("status") != "removed" or name in ("v0", data["active"]) or not path.is_dir():
                    continue
                trash = _staging_dir(path)
                shutil.rmtree(trash, ignore_errors=True)
                os.replace(path, trash)
                shutil.rmtree(trash, ignore_errors=True)
        return [v["version"] for v in old]

    def _write(self, data: dict[str, Any]) -> None:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{_REGISTRY}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def record(self, entry: dict[str, Any], activate: bool) -> None:
        """Add or replace a version entry (and make it the active one)."""
        with self._lock:
            data = self.read()
            data["versions"] = [v for v in data["versions"] if v["version"] != entry["version"]] + [entry]
            if activate:
                data["active"] = entry["version"]
            self._write(data)


def _version_number(name: str) -> int:
    return int(name[1:]) if name[1:].isdigit() else -1


def load_active_model(registry: VersionRegistry, encoder=None) -> tuple[Any, str]:
    """Load the active version's model; returns ``(recommender, version name)``."""
    from coldbrew.storage import load_model

    active = str(registry.read()["active"])
    return load_model(registry.directory(active), encoder=encoder), active


def swap_model(state: Any, fresh: Any, directory: Path, version: str) -> None:
    """Make a loaded, warmed-up model the active one of ``state`` (and of its scoring process).

    The item records in the store are replayed onto it under the write lock, so catalog
    changes made while it was trained or loaded are not lost.
    """
    state.replicate(lambda scorer: scorer.stage(directory, state.store.snapshot(with_events=False).items))
    with state.lock.write():
        items = state.store.snapshot(with_events=False).items
        state.apply_items(fresh, items)
        state.replicate(lambda scorer: scorer.commit(items))
        state.model = fresh
        state.model_version = version
        state.invalidate_items()
    if state.metrics is not None:
        state.metrics.set_model(version, len(fresh.item_map_))
        state.metrics.model_swaps.inc()


_STAGING = ".partial-"  # versions/.v3.partial-<pid>: a version being written by process <pid>


def _staging_dir(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}{_STAGING}{os.getpid()}")


def remove_stale_staging(versions_dir: Path) -> list[str]:
    """Delete the half-written versions a crashed (killed) server left in ``versions_dir``.

    Only directories of processes that are gone are removed (another server on the same
    directory may be writing one right now). Returns the names removed.
    """
    import shutil

    removed = []
    if not versions_dir.is_dir():
        return removed
    for path in versions_dir.iterdir():
        name = path.name
        if not (name.startswith(".") and _STAGING in name and path.is_dir()):
            continue
        pid = name.rsplit(_STAGING, 1)[1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _child_setup(parent: int) -> Any:
    """The fit's child process setup (``preexec_fn``): a lower CPU priority and, on Linux,
    death with the server (``PR_SET_PDEATHSIG``).

    Without the second, a server killed mid-retrain (SIGKILL, the OOM killer) left its fit
    running: it kept a core busy and, after a restart, wrote a version nobody had asked for.
    Everything that loads a library is done here, before the fork; the returned function only
    makes system calls (the child of a threaded process must not take locks).
    """
    prctl = None
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None

    def setup() -> None:
        os.nice(10)
        if prctl is not None:
            prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
            if os.getppid() != parent:  # the server died before that: fit for nobody
                os._exit(1)

    return setup


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def install_version(staging: Path, directory: Path) -> None:
    """Move a complete version from ``staging`` to ``directory`` in one atomic rename.

    A directory already at ``directory`` (written by a server that crashed before recording
    it in the registry) is first renamed out of sight (``.vN.old.partial-<pid>``) and only
    then deleted, so a crash during the delete leaves a staging-named directory for
    :func:`remove_stale_staging`, never a half-deleted one under the version's name (the
    20-kill PostgreSQL retrain case found one).
    """
    import shutil

    if directory.exists():
        trash = directory.with_name(f".{directory.name}.old{_STAGING}{os.getpid()}")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(directory, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(staging, directory)
    _fsync_dir(directory.parent)


def _fit_in_subprocess(catalog: Any, events: Any, config: Any, active_dir: Path, directory: Path) -> None:
    """Run ``coldbrew fit`` on a catalog and events in a child process, writing ``directory``.

    A child process, at a lower CPU priority (nice 10), keeps the fit from competing with
    the requests being served (no shared GIL; the scheduler favours the server). The active
    version's embedding cache is copied in first, so only texts new since then are encoded.
    Raises ``RuntimeError`` with the child's error line when the fit fails.

    The version is written to a staging directory (``.vN.partial-<pid>``) and renamed to
    ``directory`` only once complete, so a crash at any point leaves no half-written version
    under a version's name; a directory of that name left by an earlier crash (written but
    never recorded in the registry) is replaced.
    """
    import dataclasses
    import shutil
    import subprocess

    import pandas as pd

    from coldbrew.config import ColumnsConfig

    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(directory.parent)
    staging = _staging_dir(directory)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    work = staging / ".retrain-input"
    work.mkdir()
    try:
        frame = catalog.to_frame()[["item_id", "title", "description", "category", "brand", "tags", "price"]]
        frame.to_parquet(work / "catalog.parquet", index=False)
        pd.DataFrame({
            "user_id": events.user_ids.astype(str), "item_id": events.item_ids.astype(str),
            "timestamp": events.timestamps, "event": events.events.astype(str), "value": events.values,
        }).to_parquet(work / "events.parquet", index=False)
        # The files above use coldbrew's own column names, whatever the shop's original ones.
        plain = dataclasses.replace(config, columns=ColumnsConfig())
        (work / "config.json").write_text(json.dumps(plain.to_dict()), encoding="utf-8")
        cache = active_dir / "embedding_cache.npz"
        if cache.is_file():
            shutil.copyfile(cache, staging / "embedding_cache.npz")
        command = [sys.executable, "-m", "coldbrew.cli", "fit", "--catalog", str(work / "catalog.parquet"),
                   "--events", str(work / "events.parquet"), "--out", str(staging),
                   "--config", str(work / "config.json")]
        done = subprocess.run(command, capture_output=True, text=True, preexec_fn=_child_setup(os.getpid()))
        if done.returncode != 0:
            lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
            raise RuntimeError(lines[-1] if lines else f"coldbrew fit exited with {done.returncode}")
        shutil.rmtree(work)
        install_version(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # no half-written version is left behind


class Retrainer:
    """Runs one retrain at a time in a background thread and swaps the result in.

    Parameters
    ----------
    state: the :class:`~coldbrew.service.state.ServiceState` whose model is replaced.
    registry: where versions are recorded.
    """

    def __init__(self, state: Any, registry: VersionRegistry) -> None:
        self.state = state
        self.registry = registry
        self._lock = threading.Lock()
        self._job: dict[str, Any] | None = None
        self._thread: threading.Thread | None = None
        try:  # what a retrain cut off by a crash left behind
            remove_stale_staging(registry.versions_dir)
        except OSError as exc:
            log.warning("cannot clean %s: %s", registry.versions_dir, exc)

    @property
    def job(self) -> dict[str, Any] | None:
        """The latest job (running or finished), if any."""
        return self._job

    @property
    def running(self) -> dict[str, Any] | None:
        """The job in progress, if any."""
        job = self._job
        return job if job is not None and job["status"] in ("queued", "training") else None

    def start(self) -> dict[str, Any]:
        """Start a retrain (or return the one already running): ``{"job_id", "status"}``."""
        with self._lock:
            if self.running is not None:
                return dict(self.running)
            version = self.registry.next_name()
            replicas = self.state.extras.get("replicas")
            if replicas is not None:  # a name no other replica uses
                version = replicas.reserve_version(_version_number(version))
            job = {"job_id": uuid.uuid4().hex[:12], "status": "queued", "version": version,
                   "created_at": _now_iso(), "message": None}
            self._job = job
            self._thread = threading.Thread(target=self._run, args=(job,), name="coldbrew-retrain", daemon=True)
            self._thread.start()
            return dict(job)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the current job's thread (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self, job: dict[str, Any]) -> None:
        from coldbrew.service.state import prepare_model
        from coldbrew.storage import load_model

        state = self.state
        version = job["version"]
        job["status"] = "training"
        started = time.perf_counter()
        try:
            snapshot = state.store.snapshot(with_events=True)
            with state.lock.read():
                model = state.model
                live = [i for i, item in enumerate(model.item_map_.ids()) if item not in state.deleted]
                catalog = model.catalog_.subset(live)
                config = model.config
                replicas = state.extras.get("replicas")
                active_dir = replicas.directory if replicas is not None else self.registry.directory(state.model_version)
            directory = self.registry.directory(version)
            _fit_in_subprocess(catalog, snapshot.events, config, active_dir, directory)
            fresh = load_model(directory)
            prepare_model(fresh)  # before the swap: the first requests on it are not slow
            entry = {"version": version, "created_at": job["created_at"], "events": snapshot.n_events,
                     "items": len(fresh.item_map_), "status": "ready"}
            if replicas is not None:  # recorded in the shared database first, then swapped in here
                replicas.activate(fresh, version, directory, entry)
            else:
                # Recorded first, then swapped in: once a client sees the new version, a crash
                # cannot bring the old one back.
                self.registry.record(entry, activate=True)
                swap_model(state, fresh, directory, version)
            # counted after the swap, which adds the products written while training
            entry.update(items=len(fresh.item_map_), seconds=round(time.perf_counter() - started, 1))
            self.registry.record(entry, activate=True)
            self.registry.prune(state.settings.keep_versions)
            state.metrics.retrains.labels("ok").inc()
            job["status"] = "done"
            log.info("retrained %s on %d events in %.1f s", version, snapshot.n_events, time.perf_counter() - started)
        except Exception as exc:  # a failed retrain leaves the active model serving
            job["status"] = "failed"
            job["message"] = f"{type(exc).__name__}: {exc}"
            state.metrics.retrains.labels("failed").inc()
            log.warning("retrain %s failed: %s", version, job["message"])
