"""Promotions over HTTP on the demo shop: create, list, select with caps, copy, errors, auth."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("fastapi")

NOW = 1_750_000_000
RUNNER = [{"user_id": "ann", "item_id": i, "event": "purchase", "timestamp": NOW - 3600 + n}
          for n, i in enumerate(("run-001", "run-003"))]
PROMOS = {"promotions": [
    {"promotion_id": "socks", "item_id": "run-004", "bid": 0.5, "budget": 100, "discount_percent": 20},
    {"promotion_id": "teapot", "item_id": "tea-004", "bid": 0.5, "budget": 100},
    {"promotion_id": "wine", "category": "Wine", "bid": 0.3, "budget": 100, "frequency_cap": 1},
]}


def _error(response, status: int, field: str | None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["field"] == field, body
    return body["error"]["message"]


def _select(client, **body):
    response = client.post("/v1/promotions/select", json={"user_id": "ann", "slots": 3, "now": NOW, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_create_list_and_select(client, model_dir) -> None:
    assert client.post("/v1/events", json={"events": RUNNER}).json() == {"accepted": 2}
    created = client.post("/v1/promotions", json=PROMOS)
    assert created.status_code == 201 and created.json()["created"] == 3
    body = _select(client)
    placements = body["placements"]
    assert body["user_id"] == "ann" and len(placements) == 3
    assert placements[0]["item_id"] == "run-004"  # the runner's own category wins at equal bids
    assert [p["slot"] for p in placements] == [1, 2, 3]
    scores = [p["score"] for p in placements]
    assert scores == sorted(scores, reverse=True)
    first = placements[0]
    assert set(first) == {"slot", "promotion_id", "item_id", "title", "predicted_ctr", "bid", "score",
                          "explanation", "copy", "copy_source"}
    assert first["explanation"].startswith("pCTR ") and "× bid £0.50" in first["explanation"]
    assert "20% off" in first["copy"] and first["copy_source"] == "template"
    wine = next(p for p in placements if p["promotion_id"] == "wine")
    assert wine["item_id"].startswith("wine-") or wine["title"]
    # The wine promotion is capped at one impression a day; the others are charged.
    again = _select(client)
    assert "wine" not in [p["promotion_id"] for p in again["placements"]]
    assert again["skipped"]["wine"].startswith("frequency cap of 1 per day")
    listed = {p["promotion_id"]: p for p in client.get("/v1/promotions").json()["promotions"]}
    assert listed["socks"]["spent"] == pytest.approx(2 * first["score"], rel=1e-4)
    assert json.loads((model_dir / "promotions.json").read_text())["promotions"][0]["promotion_id"] == "socks"


def test_chinese_copy_and_deleted_products(client) -> None:
    client.post("/v1/events", json={"events": RUNNER})
    client.post("/v1/promotions", json=PROMOS)
    zh = _select(client, language="zh")["placements"]
    assert "8折" in next(p for p in zh if p["promotion_id"] == "socks")["copy"]
    assert client.delete("/v1/items/run-004").status_code == 200
    body = _select(client)
    assert "socks" not in [p["promotion_id"] for p in body["placements"]]
    assert body["skipped"]["socks"] == "no product of it in the catalog"


def test_promotions_caps_and_spend_survive_a_restart(make_client, model_dir) -> None:
    first = make_client()
    first.post("/v1/promotions", json=PROMOS["promotions"][2])  # wine: one impression a day
    assert first.delete("/v1/promotions/teapot").status_code == 404
    shown = first.post("/v1/promotions/select", json={"user_id": "ann", "now": NOW}).json()["placements"]
    assert [p["promotion_id"] for p in shown] == ["wine"]
    second = make_client()
    listed = second.get("/v1/promotions").json()["promotions"]
    assert [p["promotion_id"] for p in listed] == ["wine"]
    assert listed[0]["spent"] == pytest.approx(shown[0]["score"], rel=1e-4)
    again = second.post("/v1/promotions/select", json={"user_id": "ann", "now": NOW + 60}).json()
    assert again["placements"] == [] and again["skipped"]["wine"].startswith("frequency cap")
    second.post("/v1/promotions", json=PROMOS["promotions"][0])
    second.delete("/v1/promotions/wine")
    assert [p["promotion_id"] for p in second.get("/v1/promotions").json()["promotions"]] == ["socks"]
    assert second.delete("/v1/promotions/socks").json() == {"promotion_id": "socks", "deleted": True}
    assert second.get("/v1/promotions").json() == {"promotions": []}


@pytest.mark.parametrize("body, field", [
    ({"promotion_id": "p", "item_id": "nope", "bid": 1, "budget": 1}, "item_id"),
    ({"promotion_id": "p", "item_id": "run-001", "category": "Tea", "bid": 1, "budget": 1}, "item_id"),
    ({"promotion_id": "p", "item_id": "run-001", "bid": 1, "budget": 1, "start": 10, "end": 5}, "end"),
    ({"promotion_id": "p", "item_id": "run-001", "bid": 1, "budget": 1, "start": "soon"}, "start"),
    ({"promotion_id": "p", "item_id": "run-001", "bid": 0, "budget": 1}, "bid"),
    ({"promotion_id": "p", "item_id": "run-001", "bid": 1, "budget": 1, "colour": "red"}, "colour"),
    ({"promotions": [{"promotion_id": "p", "item_id": "nope", "bid": 1, "budget": 1}]}, "promotions[0].item_id"),
])
def test_bad_promotions_are_422_naming_the_field(client, body, field) -> None:
    message = _error(client.post("/v1/promotions", json=body), 422, field)
    assert field.split(".")[-1].split("[")[0] in message


def test_bad_selection_requests(client) -> None:
    _error(client.post("/v1/promotions/select", json={"user_id": "ann", "slots": 0}), 422, "slots")
    _error(client.post("/v1/promotions/select", json={"user_id": "ann", "language": "fr"}), 422, "language")
    assert client.post("/v1/promotions/select", json={"user_id": "nobody"}).json()["placements"] == []


def test_keys(make_client) -> None:
    client = make_client(read_keys=("r" * 8,), write_keys=("w" * 8,))
    promo = PROMOS["promotions"][0]
    _error(client.post("/v1/promotions", json=promo), 401, "X-API-Key")
    _error(client.post("/v1/promotions", json=promo, headers={"X-API-Key": "r" * 8}), 403, "X-API-Key")
    assert client.post("/v1/promotions", json=promo, headers={"X-API-Key": "w" * 8}).status_code == 201
    _error(client.post("/v1/promotions/select", json={"user_id": "a"}), 401, "X-API-Key")
    ok = client.post("/v1/promotions/select", json={"user_id": "a"}, headers={"X-API-Key": "r" * 8})
    assert ok.status_code == 200 and len(ok.json()["placements"]) == 1


class _Stub(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps({"choices": [{"message": {"content": "Fresh socks for fresh miles."}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_copy_from_a_generative_backend(make_client) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = make_client(copy_url=f"http://127.0.0.1:{server.server_address[1]}")
        client.post("/v1/promotions", json=PROMOS["promotions"][0])
        placement = client.post("/v1/promotions/select", json={"user_id": "a"}).json()["placements"][0]
        assert (placement["copy"], placement["copy_source"]) == ("Fresh socks for fresh miles.", "llm")
    finally:
        server.shutdown()
        server.server_close()
