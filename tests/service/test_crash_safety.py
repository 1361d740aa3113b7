"""Crash safety: SIGKILL `coldbrew serve` during writes, retrains and erasures; restart; check.

The checkers are those of ``benchmarks/run_crash.py`` (which runs 20 kills per case and
database): here two kills on each database, every case's clients running at once so that
each kill interrupts them all (event batches, product writes, a retrain, user erasures).
Also regression tests of what the benchmark found: a retrain is written to a staging
directory and renamed (no half-written version after a crash), its fit process dies with
the server, and a new version is recorded before it is served.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from tests.service.benchmarks_harness import load_benchmark  # noqa: E402


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_two_kills_per_case_lose_no_acknowledged_write(
    db: str, demo_model_dir: Path, demo_events_csv: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rc = load_benchmark("run_crash")
    pg_base = request.getfixturevalue("pg_base_url") if db == "postgres" else None
    # Kept short: paced clients (the fit shares two cores with them), a retrain time given
    # (not measured), no last retrain (the second kill waits for its retrain's version to be
    # written, after the first crash: that retrain works).
    cases = [rc.EventsCase(pace_s=0.1), rc.ItemsCase(pace_s=0.1),
             rc.RetrainCase(expected_s=3.0, last_retrain=False), rc.EraseCase()]
    results = rc.run_cases(cases, db, 2, tmp_path, demo_model_dir, demo_events_csv, pg_base=pg_base,
                           together=True, say=lambda line: None)
    for r in results:
        assert r.kills == 2, r.as_dict()
        assert not r.violations, r.as_dict()
        assert r.orphans == 0, f"processes of the killed server outlived it: {r.as_dict()}"
    by_case = {r.case: r for r in results}
    assert by_case["events"].checked >= 20 and by_case["items"].checked >= 10, [r.as_dict() for r in results]
    assert by_case["erase"].checked >= 1 and by_case["retrain"].checked == 2
    assert by_case["retrain"].notes.get("killed_after_fit") == 1  # the second kill: loading/swapping


# ---------------------------------------------------------------------- regression tests
def _fake_fit(tmp_path: Path, returncode: int = 0):
    """A stand-in for ``subprocess.run(coldbrew fit ...)`` that records where it was asked to write."""
    seen: dict[str, object] = {}

    def run(command, **kwargs):
        out = Path(command[command.index("--out") + 1])
        seen["out"] = out
        seen["out_existed"] = out.exists()
        (out / "manifest.json").write_text("{}", encoding="utf-8")
        (out / "model.npz").write_bytes(b"x")
        return subprocess.CompletedProcess(command, returncode, "", "coldbrew: error: boom\n" if returncode else "")

    return run, seen


def test_a_retrain_writes_a_staging_directory_then_renames_it(tmp_path: Path, monkeypatch) -> None:
    import numpy as np

    from coldbrew.config import FitConfig
    from coldbrew.data.events import Events
    from coldbrew.service import retrain
    from coldbrew.service.state import catalog_from_records
    from coldbrew.storage.event_store import ItemRecord

    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "v1").mkdir()  # a crash left v1 half-written (never recorded in the registry)
    (versions / "v1" / "junk.tmp").write_text("half", encoding="utf-8")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = versions / f".v1.partial-{dead.pid}"  # and a staging directory of a dead server
    stale.mkdir()
    live = versions / f".v9.partial-{os.getppid()}"  # another live process's: kept
    live.mkdir()
    catalog = catalog_from_records([ItemRecord("a", {"title": "A"})])
    empty = np.empty(0, dtype=object)
    events = Events(empty, empty.copy(), np.empty(0, np.int64), empty.copy(), np.empty(0, np.float64))
    run, seen = _fake_fit(tmp_path)
    monkeypatch.setattr(subprocess, "run", run)
    retrain._fit_in_subprocess(catalog, events, FitConfig(), tmp_path, versions / "v1")
    assert seen["out"] != versions / "v1" and seen["out"].name.startswith(".v1.partial-")
    assert sorted(p.name for p in (versions / "v1").iterdir()) == ["manifest.json", "model.npz"]
    assert not seen["out"].exists() and not stale.exists() and live.exists()

    failing, seen = _fake_fit(tmp_path, returncode=1)
    monkeypatch.setattr(subprocess, "run", failing)
    with pytest.raises(RuntimeError, match="boom"):
        retrain._fit_in_subprocess(catalog, events, FitConfig(), tmp_path, versions / "v2")
    assert not (versions / "v2").exists() and not seen["out"].exists()  # nothing half-written is left


def test_the_fit_process_dies_with_the_server(tmp_path: Path) -> None:
    """A server killed mid-retrain must not leave its fit running (it was an orphan)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    script = (
        "import os, subprocess, sys, time\n"
        "from coldbrew.service.retrain import _child_setup\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " preexec_fn=_child_setup(os.getpid()))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":  # dead, waiting for init to reap it
                break
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the fit process outlived the killed server")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_version_is_recorded_before_it_is_served(make_client, monkeypatch) -> None:
    """Once a client can see the new version, a crash must not bring the old one back: the
    registry (``versions.json``) names it active before the swap."""
    import shutil

    from coldbrew.service import retrain

    def fit(catalog, events, config, active_dir, directory):  # the active model, copied
        shutil.copytree(active_dir, directory, ignore=shutil.ignore_patterns("versions", "events.db*"))

    real_swap = retrain.swap_model
    at_swap: list[str] = []

    def swap(state, fresh, directory, version):
        registry = json.loads((state.settings.versions_dir / "versions.json").read_text(encoding="utf-8"))
        at_swap.append(registry["active"])
        real_swap(state, fresh, directory, version)

    monkeypatch.setattr(retrain, "_fit_in_subprocess", fit)
    monkeypatch.setattr(retrain, "swap_model", swap)
    client = make_client()
    assert client.post("/v1/models/retrain").status_code == 202
    client.app.state.coldbrew.retrainer.join(60)
    assert client.get("/v1/models").json()["active"] == "v1"
    assert at_swap == ["v1"]


def test_pruning_cut_off_leaves_no_half_deleted_version(tmp_path: Path, monkeypatch) -> None:
    """The 20-kill benchmark found a version directory without its manifest: the server was
    killed while pruning old versions (``rmtree`` half done, the registry still "ready")."""

    from coldbrew.service import retrain

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "manifest.json").write_text("{}", encoding="utf-8")
    registry = retrain.VersionRegistry(model_dir, model_dir / "versions")
    for n in range(1, 5):
        (registry.directory(f"v{n}")).mkdir(parents=True)
        (registry.directory(f"v{n}") / "manifest.json").write_text("{}", encoding="utf-8")
        (registry.directory(f"v{n}") / "model.npz").write_bytes(b"x")
        registry.record({"version": f"v{n}", "status": "ready"}, activate=True)
    with _rmtree_killed_midway(monkeypatch):
        registry.prune(keep=1)

    def consistent() -> None:
        for entry in registry.read()["versions"]:
            path = registry.directory(entry["version"])
            if entry["status"] == "ready" and entry["version"] != "v0":
                assert (path / "manifest.json").is_file(), entry
            if path.is_dir():
                assert (path / "manifest.json").is_file(), f"{path.name} is half-deleted"

    consistent()  # what a restart finds
    retrain.remove_stale_staging(registry.versions_dir)  # at start: the renamed leftovers go
    registry.prune(keep=1)  # and the next prune finishes the job
    consistent()
    assert sorted(p.name for p in registry.versions_dir.iterdir()) == ["v4", "versions.json"]
    assert [v["status"] for v in registry.read()["versions"]] == ["ready", "removed", "removed", "removed", "ready"]


def test_a_retrain_killed_while_replacing_an_unrecorded_version_leaves_no_half_directory(tmp_path, monkeypatch):
    """A version directory written but never recorded (killed after the rename) is replaced by
    the next retrain; a kill during that delete must not leave ``vN`` without its manifest."""

    from coldbrew.service import retrain

    versions = tmp_path / "versions"
    old = versions / "v3"
    old.mkdir(parents=True)
    (old / "manifest.json").write_text('{"old": true}', encoding="utf-8")
    (old / "model.npz").write_bytes(b"old")
    staging = versions / f".v3.partial-{os.getpid()}"
    staging.mkdir()
    (staging / "manifest.json").write_text('{"new": true}', encoding="utf-8")
    with _rmtree_killed_midway(monkeypatch):
        retrain.install_version(staging, versions / "v3")
    assert not (versions / "v3").exists()  # renamed away before the delete began
    leftovers = [p for p in versions.iterdir() if p.name.startswith(".")]
    assert leftovers and all(retrain._STAGING in p.name for p in leftovers)
    monkeypatch.setattr(retrain, "_alive", lambda pid: False)  # as after a restart: the writer is gone
    retrain.remove_stale_staging(versions)
    assert list(versions.iterdir()) == []

    staging.mkdir()  # and an uninterrupted install replaces the old directory whole
    (staging / "manifest.json").write_text('{"new": true}', encoding="utf-8")
    old.mkdir()
    (old / "manifest.json").write_text('{"old": true}', encoding="utf-8")
    retrain.install_version(staging, versions / "v3")
    assert json.loads((versions / "v3" / "manifest.json").read_text(encoding="utf-8")) == {"new": True}
    assert sorted(p.name for p in versions.iterdir()) == ["v3"]


@contextlib.contextmanager
def _rmtree_killed_midway(monkeypatch):
    """``shutil.rmtree`` that deletes a directory's manifest and then "dies" (KeyboardInterrupt),
    as a SIGKILL in the middle of a delete would leave it; the block must die of it."""
    import shutil

    real_rmtree = shutil.rmtree

    def killed_midway(path, ignore_errors=False, **kwargs):
        path = Path(path)
        if not path.exists():
            return
        (path / "manifest.json").unlink()
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        yield
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
