"""Engagement analytics over HTTP: the summary and per-user churn from the event store."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("fastapi")

DAY = 86_400
T0 = 1_700_000_000
ITEMS = ["run-001", "run-003", "tea-001", "tea-004", "wine-001", "game-001"]


def _log(n_users: int = 80, days: int = 300, seed: int = 0) -> list[dict]:
    """Loyal shoppers visit all along; fading ones thin out and stop (see tests/analytics)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        fading = u % 2 == 1
        stop = int(rng.integers(40, days)) if fading else days
        day, gap = float(rng.integers(0, 20)), float(rng.uniform(2, 8))
        while day < stop:
            event = "purchase" if rng.random() < 0.5 else "view"
            rows.append({"user_id": f"shopper{u}", "item_id": ITEMS[int(rng.integers(0, len(ITEMS)))],
                         "timestamp": T0 + int(day * DAY), "event": event})
            gap *= 1.08 if fading else 1.0
            day += rng.exponential(gap)
    return rows


def _error(response, status: int, field: str | None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["field"] == field, body
    return body["error"]["message"]


def test_empty_store_and_report_fallback(make_client, tmp_path) -> None:
    client = make_client()
    empty = client.get("/v1/analytics")
    assert empty.status_code == 200 and empty.json()["events"] == 0 and "no events" in empty.json()["note"]
    _error(client.get("/v1/analytics/users/a/churn"), 404, None)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "analytics.json").write_text(json.dumps({"events": 5, "users": 2}))
    with_report = make_client(report_dir=tmp_path / "report")
    assert with_report.get("/v1/analytics").json() == {"events": 5, "users": 2, "source": "report"}


def test_summary_and_churn_from_stored_events(client) -> None:
    rows = _log()
    assert client.post("/v1/events", json={"events": rows}).json() == {"accepted": len(rows)}
    response = client.get("/v1/analytics")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "event store" and body["events"] == len(rows) and body["users"] == 80
    assert body["retention"]["cohort"] == "month" and body["retention"]["rows"][0]["users"] > 0
    assert 0 < body["repeat_purchase"]["rate"] <= 1
    assert {"dau", "wau", "mau", "stickiness"} <= set(body["active_users"])
    assert body["new_user_conversion"]["days"] == 7
    assert body["churn"]["auc"] > 0.6 and body["churn"]["test_users"] > 0
    weekly = client.get("/v1/analytics", params={"cohort": "week", "conversion_days": 30}).json()
    assert weekly["retention"]["cohort"] == "week" and weekly["new_user_conversion"]["days"] == 30
    _error(client.get("/v1/analytics", params={"cohort": "year"}), 422, "cohort")

    for user in ("shopper0", "shopper2", "shopper4"):
        got = client.get(f"/v1/analytics/users/{user}/churn", params={"horizon_days": 30})
        assert got.status_code == 200, got.text
        out = got.json()
        assert out["user_id"] == user and out["horizon_days"] == 30 and 0 <= out["churn_risk"] <= 1
    assert "no activity" in _error(client.get("/v1/analytics/users/stranger/churn"), 404, "user_id")
    _error(client.get("/v1/analytics/users/shopper0/churn", params={"horizon_days": 0}), 422, "horizon_days")
    message = _error(client.get("/v1/analytics/users/shopper0/churn", params={"horizon_days": 365}), 422, "horizon_days")
    assert "horizon_days" in message


def test_pseudonymised_ids_still_resolve(make_client) -> None:
    client = make_client(pseudonymise_key="k" * 16)
    client.post("/v1/events", json={"events": _log(40, seed=1)})
    got = client.get("/v1/analytics/users/shopper0/churn", params={"horizon_days": 30})
    assert got.status_code == 200, got.text
    assert got.json()["user_id"] == "shopper0"


def test_read_key_required(make_client) -> None:
    client = make_client(read_keys=("r" * 8,))
    _error(client.get("/v1/analytics"), 401, "X-API-Key")
    assert client.get("/v1/analytics", headers={"X-API-Key": "r" * 8}).json()["events"] == 0
