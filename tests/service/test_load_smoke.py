"""Smoke test of the mixed-traffic load driver (``benchmarks/run_load.py``) on the demo model.

A real ``coldbrew serve`` process, 4 closed-loop clients for a few seconds (recommendations,
event batches, new products): every answer is 2xx, every acknowledged event and product is in
the store afterwards, and the RSS of the server's process tree was sampled. No latency
assertions: the machine may be loaded.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from tests.service.benchmarks_harness import load_benchmark  # noqa: E402

pytest.importorskip("psutil")

def test_mixed_traffic_smoke(model_dir: Path, demo_events_csv: Path, tmp_path: Path) -> None:
    run_load = load_benchmark("run_load")
    from coldbrew.data import load_catalog, load_events
    from coldbrew.demo import demo_paths

    catalog, _ = load_catalog(demo_paths()[0])
    events, _ = load_events(demo_events_csv)
    users = sorted(set(events.user_ids.tolist()))
    traffic = run_load.traffic_from(events, catalog, users, n_recent=len(events), k=10, batch=20)
    url = f"sqlite:///{tmp_path / 'events.db'}"
    service = run_load.Service(model_dir, url, tmp_path / "serve.log")
    try:
        figures, run = run_load.run_mixed(service, traffic, clients=4, duration_s=3.0, warmup_s=0.5,
                                          seed=1, sample_interval=0.25)
    finally:
        service.stop()

    statuses = run.records[:, 3]
    assert len(statuses) > 20, "the clients sent too few requests"
    assert ((statuses >= 200) & (statuses < 300)).all(), f"non-2xx answers: {run.failures[:3]}"
    assert figures["non_2xx"] == 0
    ops = figures["ops"]
    assert ops["recommend"]["ok"] > 0 and ops["events"]["ok"] > 0
    assert math.isfinite(ops["recommend"]["p50_ms"])

    durable = run_load.check_durable(url, run)
    assert durable["acked_events"] > 0
    assert durable["missing_events"] == 0, durable
    assert durable["missing_items"] == 0, durable
    # The store holds nothing but what was acknowledged (it started empty).
    assert durable["stored_events"] == durable["acked_events"]

    memory = figures["memory"]
    assert memory["samples"] >= 3
    for key in ("start_mb", "end_mb", "max_mb", "slope_mb_per_min"):
        assert math.isfinite(memory[key]), (key, memory)
    assert 0 < memory["start_mb"] <= memory["max_mb"]


def test_item_posts_queued_under_load_share_a_commit_with_their_own_answers(make_client) -> None:
    """The load sends new products while others are being applied: posts queued meanwhile are
    applied together (one store commit, one model update, one message to the scoring process),
    each answered with the counts it would have got alone; a post naming an item of an
    earlier queued post waits for the next group."""
    import threading
    import time

    from coldbrew.service.routers.items import _item_writes

    client = make_client(scoring_process=True)
    state = client.app.state.coldbrew
    deadline = time.monotonic() + 180
    while state.scorer is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.scorer is not None, "the scoring process did not start"
    saves: list[int] = []
    save = state.store.save

    def counting_save(**kwargs):
        saves.append(len(kwargs.get("items", ())))
        return save(**kwargs)

    state.store.save = counting_save
    writes = _item_writes(state)
    shelf = "Load > Group commit"
    bodies = [
        {"items": [{"item_id": "g1", "title": "Enamel camping mug", "category": shelf},
                   {"item_id": "g2", "title": "Enamel camping plate", "category": shelf}]},
        {"item_id": "g3", "title": "Enamel camping bowl", "category": shelf},
        {"item_id": "g1", "title": "Enamel camping mug, blue", "category": shelf},  # g1 again: next group
        {"item_id": "tea-001", "title": "Sencha green tea, loose leaf, 100 g"},  # an update
    ]
    answers: list = [None] * len(bodies)

    def post(j: int) -> None:
        answers[j] = client.post("/v1/items", json=bodies[j])

    threads = []
    with state.catalog_lock:  # hold the writers back so that the posts queue up, in order
        for j in range(len(bodies)):
            threads.append(threading.Thread(target=post, args=(j,)))
            threads[-1].start()
            deadline = time.monotonic() + 30
            while len(writes._queue) < j + 1 and time.monotonic() < deadline:
                time.sleep(0.005)
            assert len(writes._queue) == j + 1
    for t in threads:
        t.join(timeout=60)
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert [a.json() for a in answers] == [
        {"accepted": 2, "added": 2, "updated": 0},
        {"accepted": 1, "added": 1, "updated": 0},
        {"accepted": 1, "added": 0, "updated": 1},
        {"accepted": 1, "added": 0, "updated": 1},
    ]
    assert saves == [3, 2]  # posts 1-2 in one commit, then posts 3-4
    assert client.get("/v1/items/g1").json()["title"] == "Enamel camping mug, blue"
    assert client.get("/v1/items/tea-001").json()["title"] == "Sencha green tea, loose leaf, 100 g"
    # Scored by the scoring process, which followed every group before the posts were answered.
    assert state.scorer is not None and state.scorer.alive
    shelf_items = client.get("/v1/users/u001/recommendations", params={"k": 10, "category": "group commit"}).json()
    assert {i["item_id"] for i in shelf_items["items"]} == {"g1", "g2", "g3"}
