"""``POST /v1/chat``: multi-turn state by conversation ID, Chinese, errors, auth."""

from __future__ import annotations

from typing import Any


def _chat(client: Any, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/chat", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_conversation_keeps_the_category_and_lowers_the_price(client):
    first = _chat(client, conversation_id="c1", message="show me tea")
    assert first["intent"] == "find_products" and first["slots"]["category"] == "Food > Tea"
    assert first["items"] and {i["category"] for i in first["items"]} == {"Food > Tea"}
    assert set(first["items"][0]) == {"item_id", "title", "category", "price", "score", "reason"}
    cheaper = _chat(client, conversation_id="c1", message="cheaper ones")
    assert cheaper["intent"] == "filter" and cheaper["items"]
    assert {i["category"] for i in cheaper["items"]} == {"Food > Tea"}
    assert max(i["price"] for i in cheaper["items"]) < max(i["price"] for i in first["items"])
    other = _chat(client, conversation_id="c2", message="cheaper ones")  # another conversation
    assert other["items"] == []


def test_new_conversation_id_chinese_and_reset(client):
    reply = _chat(client, message="给我看看蜡烛")
    cid = reply["conversation_id"]
    assert len(cid) == 32 and reply["language"] == "zh" and reply["items"]
    assert _chat(client, conversation_id=cid, message="重新开始")["intent"] == "reset"
    assert _chat(client, conversation_id=cid, message="重新开始")["filters"] == {}
    assert _chat(client, user_id="", message="hello")["intent"] == "greeting"  # anonymous web page


def test_user_history_personalises_recommend(client):
    events = [{"user_id": "shopper", "item_id": i, "event": "purchase"} for i in ("tea-001", "tea-002")]
    assert client.post("/v1/events", json={"events": events}).status_code == 200
    reply = _chat(client, conversation_id="h", user_id="shopper", message="recommend something for me", k=3)
    assert reply["intent"] == "recommend" and len(reply["items"]) == 3
    assert not {"tea-001", "tea-002"} & {i["item_id"] for i in reply["items"]}


def test_deleted_items_are_never_shown(client):
    shown = _chat(client, conversation_id="d", message="show me tea", k=10)
    gone = shown["items"][0]["item_id"]
    assert client.delete(f"/v1/items/{gone}").status_code == 200
    again = _chat(client, conversation_id="d2", message="show me tea", k=10)
    assert gone not in {i["item_id"] for i in again["items"]}


def test_bad_bodies_name_the_field(client):
    for body, field in (({"message": ""}, "message"), ({}, "message"), ({"message": "hi", "colour": 1}, "colour"),
                        ({"message": "hi", "k": 100_000}, "k"), ({"message": "x" * 2001}, "message")):
        response = client.post("/v1/chat", json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["field"] == field, response.json()


def test_read_key_required(make_client):
    c = make_client(read_keys=("r-key",), write_keys=("w-key",))
    assert c.post("/v1/chat", json={"message": "hello"}).status_code == 401
    assert c.post("/v1/chat", json={"message": "hello"}, headers={"X-API-Key": "bad"}).status_code == 403
    assert c.post("/v1/chat", json={"message": "hello"}, headers={"X-API-Key": "r-key"}).status_code == 200
