"""GET /v1/search on the demo shop: modes, Chinese, personalisation, catalog changes, errors, auth."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [i["item_id"] for i in response.json()["items"]]


def _error(response, status: int, field: str | None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["field"] == field
    return body["error"]["message"]


def test_search_returns_items_with_reasons_in_every_mode(client) -> None:
    for mode in ("hybrid", "lexical", "semantic"):
        response = client.get("/v1/search", params={"q": "trail running shoes", "k": 3, "mode": mode})
        body = response.json()
        assert body["query"] == "trail running shoes" and body["mode"] == mode
        assert _ids(response)[0] == "run-003"
        first = body["items"][0]
        assert set(first) == {"item_id", "title", "category", "price", "score", "reason"}
        assert first["title"] == "Trail running shoes with grippy sole" and first["price"] == 119.0
    assert client.get("/v1/search", params={"q": "running"}).json()["mode"] == "hybrid"


@pytest.mark.parametrize("query, expected", [("铁观音", "tea-002"), ("机械键盘", "game-003"), ("婴儿推车", "baby-002")])
def test_chinese_queries(client, query, expected) -> None:
    response = client.get("/v1/search", params={"q": query, "k": 3})
    assert _ids(response)[0] == expected
    assert response.json()["items"][0]["reason"].startswith("matches '")


def test_a_users_events_personalise_the_results(client) -> None:
    plain = _ids(client.get("/v1/search", params={"q": "gift set", "k": 10}))
    events = [{"user_id": "gamer", "item_id": i, "event": "purchase"} for i in ("game-001", "game-002", "game-004")]
    assert client.post("/v1/events", json={"events": events}).json() == {"accepted": 3}
    personal = client.get("/v1/search", params={"q": "gift set", "k": 10, "user_id": "gamer"})
    ids = _ids(personal)
    assert ids != plain
    assert sum(i.startswith("game") for i in ids[:5]) > sum(i.startswith("game") for i in plain[:5])
    assert any(i["reason"].endswith("suits your shopping history") for i in personal.json()["items"])
    # a user the service has never seen searches anonymously
    assert _ids(client.get("/v1/search", params={"q": "gift set", "k": 10, "user_id": "nobody"})) == plain


def test_catalog_changes_show_up_in_the_next_search(client) -> None:
    assert "N1" not in _ids(client.get("/v1/search", params={"q": "bamboo lunch box", "k": 5}))
    item = {"item_id": "N1", "title": "Bamboo lunch box", "category": "Home > Kitchen", "price": 9.5}
    assert client.post("/v1/items", json=item).status_code == 201
    assert _ids(client.get("/v1/search", params={"q": "bamboo lunch box", "k": 5}))[0] == "N1"
    assert _ids(client.get("/v1/search", params={"q": "便当盒", "k": 5, "mode": "lexical"})) == []
    patched = client.patch("/v1/items/N1", json={"title": "竹制便当盒 Bamboo lunch box"})
    assert patched.status_code == 200, patched.text
    assert _ids(client.get("/v1/search", params={"q": "便当盒", "k": 5, "mode": "lexical"})) == ["N1"]
    assert client.patch("/v1/items/N1", json={"in_stock": False}).status_code == 200
    assert "N1" not in _ids(client.get("/v1/search", params={"q": "bamboo lunch box", "k": 5}))
    assert client.delete("/v1/items/tea-002").status_code == 200
    assert "tea-002" not in _ids(client.get("/v1/search", params={"q": "铁观音", "k": 5}))


def test_bad_parameters_name_the_field(client) -> None:
    _error(client.get("/v1/search"), 422, "q")
    _error(client.get("/v1/search", params={"q": "   "}), 422, "q")
    _error(client.get("/v1/search", params={"q": "tea", "k": 0}), 422, "k")
    _error(client.get("/v1/search", params={"q": "tea", "k": 5000}), 422, "k")
    _error(client.get("/v1/search", params={"q": "tea", "mode": "fuzzy"}), 422, "mode")


def test_search_needs_a_read_key_when_keys_are_set(make_client) -> None:
    client = make_client(read_keys=("reader-key",), write_keys=("writer-key",))
    _error(client.get("/v1/search", params={"q": "tea"}), 401, "X-API-Key")
    _error(client.get("/v1/search", params={"q": "tea"}, headers={"X-API-Key": "wrong"}), 403, "X-API-Key")
    for key in ("reader-key", "writer-key"):
        assert _ids(client.get("/v1/search", params={"q": "tea"}, headers={"X-API-Key": key}))


def test_a_hot_swapped_model_gets_its_own_index(client, model_dir) -> None:
    from coldbrew.data.catalog import catalog_from_frame
    from coldbrew.storage import load_model

    assert _ids(client.get("/v1/search", params={"q": "espresso grinder", "k": 3, "mode": "lexical"})) == []
    state = client.app.state.coldbrew
    fresh = load_model(model_dir)
    import pandas as pd

    extra, _ = catalog_from_frame(pd.DataFrame({"item_id": ["E1"], "title": ["Burr espresso grinder"]}))
    fresh.add_items(extra)
    with state.lock.write():  # what a retrain's swap does
        state.model, state.model_version = fresh, "v-test"
        state.invalidate_items()
    assert _ids(client.get("/v1/search", params={"q": "espresso grinder", "k": 3, "mode": "lexical"})) == ["E1"]
