"""The HTTP API on the demo shop: real-time events, catalog changes, validation, auth."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("fastapi")


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["item_id"] for i in response.json()["items"]]


def _error(response, status: int, field: str | None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["field"] == field
    message = body["error"]["message"]
    assert message
    return message


# ---------------------------------------------------------------------- real time
def test_next_recommendation_reflects_a_posted_event(client) -> None:
    before = client.get("/v1/users/newbie/recommendations", params={"k": 5}).json()
    assert before["model_version"] == "v0" and len(before["items"]) == 5
    assert client.post("/v1/events", json={"user_id": "newbie", "item_id": "tea-001", "event": "purchase"}).json() == {"accepted": 1}
    after = client.get("/v1/users/newbie/recommendations", params={"k": 5}).json()
    assert [i["item_id"] for i in after["items"]] != [i["item_id"] for i in before["items"]]
    assert "tea-001" not in [i["item_id"] for i in after["items"]]  # never the item itself
    assert sum(i["item_id"].startswith("tea-") for i in after["items"]) >= 3
    assert any("Organic Japanese green tea" in i["reason"] for i in after["items"])
    first = after["items"][0]
    assert set(first) == {"item_id", "title", "category", "price", "score", "reason"}


def test_batch_of_events_with_iso_and_unix_timestamps(client) -> None:
    events = [
        {"user_id": "b1", "item_id": "yoga-001", "timestamp": "2026-01-02T03:04:05Z", "event": "View"},
        {"user_id": "b1", "item_id": "yoga-002", "timestamp": 1767322000, "event": "cart", "value": 2},
        {"user_id": "b1", "item_id": "yoga-003", "timestamp": 1767322000123},  # milliseconds
    ]
    assert client.post("/v1/events", json={"events": events}).json() == {"accepted": 3}
    profile = client.get("/v1/users/b1/profile").json()
    assert profile["events"] == 3
    # latest first; equal timestamps in arrival order, latest first
    assert [h["item_id"] for h in profile["history"]] == ["yoga-001", "yoga-003", "yoga-002"]
    assert profile["history"][0] == {"item_id": "yoga-001", "title": "Non-slip yoga mat", "event": "view",
                                     "timestamp": 1767323045}
    assert profile["history"][1]["timestamp"] == 1767322000  # milliseconds became seconds
    assert profile["history"][2]["event"] == "cart"
    assert "Yoga" in profile["interests"]


def test_recommendation_filters(client) -> None:
    items = client.get("/v1/users/u001/recommendations", params={"k": 50, "category": "running", "max_price": 80}).json()["items"]
    assert items and all("Running" in i["category"] and i["price"] <= 80 for i in items)
    excluded = _ids(client.get("/v1/users/u001/recommendations", params={"k": 3}))
    again = _ids(client.get("/v1/users/u001/recommendations", params={"k": 3, "exclude": ",".join(excluded)}))
    assert not set(excluded) & set(again)
    assert client.get("/v1/users/u001/recommendations", params={"category": "no such thing"}).json()["items"] == []


# ---------------------------------------------------------------------- catalog
def test_new_item_is_recommendable_in_the_next_request(client) -> None:
    client.post("/v1/events", json={"user_id": "t1", "item_id": "tea-001", "event": "purchase"})
    new = {"item_id": "tea-100", "title": "Organic Japanese green tea matcha", "category": "Food > Tea",
           "price": 15.0, "tags": ["tea", "matcha"]}
    started = time.perf_counter()
    assert client.post("/v1/items", json=new).status_code == 201
    recs = _ids(client.get("/v1/users/t1/recommendations", params={"k": 10}))
    assert "tea-100" in recs
    assert time.perf_counter() - started < 2.0
    assert "tea-100" in _ids(client.get("/v1/items/tea-001/similar", params={"k": 10}))
    detail = client.get("/v1/items/tea-100").json()
    assert detail["tags"] == ["tea", "matcha"] and detail["in_stock"] is True
    assert client.post("/v1/events", json={"user_id": "t1", "item_id": "tea-100"}).status_code == 200


def test_deleted_and_out_of_stock_items_never_appear(client) -> None:
    client.post("/v1/events", json={"user_id": "t2", "item_id": "tea-001", "event": "purchase"})
    top = _ids(client.get("/v1/users/t2/recommendations", params={"k": 3}))
    gone, sold_out = top[0], top[1]
    assert client.delete(f"/v1/items/{gone}").json() == {"item_id": gone, "deleted": True}
    assert client.patch(f"/v1/items/{sold_out}", json={"in_stock": False}).json()["in_stock"] is False
    for user in ("t2", "u001", "u050", "someone-new"):
        recs = _ids(client.get(f"/v1/users/{user}/recommendations", params={"k": 50}))
        assert gone not in recs and sold_out not in recs
    for item in ("tea-001", "tea-004"):
        similar = _ids(client.get(f"/v1/items/{item}/similar", params={"k": 50}))
        assert gone not in similar and sold_out not in similar
    onboard = client.post("/v1/onboarding", json={"text": "tea", "k": 50}).json()["items"]
    assert gone not in [i["item_id"] for i in onboard]
    _error(client.get(f"/v1/items/{gone}"), 404, "item_id")
    _error(client.post("/v1/events", json={"user_id": "t2", "item_id": gone}), 404, "item_id")
    browse = client.get("/v1/items", params={"limit": 500}).json()
    assert gone not in [i["item_id"] for i in browse["items"]] and browse["total"] == 51
    assert client.patch(f"/v1/items/{sold_out}", json={"in_stock": True}).status_code == 200
    assert sold_out in _ids(client.get("/v1/users/t2/recommendations", params={"k": 50}))


def test_patch_changes_price_category_and_text(client) -> None:
    out = client.patch("/v1/items/run-001", json={"price": 50.5, "category": "Sale > Shoes", "title": "Road shoes"}).json()
    assert out["price"] == 50.5 and out["category"] == "Sale > Shoes" and out["title"] == "Road shoes"
    assert out["brand"] == "Stride"  # untouched fields kept
    items = client.get("/v1/users/x/recommendations", params={"k": 50, "category": "sale"}).json()["items"]
    assert [i["item_id"] for i in items] == ["run-001"] and items[0]["price"] == 50.5
    _error(client.patch("/v1/items/run-001", json={}), 422, "body")
    _error(client.patch("/v1/items/run-001", json={"price": -1}), 422, "price")
    _error(client.patch("/v1/items/nope", json={"price": 1}), 404, "item_id")


def test_catalog_browser_search_and_paging(client) -> None:
    page = client.get("/v1/items", params={"offset": 0, "limit": 10}).json()
    assert page["total"] == 52 and len(page["items"]) == 10
    nxt = client.get("/v1/items", params={"offset": 10, "limit": 10}).json()["items"]
    assert not {i["item_id"] for i in page["items"]} & {i["item_id"] for i in nxt}
    tea = client.get("/v1/items", params={"q": "TEA"}).json()
    assert tea["total"] >= 5 and "tea-001" in [i["item_id"] for i in tea["items"]]
    for item in tea["items"]:  # words are looked for in the ID, title, category and brand
        detail = client.get(f"/v1/items/{item['item_id']}").json()
        assert "tea" in " ".join([item["item_id"], detail["title"], detail["category"], detail["brand"]]).lower()
    assert client.get("/v1/items", params={"q": "乌龙"}).json()["total"] >= 1
    _error(client.get("/v1/items", params={"limit": 100000}), 422, "limit")


def test_batch_of_items_and_upsert(client) -> None:
    body = {"items": [{"item_id": "n1", "title": "Bamboo chopsticks", "category": "Home > Kitchen"},
                      {"item_id": "n2", "title": "竹制砧板", "category": "Home > Kitchen", "price": 20}]}
    assert client.post("/v1/items", json=body).json() == {"accepted": 2, "added": 2, "updated": 0}
    again = client.post("/v1/items", json={"item_id": "n1", "title": "Bamboo chopsticks, 10 pairs"}).json()
    assert again == {"accepted": 1, "added": 0, "updated": 1}
    assert client.get("/v1/items/n1").json()["title"] == "Bamboo chopsticks, 10 pairs"


# ---------------------------------------------------------------------- users
def test_onboarding_stores_a_profile_used_later(client) -> None:
    out = client.post("/v1/onboarding", json={"user_id": "o1", "text": "我喜欢喝茶", "k": 5}).json()
    assert out["user_id"] == "o1" and len(out["items"]) == 5
    assert client.get("/v1/users/o1/profile").json()["interests"][0] == "我喜欢喝茶"
    later = _ids(client.get("/v1/users/o1/recommendations", params={"k": 5}))
    assert later == [i["item_id"] for i in out["items"]]
    picked = client.post("/v1/onboarding", json={"categories": ["Yoga"], "k": 5}).json()
    assert picked["user_id"].startswith("u-")
    assert all("Yoga" in i["category"] for i in picked["items"])
    _error(client.post("/v1/onboarding", json={"k": 5}), 422, "text")
    _error(client.post("/v1/onboarding", json={"categories": ["Spaceships"]}), 422, "categories[0]")


def test_delete_user_erases_events_and_profile(client) -> None:
    client.post("/v1/onboarding", json={"user_id": "d1", "text": "wine"})
    client.post("/v1/events", json={"events": [{"user_id": "d1", "item_id": "wine-001"}, {"user_id": "d1", "item_id": "wine-002"}]})
    assert client.delete("/v1/users/d1").json() == {"user_id": "d1", "deleted_events": 2, "deleted_profile": True}
    profile = client.get("/v1/users/d1/profile").json()
    assert profile["events"] == 0 and profile["history"] == [] and profile["interests"] == []
    assert client.delete("/v1/users/d1").json() == {"user_id": "d1", "deleted_events": 0, "deleted_profile": False}


def test_pseudonymised_ids_are_stored_hashed_and_erasable(make_client, tmp_path) -> None:
    import sqlite3

    db = tmp_path / "p.db"
    c = make_client(pseudonymise_key="k" * 32, db_url=f"sqlite:///{db}")
    c.post("/v1/events", json={"user_id": "alice@example.com", "item_id": "tea-001"})
    users = [r[0] for r in sqlite3.connect(db).execute("SELECT user_id FROM events")]
    assert users and "alice@example.com" not in users and len(users[0]) == 64
    assert client_profile_events(c, "alice@example.com") == 1
    assert c.delete("/v1/users/alice@example.com").json()["deleted_events"] == 1
    assert sqlite3.connect(db).execute("SELECT count(*) FROM events").fetchone()[0] == 0


def client_profile_events(c, user: str) -> int:
    return c.get(f"/v1/users/{user}/profile").json()["events"]


# ---------------------------------------------------------------------- validation
def test_validation_errors_name_the_field_and_store_nothing(client) -> None:
    cases = [
        ({"events": [{"user_id": "v", "item_id": "tea-001", "timestamp": "yesterday"}]}, 422, "events[0].timestamp"),
        ({"events": [{"user_id": "v", "item_id": "tea-001"}, {"user_id": "v", "item_id": "tea-001", "timestamp": 4e12 * 1000}]}, 422, "events[1].timestamp"),
        ({"user_id": "v", "item_id": "tea-001", "timestamp": -5}, 422, "timestamp"),
        ({"user_id": "v", "item_id": "tea-001", "timestamp": True}, 422, "timestamp"),
        ({"user_id": "v", "item_id": "tea-001", "value": "lots"}, 422, "value"),
        ({"user_id": "", "item_id": "tea-001"}, 422, "user_id"),
        ({"user_id": "v", "item_id": "x" * 300}, 422, "item_id"),
        ({"user_id": "v"}, 422, "item_id"),
        ({"user_id": "v", "item_id": "tea-001", "colour": "red"}, 422, "colour"),
        ({"user_id": "v", "item_id": "tea-001", "event": "drop table"}, 422, "event"),
        ({"events": []}, 422, "events"),
        ({"events": [{"user_id": "v", "item_id": "tea-001"}, {"user_id": "v", "item_id": "ghost"}]}, 404, "events[1].item_id"),
        ([1, 2], 422, "body"),
    ]
    for body, status, field in cases:
        message = _error(client.post("/v1/events", json=body), status, field)
        assert field.split("[")[0].split(".")[-1] in message or field == "body", message
    assert client.get("/v1/users/v/profile").json()["events"] == 0


def test_malformed_json_and_wrong_content(client) -> None:
    message = _error(client.post("/v1/events", content=b'{"user_id": "v", ', headers={"content-type": "application/json"}), 422, "body")
    assert "JSON" in message
    _error(client.post("/v1/items", json={"item_id": "z"}), 422, "title")
    _error(client.post("/v1/items", json={"item_id": "z", "title": "t", "price": "free"}), 422, "price")
    _error(client.post("/v1/items", json={"items": [{"item_id": "z", "title": "t"}, {"item_id": "y", "title": "t", "tags": "x"}]}), 422, "items[1].tags")


def test_k_bounds_and_unknown_ids(client) -> None:
    _error(client.get("/v1/users/u1/recommendations", params={"k": 100_000}), 422, "k")
    _error(client.get("/v1/users/u1/recommendations", params={"k": 0}), 422, "k")
    _error(client.get("/v1/users/u1/recommendations", params={"k": "ten"}), 422, "k")
    _error(client.get("/v1/users/u1/recommendations", params={"max_price": "nan"}), 422, "max_price")
    _error(client.get("/v1/items/tea-001/similar", params={"k": 5000}), 422, "k")
    _error(client.get("/v1/items/nope/similar"), 404, "item_id")
    _error(client.get("/v1/items/nope"), 404, "item_id")
    _error(client.delete("/v1/items/nope"), 404, "item_id")
    _error(client.get("/v1/nothing-here"), 404, "path")
    _error(client.put("/v1/events"), 405, "method")


def test_oversized_bodies_get_413(make_client) -> None:
    c = make_client(max_body_bytes=2000, max_batch=5)
    big = {"events": [{"user_id": "v", "item_id": "tea-001"}] * 100}
    _error(c.post("/v1/events", json=big), 413, "body")

    def chunks():
        yield b'{"events": ['
        for _ in range(100):
            yield b'{"user_id": "v", "item_id": "tea-001"},'
        yield b'{"user_id": "v", "item_id": "tea-001"}]}'

    _error(c.post("/v1/events", content=chunks(), headers={"content-type": "application/json"}), 413, "body")
    _error(c.post("/v1/events", json={"events": [{"user_id": "v", "item_id": "tea-001"}] * 6}), 413, "events")
    assert c.get("/v1/users/v/profile").json()["events"] == 0


# ---------------------------------------------------------------------- auth
def test_api_keys_scopes(make_client) -> None:
    c = make_client(read_keys=("r-key",), write_keys=("w-key",))
    event = {"user_id": "a", "item_id": "tea-001"}
    _error(c.get("/v1/users/a/recommendations"), 401, "X-API-Key")
    _error(c.get("/v1/users/a/recommendations", headers={"X-API-Key": "nope"}), 403, "X-API-Key")
    assert c.get("/v1/users/a/recommendations", headers={"X-API-Key": "r-key"}).status_code == 200
    assert c.get("/v1/users/a/recommendations", headers={"X-API-Key": "w-key"}).status_code == 200
    _error(c.post("/v1/events", json=event), 401, "X-API-Key")
    assert "read access only" in _error(c.post("/v1/events", json=event, headers={"X-API-Key": "r-key"}), 403, "X-API-Key")
    assert c.post("/v1/events", json=event, headers={"X-API-Key": "w-key"}).status_code == 200
    for method, path in [("delete", "/v1/users/a"), ("delete", "/v1/items/tea-001"), ("post", "/v1/models/retrain")]:
        assert getattr(c, method)(path, headers={"X-API-Key": "r-key"}).status_code == 403
    assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200


# ---------------------------------------------------------------------- ops
def test_metrics_and_health(client) -> None:
    client.post("/v1/events", json={"events": [{"user_id": "m", "item_id": "tea-001"}] * 3})
    client.get("/v1/users/m/recommendations")
    client.get("/v1/users/m/recommendations", params={"k": 0})
    text = client.get("/metrics").text
    assert 'coldbrew_http_requests_total{method="GET",route="/v1/users/{user_id}/recommendations",status="200"} 1.0' in text
    assert 'route="/v1/users/{user_id}/recommendations",status="422"' in text
    assert "coldbrew_http_request_duration_seconds_bucket" in text
    assert "coldbrew_events_ingested_total 3.0" in text
    assert 'coldbrew_model_info{version="v0"} 1.0' in text
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model_version"] == "v0" and health["items"] == 52
    assert health["scoring_process"] == "off"  # in-process scoring unless the setting asks for it


def test_openapi_lists_the_contract(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ["/v1/events", "/v1/users/{user_id}/recommendations", "/v1/users/{user_id}/profile",
                 "/v1/users/{user_id}", "/v1/onboarding", "/v1/items", "/v1/items/{item_id}",
                 "/v1/items/{item_id}/similar", "/v1/models/retrain", "/v1/models", "/v1/reports/latest",
                 "/healthz", "/metrics"]:
        assert path in paths, path
    docs = client.get("/docs")
    assert docs.status_code == 200
    if "/docs/assets/swagger-ui-bundle.js" in docs.text:  # fastapi-offline installed: no CDN
        assert "cdn" not in docs.text.lower()
        assert client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
        assert client.get("/docs/assets/nope.js").status_code == 404


def test_reports(make_client, tmp_path) -> None:
    import json

    reports = tmp_path / "reports"
    c = make_client(report_dir=reports)
    _error(c.get("/v1/reports/latest"), 404, "report_dir")
    (reports / "run1").mkdir(parents=True)
    (reports / "run1" / "report.json").write_text(json.dumps({"k": 20, "results": {"coldbrew": {}}}))
    (reports / "run1" / "report.md").write_text("# Report")
    (reports / "run1" / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    out = c.get("/v1/reports/latest").json()
    assert out["k"] == 20 and out["plots"] == ["/v1/reports/files/curve.png"] and out["markdown"] == "# Report"
    png = c.get("/v1/reports/files/curve.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    _error(c.get("/v1/reports/files/report.json"), 404, "name")  # only PNG plots are served
    assert c.get("/v1/reports/files/..%2F..%2Fmodel%2Fmanifest.json").status_code == 404
    _error(c.get("/v1/reports/files/missing.png"), 404, "name")


def test_catalog_changes_and_profiles_survive_a_restart(make_client, model_dir) -> None:
    first = make_client()
    first.post("/v1/items", json={"item_id": "keep-1", "title": "Persistent teapot", "category": "Food > Tea"})
    first.delete("/v1/items/tea-002")
    first.patch("/v1/items/tea-004", json={"in_stock": False, "price": 1.0})
    first.post("/v1/onboarding", json={"user_id": "r1", "text": "tea"})
    first.post("/v1/events", json={"user_id": "r1", "item_id": "keep-1"})
    second = make_client()
    assert second.get("/v1/items/keep-1").json()["title"] == "Persistent teapot"
    _error(second.get("/v1/items/tea-002"), 404, "item_id")
    detail = second.get("/v1/items/tea-004").json()
    assert detail["in_stock"] is False and detail["price"] == 1.0
    profile = second.get("/v1/users/r1/profile").json()
    assert profile["events"] == 1 and profile["interests"][0] == "tea"
    recs = _ids(second.get("/v1/users/r1/recommendations", params={"k": 52}))
    assert "tea-002" not in recs and "tea-004" not in recs


def test_the_whole_flow_on_each_event_store(make_client, store_url) -> None:
    c = make_client(db_url=store_url, pseudonymise_key="p" * 20)
    assert c.post("/v1/events", json={"events": [{"user_id": "s1", "item_id": "wine-001", "event": "purchase"},
                                                 {"user_id": "s1", "item_id": "wine-002"}]}).json() == {"accepted": 2}
    recs = c.get("/v1/users/s1/recommendations", params={"k": 5}).json()["items"]
    assert any("Bordeaux" in i["reason"] or "wine" in i["reason"].lower() for i in recs)
    c.post("/v1/items", json={"item_id": "wine-100", "title": "Bordeaux red wine magnum", "category": "Food > Wine"})
    c.delete("/v1/items/wine-003")
    c.post("/v1/onboarding", json={"user_id": "s1", "text": "red wine"})
    restarted = make_client(db_url=store_url, pseudonymise_key="p" * 20)
    assert restarted.get("/v1/items/wine-100").status_code == 200
    assert restarted.get("/v1/items/wine-003").status_code == 404
    profile = restarted.get("/v1/users/s1/profile").json()
    assert profile["events"] == 2 and profile["interests"][0] == "red wine"
    assert restarted.delete("/v1/users/s1").json() == {"user_id": "s1", "deleted_events": 2, "deleted_profile": True}


def test_profile_interests_without_categories_come_from_shared_title_words(client) -> None:
    for item in ("tea-004", "cook-001"):  # "Cast iron teapot", "Cast iron skillet 26 cm"
        client.patch(f"/v1/items/{item}", json={"category": ""})
    client.post("/v1/events", json={"events": [{"user_id": "w1", "item_id": "tea-004"},
                                                {"user_id": "w1", "item_id": "cook-001"}]})
    assert client.get("/v1/users/w1/profile").json()["interests"] == ["cast", "iron"]


def test_an_unavailable_store_answers_503_and_stores_nothing(client) -> None:
    from coldbrew.storage.event_store import StorageError

    state = client.app.state.coldbrew
    real = state.store.append

    def down(events):
        raise StorageError("event store events.db: disk I/O error")

    state.store.append = down
    try:
        r = client.post("/v1/events", json={"user_id": "z", "item_id": "tea-001"})
    finally:
        state.store.append = real
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["field"] == "db" and "nothing was stored" in r.json()["error"]["message"]
    assert client.get("/v1/users/z/profile").json()["events"] == 0
