"""Crash durability: SIGKILL `coldbrew serve` mid-stream; every acknowledged event survives.

Also covers the CLI: `coldbrew serve --help`, and one-line errors for a bad model or --db.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(model_dir: Path, port: int, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "coldbrew.cli", "serve", "--model", str(model_dir), "--port", str(port),
         "--log-level", "warning", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _wait_ready(proc: subprocess.Popen, base: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not start in time")


def test_every_acknowledged_event_survives_sigkill(model_dir: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": "w"}
    proc = _serve(model_dir, port, "--api-key-write", "w")
    acked: list[tuple[str, str, int]] = []
    lock = threading.Lock()
    try:
        _wait_ready(proc, base)

        def stream(writer: int) -> None:
            with httpx.Client(base_url=base, timeout=5.0) as http:
                for n in range(100_000):
                    batch = [{"user_id": f"w{writer}-{n}", "item_id": "tea-001", "timestamp": 1_700_000_000 + j}
                             for j in range(1 + n % 5)]
                    try:
                        r = http.post("/v1/events", json={"events": batch}, headers=headers)
                    except httpx.HTTPError:
                        return  # the server is gone
                    if r.status_code == 200:
                        with lock:
                            acked.extend((e["user_id"], e["item_id"], e["timestamp"]) for e in batch)

        writers = [threading.Thread(target=stream, args=(w,)) for w in range(3)]
        for t in writers:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: requests are in flight
        for t in writers:
            t.join(timeout=30)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(acked) >= 30, "too few events were acknowledged before the kill"

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    again = _serve(model_dir, port, "--api-key-write", "w")
    try:
        _wait_ready(again, base)
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        last_user = acked[-1][0]
        profile = httpx.get(f"{base}/v1/users/{last_user}/profile", headers=headers).json()
        assert profile["events"] == sum(1 for a in acked if a[0] == last_user)
    finally:
        again.terminate()
        again.wait(timeout=30)

    from coldbrew.storage.event_store import open_store

    store = open_store(f"sqlite:///{model_dir / 'events.db'}")
    try:
        events = store.snapshot(with_events=True).events
    finally:
        store.close()
    stored = set(zip(events.user_ids.tolist(), events.item_ids.tolist(), events.timestamps.tolist()))
    missing = [a for a in acked if a not in stored]
    assert not missing, f"{len(missing)} acknowledged events were lost, e.g. {missing[:3]}"
    # Batches are atomic: no batch is stored in part.
    per_user: dict[str, int] = {}
    for user in events.user_ids.tolist():
        per_user[user] = per_user.get(user, 0) + 1
    for user, count in per_user.items():
        n = int(user.split("-")[1])
        assert count == 1 + n % 5, f"batch of {user} stored in part"


def test_serve_help_documents_the_options() -> None:
    out = subprocess.run([sys.executable, "-m", "coldbrew.cli", "serve", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    for option in ("--model", "--db", "--host", "--port", "--events", "--api-key-read", "--api-key-write",
                   "--pseudonymise-key", "--report-dir", "--max-body-bytes", "--max-k", "postgresql://",
                   "X-API-Key", "COLDBREW_PSEUDONYMISE_KEY", "/v1/models/retrain"):
        assert option in out.stdout, option


@pytest.mark.parametrize("args, needle", [
    (["--model", "/no/such/model"], "not a model directory"),
    (["--db", "mysql://x"], "--db"),
])
def test_serve_errors_are_one_line(model_dir: Path, args: list[str], needle: str) -> None:
    argv = [sys.executable, "-m", "coldbrew.cli", "serve", "--model", str(model_dir), *args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("coldbrew: error:") and needle in out.stderr
    assert "Traceback" not in out.stderr
