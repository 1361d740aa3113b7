"""The scoring process: a replica of the model in a child process scores the batches.

Each test starts a real child (spawn) from the demo model directory and checks that it
answers as the server's own model would, follows catalog changes and retrains, and that the
server scores by itself again when the child dies.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

pytest.importorskip("fastapi")


def _with_scorer(make_client, **settings):
    client = make_client(scoring_process=True, **settings)
    state = client.app.state.coldbrew
    deadline = time.monotonic() + 180
    while state.scorer is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.scorer is not None and state.scorer.alive, "the scoring process did not start"
    assert client.get("/healthz").json()["scoring_process"] == "on"
    return client, state


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["item_id"] for i in response.json()["items"]]


def _in_process(state, user: str, k: int, **filters) -> list[str]:
    with state.lock.read():
        candidates = state.candidates(filters.get("category"), filters.get("max_price"))
        request = state.request_for(user, state.history(user), candidates=candidates)
        return state.model.recommend([request], k)[0].items


def test_the_replica_answers_as_the_server_model(make_client) -> None:
    client, state = _with_scorer(make_client)
    client.post("/v1/events", json={"events": [
        {"user_id": "s1", "item_id": "tea-001", "event": "purchase"},
        {"user_id": "s1", "item_id": "tea-004", "event": "view"}]})
    client.post("/v1/onboarding", json={"user_id": "s2", "text": "yoga and running"})
    for user, filters in (("s1", {}), ("s2", {}), ("u001", {"category": "Food"}), ("nobody", {"max_price": 20.0})):
        served = client.get(f"/v1/users/{user}/recommendations", params={"k": 8, **filters})
        assert _ids(served) == _in_process(state, user, 8, **filters)
        assert all(item["reason"] for item in served.json()["items"])
    assert state.scorer.batches >= 4


def test_catalog_changes_reach_the_replica_before_the_answer(make_client) -> None:
    client, state = _with_scorer(make_client)
    client.post("/v1/events", json={"user_id": "s3", "item_id": "tea-001", "event": "purchase"})
    new = {"item_id": "matcha-1", "title": "Ceremonial matcha green tea", "category": "Food > Matcha"}
    assert client.post("/v1/items", json=new).status_code == 201
    # Only the replica scores: a product it did not know would be dropped from the candidates.
    assert _ids(client.get("/v1/users/s3/recommendations", params={"k": 5, "category": "Matcha"})) == ["matcha-1"]
    top = _ids(client.get("/v1/users/s3/recommendations", params={"k": 3}))
    assert client.delete(f"/v1/items/{top[0]}").status_code == 200
    assert top[0] not in _ids(client.get("/v1/users/s3/recommendations", params={"k": 50}))
    assert client.patch("/v1/items/matcha-1", json={"title": "Bamboo yoga mat", "category": "Sports > Yoga"}).status_code == 200
    assert _ids(client.get("/v1/users/s3/recommendations", params={"k": 5, "category": "Matcha"})) == []
    assert _ids(client.get("/v1/users/s3/recommendations", params={"k": 8})) == _in_process(state, "s3", 8)
    assert state.scorer.alive and state.scorer.batches >= 4


def test_a_retrain_swaps_the_replica_with_the_server_model(make_client, demo_events_csv) -> None:
    client, state = _with_scorer(make_client, seed_events=demo_events_csv)
    assert client.post("/v1/models/retrain").status_code == 202
    client.post("/v1/items", json={"item_id": "mid-2", "title": "Glass teapot", "category": "Food > Teaware"})
    deadline = time.monotonic() + 180
    while client.get("/healthz").json()["model_version"] != "v1" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.get("/healthz").json()["model_version"] == "v1"
    before = state.scorer.batches
    served = client.get("/v1/users/u001/recommendations", params={"k": 10})
    assert served.json()["model_version"] == "v1"
    assert _ids(served) == _in_process(state, "u001", 10)
    assert _ids(client.get("/v1/users/u001/recommendations", params={"k": 5, "category": "Teaware"})) == ["mid-2"]
    assert state.scorer.alive and state.scorer.batches >= before + 2


def test_the_server_scores_by_itself_when_the_replica_dies_then_starts_a_new_one(make_client, monkeypatch) -> None:
    import coldbrew.service.app as app_module

    client, state = _with_scorer(make_client)
    expected = _in_process(state, "u002", 10)
    first = state.scorer.pid
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while state.scorer.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(3):  # within RESTART_AFTER_S of the start: the server scores by itself
        assert _ids(client.get("/v1/users/u002/recommendations", params={"k": 10})) == expected
    assert not state.scorer.alive and client.get("/healthz").json()["scoring_process"] == "off"
    assert client.post("/v1/items", json={"item_id": "late-1", "title": "Oolong tea", "category": "Food > Tea"}).status_code == 201
    assert _ids(client.get("/v1/users/u002/recommendations", params={"k": 5, "category": "Food > Tea"}))
    # Once the back-off has passed, the next batch starts a new replica (with the new product).
    monkeypatch.setattr(app_module, "RESTART_AFTER_S", 0.0)
    client.get("/v1/users/u002/recommendations", params={"k": 10})
    deadline = time.monotonic() + 180
    while not (state.scorer is not None and state.scorer.alive) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.scorer.alive and state.scorer.pid != first
    assert client.get("/healthz").json()["scoring_process"] == "on"
    before = state.scorer.batches
    assert _ids(client.get("/v1/users/u002/recommendations", params={"k": 10})) == _in_process(state, "u002", 10)
    assert _ids(client.get("/v1/users/u002/recommendations", params={"k": 5, "category": "Oolong"})) == []
    assert "late-1" in _ids(client.get("/v1/users/u002/recommendations", params={"k": 50, "category": "Food > Tea"}))
    assert state.scorer.batches >= before + 2  # the empty "Oolong" shelf needs no scoring
