"""Security of the service (issue #21, part 5), one test (or a few) per property.

a) API keys are compared in constant time; b) keys are never logged nor echoed; c) a per-key
rate limit (token bucket, 429 + Retry-After); d) every size and length is bounded (a request
just over each bound is refused); e) pseudonymised user IDs are never written in the clear
(SQLite file, model directory, logs, /metrics; PostgreSQL rows); f) model and report files
load without pickle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

WRITE = ("write-KEY-aaaa-1111-secret", "write-KEY-bbbb-2222-secret")
READ = ("read-KEY-cccc-3333-secret", "read-KEY-dddd-4444-secret", "read-KEY-eeee-5555-secret")
WRONG = "wrong-KEY-ffff-6666-secret"
USER = "alice-SECRET-123"
PSEUDO_KEY = "pseudonymise-key-0123456789"


def _error(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "field"} and body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field, body
    return body["error"]


def _keyed(make_client, **extra: Any) -> Any:
    return make_client(write_keys=WRITE, read_keys=READ, **extra)


# ---------------------------------------------------------------------- a) constant time
def test_every_configured_key_is_compared_whatever_the_key_sent(make_client, monkeypatch) -> None:
    from coldbrew.service import auth

    c = _keyed(make_client)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    n_keys = len(WRITE) + len(READ)
    for key in (WRITE[0], WRITE[1], READ[0], READ[2], WRONG, "x", "y" * 5000, WRITE[0][:-1], "é"):
        for path, method in (("/v1/models", "GET"), ("/v1/events", "POST")):
            calls.clear()
            r = c.request(method, path, headers={"X-API-Key": key.encode("utf-8")},
                          json={"user_id": "u", "item_id": "tea-001"} if method == "POST" else None)
            assert r.status_code in (200, 403), r.text
            # every key, read and write, once: no early exit on a match, on a scope, on a length
            assert len(calls) == n_keys, (key[:10], path, len(calls))
            # digests of one length: the time of a comparison tells nothing about a key's length
            assert {len(a) for a, _ in calls} | {len(b) for _, b in calls} == {32}
    calls.clear()
    _error(c.get("/v1/models"), 401, "X-API-Key")  # no key sent: nothing to compare
    assert calls == []


def test_matches_has_no_early_exit(monkeypatch) -> None:
    from coldbrew.service import auth

    seen: list[bytes] = []
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: seen.append(b) or a == b)
    assert auth._matches("k1", ("k1", "k2", "k3")) is True
    assert seen == [hashlib.sha256(k.encode()).digest() for k in ("k1", "k2", "k3")]
    seen.clear()
    assert auth._matches("nope", ("k1", "k2", "k3")) is False and len(seen) == 3


# ---------------------------------------------------------------------- b) keys never logged
def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    """What the server side logged (the test client's own request lines, httpx's, left out)."""
    parts = []
    for record in caplog.records:
        if record.name.startswith("httpx"):
            continue
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def test_keys_are_never_logged_nor_echoed(make_client, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the service's and the libraries'
    c = _keyed(make_client)
    seen: list[str] = []
    requests = [
        ("GET", "/v1/users/u001/recommendations", WRITE[0], None),
        ("GET", "/v1/users/u001/recommendations", READ[1], None),
        ("POST", "/v1/events", READ[0], {"user_id": "u", "item_id": "tea-001"}),  # 403: read only
        ("POST", "/v1/events", WRONG, {"user_id": "u", "item_id": "tea-001"}),  # 403: unknown
        ("POST", "/v1/events", WRITE[1], {"user_id": "u", "item_id": "nope"}),  # 404
        ("POST", "/v1/events", WRITE[1], {"user_id": "u"}),  # 422
        ("GET", "/v1/users/u001/recommendations?k=100000", WRITE[0], None),  # 422
        ("GET", "/v1/models", WRITE[0][:-3], None),  # a near miss
        ("DELETE", "/v1/no/such/endpoint", WRITE[0], None),  # 404
    ]
    for method, path, key, body in requests:
        r = c.request(method, path, headers={"X-API-Key": key}, json=body)
        seen.append(r.text)
        seen.append(json.dumps(dict(r.headers)))
    seen.append(c.get("/metrics").text)
    logged = _log_text(caplog)
    assert caplog.records  # something was logged at DEBUG (the check looks at real records)
    for key in (*WRITE, *READ, WRONG, WRITE[0][:-3]):
        assert key not in logged
        for text in seen:
            assert key not in text


def test_access_log_rate_limit_and_pseudonyms_under_coldbrew_serve(model_dir: Path) -> None:
    """The real command: --rate-limit/--rate-burst, and --access-log lines hold no key, no raw user ID."""
    httpx = pytest.importorskip("httpx")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "coldbrew.cli", "serve", "--model", str(model_dir), "--port", str(port),
         "--api-key-write", WRITE[0], "--api-key-read", READ[0], "--pseudonymise-key", PSEUDO_KEY,
         "--rate-limit", "1", "--rate-burst", "3", "--access-log", "--log-level", "debug", "--no-scoring-process"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=10.0) as http:
            w = {"X-API-Key": WRITE[0]}
            assert http.post("/v1/events", json={"user_id": USER, "item_id": "tea-001"}, headers=w).status_code == 200
            statuses = [http.get(f"/v1/users/{USER}/recommendations", headers=w).status_code for _ in range(4)]
            assert statuses[:2] == [200, 200] and 429 in statuses, statuses  # a burst of 3, 1 a second
            limited = http.get(f"/v1/users/{USER}/profile", headers=w)
            _error(limited, 429, "X-API-Key")
            assert int(limited.headers["Retry-After"]) >= 1
            assert http.get("/v1/models", headers={"X-API-Key": READ[0]}).status_code == 200  # its own bucket
            assert http.get("/v1/models", headers={"X-API-Key": WRONG}).status_code == 403
            assert http.get(f"/v1/search?q=tea&user_id={USER}", headers={"X-API-Key": READ[0]}).status_code == 200
            assert http.get("/healthz").status_code == 200 and http.get("/metrics").status_code == 200  # never limited
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    log = out.decode("utf-8", "replace")
    assert '"GET /v1/users/{user_id}/recommendations HTTP/1.1" 429' in log, log[-3000:]  # access log on, masked
    assert "user_id={user_id}" in log
    for secret in (USER, *WRITE, *READ, WRONG, PSEUDO_KEY):
        assert secret not in log, secret
    _scan_tree(model_dir, USER)


# ---------------------------------------------------------------------- c) rate limit
def test_token_bucket_refills_at_the_rate() -> None:
    from coldbrew.service.auth import TokenBuckets

    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", now=100.0) == pytest.approx(0.5)  # a token back in half a second
    assert buckets.take("b", now=100.0) == 0.0  # another client: its own bucket
    assert buckets.take("a", now=100.5) == 0.0
    assert buckets.take("a", now=100.5) > 0
    assert [buckets.take("a", now=200.0) for _ in range(4)][-1] > 0  # idle: full again, never more than the burst


def test_token_buckets_stay_bounded() -> None:
    from coldbrew.service.auth import TokenBuckets

    buckets = TokenBuckets(rate=1000.0, burst=1, max_clients=100)
    for n in range(1000):
        buckets.take(f"ip:{n}", now=n / 10)
    assert len(buckets._buckets) <= 101


def test_rate_limit_per_key_429_with_retry_after(make_client) -> None:
    c = _keyed(make_client, rate_limit=0.5, rate_burst=3)
    w, r = {"X-API-Key": WRITE[0]}, {"X-API-Key": READ[0]}
    assert [c.get("/v1/models", headers=w).status_code for _ in range(3)] == [200, 200, 200]
    limited = c.get("/v1/users/u001/recommendations", headers=w)
    error = _error(limited, 429, "X-API-Key")
    assert "rate limit" in error["message"] and WRITE[0] not in limited.text
    assert int(limited.headers["Retry-After"]) == 2  # 1 token at 0.5/s
    assert c.get("/v1/models", headers={"X-API-Key": WRITE[1]}).status_code == 200  # another key
    assert c.get("/v1/models", headers=r).status_code == 200
    # requests without a valid key share one bucket per client IP (key guessing is limited too)
    assert [c.get("/v1/models", headers={"X-API-Key": f"guess-{n}"}).status_code for n in range(4)] == [403, 403, 403, 429]
    _error(c.get("/v1/models"), 429)
    assert c.get("/healthz").status_code == 200 and c.get("/metrics").status_code == 200
    assert "429" in c.get("/openapi.json").json()["paths"]["/v1/models"]["get"]["responses"]


def test_rate_limit_open_api_per_client_ip_and_default_off(make_client) -> None:
    from coldbrew.errors import ConfigError
    from coldbrew.service.settings import ServiceSettings

    limited = make_client(rate_limit=5)  # burst: one second's worth
    assert limited.app.state.coldbrew.settings.rate_burst == 5
    assert [limited.get("/v1/models").status_code for _ in range(6)][-1] == 429
    unlimited = make_client()
    assert {unlimited.get("/v1/models").status_code for _ in range(30)} == {200}
    with pytest.raises(ConfigError, match="rate_limit"):
        ServiceSettings(model_dir=Path("m"), rate_limit=-1)
    with pytest.raises(ConfigError, match="rate_burst"):
        ServiceSettings(model_dir=Path("m"), rate_limit=1, rate_burst=-2)


def test_serve_has_the_rate_limit_options() -> None:
    out = subprocess.run([sys.executable, "-m", "coldbrew.cli", "serve", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "--rate-limit" in out.stdout and "--rate-burst" in out.stdout


# ---------------------------------------------------------------------- d) bounds
def test_body_size_bound(make_client) -> None:
    c = make_client(max_body_bytes=1000)
    body = json.dumps({"user_id": "u", "item_id": "tea-001", "event": "view"}).encode()
    pad = lambda n: body[:-1] + b" " * (n - len(body)) + b"}"  # noqa: E731
    assert c.post("/v1/events", content=pad(1000), headers={"content-type": "application/json"}).status_code == 200
    _error(c.post("/v1/events", content=pad(1001), headers={"content-type": "application/json"}), 413, "body")

    def chunks():  # no Content-Length: refused while streaming in
        yield pad(1001)[:600]
        yield pad(1001)[600:]

    _error(c.post("/v1/events", content=chunks(), headers={"content-type": "application/json"}), 413, "body")


def test_k_bound_on_every_list(make_client) -> None:
    c = make_client(max_k=30)
    for k, ok in ((30, True), (31, False)):
        calls = [
            c.get("/v1/users/u001/recommendations", params={"k": k}),
            c.get("/v1/items/tea-001/similar", params={"k": k}),
            c.get("/v1/search", params={"q": "tea", "k": k}),
            c.post("/v1/onboarding", json={"text": "green tea", "k": k}),
        ]
        for r in calls:
            if ok:
                assert r.status_code == 200, r.text
            else:
                _error(r, 422, "k")
    _error(c.post("/v1/chat", json={"message": "tea", "k": 31}), 422, "k")  # checked before the assistant loads
    _error(c.get("/v1/items", params={"limit": 501}), 422, "limit")
    _error(c.post("/v1/promotions/select", json={"user_id": "u", "slots": 101}), 422, "slots")


def test_batch_size_bound(make_client) -> None:
    c = make_client(max_batch=5)
    event = {"user_id": "u", "item_id": "tea-001"}
    assert c.post("/v1/events", json={"events": [event] * 5}).status_code == 200
    _error(c.post("/v1/events", json={"events": [event] * 6}), 413, "events")
    items = [{"item_id": f"n{j}", "title": "t"} for j in range(6)]
    assert c.post("/v1/items", json={"items": items[:5]}).status_code == 201
    _error(c.post("/v1/items", json={"items": items}), 413, "items")
    promos = [{"promotion_id": f"p{j}", "category": "Tea", "bid": 1, "budget": 10} for j in range(6)]
    assert c.post("/v1/promotions", json={"promotions": promos[:5]}).status_code == 201
    _error(c.post("/v1/promotions", json={"promotions": promos}), 413, "promotions")


# (request, field): each a request with one text or list just over its bound
_LONG = [
    (("POST", "/v1/items", {"item_id": "n1", "title": "t" * 1001}), "title"),
    (("POST", "/v1/items", {"item_id": "n1", "title": "t", "description": "d" * 20_001}), "description"),
    (("POST", "/v1/items", {"item_id": "n1", "title": "t", "category": "c" * 501}), "category"),
    (("POST", "/v1/items", {"item_id": "n1", "title": "t", "brand": "b" * 201}), "brand"),
    (("POST", "/v1/items", {"item_id": "n1", "title": "t", "tags": ["x"] * 51}), "tags"),
    (("POST", "/v1/items", {"item_id": "n1", "title": "t", "tags": ["x" * 101]}), "tags[0]"),
    (("POST", "/v1/items", {"item_id": "i" * 257, "title": "t"}), "item_id"),
    (("PATCH", "/v1/items/tea-001", {"description": "d" * 20_001}), "description"),
    (("PATCH", "/v1/items/tea-001", {"title": "t" * 1001}), "title"),
    (("POST", "/v1/events", {"user_id": "u" * 257, "item_id": "tea-001"}), "user_id"),
    (("POST", "/v1/events", {"user_id": "u", "item_id": "tea-001", "event": "e" * 33}), "event"),
    (("POST", "/v1/events", {"user_id": "u", "item_id": "tea-001", "timestamp": "1" * 65}), "timestamp"),
    (("POST", "/v1/onboarding", {"text": "t" * 2001}), "text"),
    (("POST", "/v1/onboarding", {"categories": ["Tea"] * 21}), "categories"),
    (("POST", "/v1/onboarding", {"categories": ["c" * 201]}), "categories[0]"),
    (("POST", "/v1/onboarding", {"user_id": "u" * 257, "text": "tea"}), "user_id"),
    (("POST", "/v1/chat", {"message": "m" * 2001}), "message"),
    (("POST", "/v1/chat", {"message": "m", "conversation_id": "c" * 129}), "conversation_id"),
    (("POST", "/v1/chat", {"message": "m", "user_id": "u" * 257}), "user_id"),
    (("POST", "/v1/promotions", {"promotion_id": "p" * 257, "category": "Tea", "bid": 1, "budget": 1}), "promotion_id"),
    (("POST", "/v1/promotions", {"promotion_id": "p", "category": "Tea", "bid": 1, "budget": 1, "start": "2" * 65}),
     "start"),
    (("POST", "/v1/promotions", {"promotions": [{"promotion_id": "p", "category": "Tea", "bid": 1, "budget": 1,
                                                 "end": "2" * 65}]}), "promotions[0].end"),
    (("POST", "/v1/promotions/select", {"user_id": "u" * 257}), "user_id"),
    (("GET", "/v1/search?q=" + "q" * 501, None), "q"),
    (("GET", "/v1/search?q=tea&user_id=" + "u" * 257, None), "user_id"),
    (("GET", "/v1/items?q=" + "q" * 201, None), "q"),
    (("GET", "/v1/users/" + "u" * 257 + "/recommendations", None), "user_id"),
    (("GET", "/v1/users/u001/recommendations?category=" + "c" * 201, None), "category"),
    (("GET", "/v1/users/u001/recommendations?exclude=" + "e" * 257, None), "exclude"),
    (("GET", "/v1/items/" + "i" * 257, None), "item_id"),
    (("GET", "/v1/analytics/users/" + "u" * 257 + "/churn", None), "user_id"),
    (("DELETE", "/v1/promotions/" + "p" * 257, None), "promotion_id"),
    (("GET", "/v1/reports/files/" + "r" * 201 + ".png", None), "name"),
]


def test_every_text_and_list_is_bounded(make_client) -> None:
    c = make_client()
    for (method, path, body), field in _LONG:
        r = c.request(method, path, json=body)
        assert r.status_code in (404, 422), (path[:60], field, r.status_code, r.text[:200])
        error = _error(r, r.status_code)
        assert error["field"] == field, (path[:60], error)
    # and just at the bounds, the same requests are taken
    assert c.post("/v1/items", json={"item_id": "i" * 256, "title": "t" * 1000, "description": "d" * 20_000,
                                     "category": "c" * 500, "brand": "b" * 200, "tags": ["x" * 100] * 50}).status_code == 201
    assert c.post("/v1/onboarding", json={"text": "t" * 2000}).status_code == 200
    assert c.get("/v1/search", params={"q": "tea " * 125}).status_code == 200


def test_numbers_and_booleans_are_json_typed(make_client) -> None:
    """Found by the fuzzing: ``"k": true`` was read as 1 (pydantic's lax mode)."""
    c = make_client()
    _error(c.post("/v1/chat", json={"message": "tea", "k": True}), 422, "k")
    _error(c.post("/v1/onboarding", json={"text": "tea", "k": True}), 422, "k")
    _error(c.post("/v1/events", json={"user_id": "u", "item_id": "tea-001", "value": True}), 422, "value")
    _error(c.post("/v1/items", json={"item_id": "n", "title": "t", "in_stock": 1}), 422, "in_stock")
    _error(c.post("/v1/items", json={"item_id": "n", "title": "t", "price": False}), 422, "price")
    _error(c.patch("/v1/items/tea-001", json={"in_stock": "yes"}), 422, "in_stock")
    _error(c.post("/v1/promotions", json={"promotion_id": "p", "category": "Tea", "bid": True, "budget": 1}), 422, "bid")
    _error(c.post("/v1/promotions/select", json={"user_id": "u", "slots": True}), 422, "slots")
    assert c.post("/v1/items", json={"item_id": "n", "title": "t", "price": 3, "in_stock": False}).status_code == 201


def test_report_plots_need_a_read_key(make_client, tmp_path: Path) -> None:
    """Found in review: /v1/reports/files/{name} was served without any key (the page sends one)."""
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "report.json").write_text("{}")
    (reports / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    c = _keyed(make_client, report_dir=reports)
    _error(c.get("/v1/reports/files/curve.png"), 401, "X-API-Key")
    _error(c.get("/v1/reports/files/curve.png", headers={"X-API-Key": WRONG}), 403, "X-API-Key")
    ok = c.get("/v1/reports/files/curve.png", headers={"X-API-Key": READ[0]})
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"


# ---------------------------------------------------------------------- e) pseudonyms
def _scan_tree(root: Path, secret: str) -> list[Path]:
    """Every file under ``root``; fails when any holds ``secret`` (UTF-8 or UTF-16)."""
    needles = [secret.encode("utf-8"), secret.encode("utf-16-le")]
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{secret!r} in the clear in {path}"
    return files


def _use_every_user_endpoint(c: Any, user: str) -> None:
    listed = c.get("/v1/items", params={"limit": 5}).json()["items"]
    items = [i["item_id"] for i in listed]
    events = [{"user_id": user, "item_id": items[j % len(items)], "event": "purchase" if j % 2 else "view",
               "timestamp": 1_750_000_000 + j * 3600} for j in range(12)]
    assert c.post("/v1/events", json={"events": events}).status_code == 200
    assert c.post("/v1/events", json={"user_id": user, "item_id": items[0]}).status_code == 200
    assert c.post("/v1/onboarding", json={"user_id": user, "text": "green tea and candles"}).status_code == 200
    assert c.get(f"/v1/users/{user}/recommendations").status_code == 200
    profile = c.get(f"/v1/users/{user}/profile").json()
    assert profile["user_id"] == user and profile["events"] == 13  # the client keeps its raw ID
    assert c.get("/v1/search", params={"q": "tea", "user_id": user}).status_code == 200
    assert c.get(f"/v1/analytics/users/{user}/churn").status_code in (200, 404, 422)  # 422: too little history
    assert c.get("/v1/analytics").status_code == 200
    promo = {"promotion_id": "p1", "category": listed[0]["category"].split(">")[-1].strip(), "bid": 1.0,
             "budget": 1000.0}
    assert c.post("/v1/promotions", json=promo).status_code == 201
    chosen = c.post("/v1/promotions/select", json={"user_id": user, "slots": 2}).json()
    assert chosen["placements"], chosen  # an impression recorded in the ledger
    assert c.get(f"/v1/users/{user}-other/recommendations").status_code == 200


def _user_key(user: str) -> str:
    return hmac.new(PSEUDO_KEY.encode(), user.encode(), hashlib.sha256).hexdigest()


def test_pseudonymised_ids_never_written_in_the_clear_sqlite(make_client, model_dir: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    c = make_client(pseudonymise_key=PSEUDO_KEY)
    _use_every_user_endpoint(c, USER)
    started = c.post("/v1/models/retrain")  # the retrained version is fitted on the stored events
    assert started.status_code == 202
    state = c.app.state.coldbrew
    state.retrainer.join(timeout=180)
    models = c.get("/v1/models").json()
    assert models["active"] == "v1", models
    assert c.get(f"/v1/users/{USER}/recommendations").status_code == 200
    metrics = c.get("/metrics").text
    assert USER not in metrics
    c.__exit__(None, None, None)  # stores closed, WAL checkpointed
    files = _scan_tree(model_dir, USER)
    names = {p.name for p in files}
    assert {"events.db", "promotion_ledger.db"} <= names and any("versions" in p.parts for p in files)
    hashed = _user_key(USER).encode()
    assert hashed in (model_dir / "events.db").read_bytes()  # the store holds the pseudonym (checked the right file)
    assert hashed in (model_dir / "promotion_ledger.db").read_bytes()
    assert USER not in _log_text(caplog)


def test_logged_errors_name_the_route_not_the_user(make_client, caplog) -> None:
    """Found in review: a store failure logged the request path, raw user ID included."""
    from coldbrew.storage.event_store import StorageError

    caplog.set_level(logging.DEBUG)
    c = make_client(pseudonymise_key=PSEUDO_KEY)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("database is locked")

    c.app.state.coldbrew.store.history = down
    _error(c.get(f"/v1/users/{USER}/profile"), 503, "db")
    text = _log_text(caplog)
    assert "/v1/users/{user_id}/profile" in text and USER not in text


def test_access_log_filter_masks_user_ids() -> None:
    from coldbrew.service.serve import MaskUserIds

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", f"/v1/users/{USER}/recommendations?k=5", "1.1", 200), None)
    assert MaskUserIds().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /v1/users/{user_id}/recommendations?k=5 HTTP/1.1" 200'
    record.args = ("c", "GET", f"/v1/search?q=tea&user_id={USER}&k=3", "1.1", 200)
    MaskUserIds().filter(record)
    assert USER not in record.getMessage() and "q=tea&user_id={user_id}&k=3" in record.getMessage()


def test_pseudonymised_ids_never_written_in_the_clear_postgresql(make_client, pg_url: str, pg_base_url: str,
                                                                  model_dir: Path, caplog) -> None:
    import psycopg

    caplog.set_level(logging.DEBUG)
    c = make_client(pseudonymise_key=PSEUDO_KEY, db_url=pg_url)
    _use_every_user_endpoint(c, USER)
    assert USER not in c.get("/metrics").text
    c.__exit__(None, None, None)
    schema = re.search(r"schema=([A-Za-z0-9_]+)", pg_url).group(1)
    dumped = []
    with psycopg.connect(pg_base_url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))]
        assert {"events", "profiles"} <= {t.split(".")[-1] for t in tables} or len(tables) >= 2, tables
        for table in tables:
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            dumped.append(f"{table}: {rows!r}")
    text = "\n".join(dumped)
    assert _user_key(USER) in text  # the rows hold the pseudonym
    assert USER not in text
    _scan_tree(model_dir, USER)
    assert USER not in _log_text(caplog)


# ---------------------------------------------------------------------- f) no pickle
def test_model_and_report_load_without_pickle(demo_model_dir: Path, make_client, tmp_path: Path, monkeypatch) -> None:
    import pickle

    import numpy as np

    from coldbrew.requests import Request
    from coldbrew.storage import load_model

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle used while loading a model or report file")

    real_np_load = np.load

    def np_load(*args: Any, allow_pickle: bool = False, **kwargs: Any) -> Any:
        if allow_pickle:
            raise AssertionError("numpy.load(allow_pickle=True) while loading a model or report file")
        return real_np_load(*args, allow_pickle=False, **kwargs)

    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "report.json").write_text(json.dumps({"k": 10, "results": {"coldbrew": {"ndcg@10": 0.2}}}))
    (reports / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(np, "load", np_load)
    model = load_model(demo_model_dir)
    assert len(model.item_map_) > 0
    assert len(model.recommend([Request(request_id="r", user_id="u001")], 5)[0].items) == 5
    c = make_client(report_dir=reports)  # the service loads the model and serves the report
    assert c.get("/v1/reports/latest").json()["k"] == 10
    assert c.get("/v1/users/u001/recommendations").status_code == 200


# Allowed: where the server talks to its own scoring child (multiprocessing pipes pickle what
# they carry, both ends are this package and nothing is read from a file; the child loads its
# replica of the model from the model directory with load_model, no pickle). No model or
# report file is ever unpickled; a retrain runs `coldbrew fit` as a subprocess (files, no pipe).
# fitting.py: a fit hands hold-out jobs to its own worker processes over their stdin/stdout
# pipes (both ends this package, in memory, never a file).
_PICKLE_ALLOWED = {"service/scoring.py", "fitting.py"}


def test_no_pickle_in_the_package() -> None:
    import coldbrew

    root = Path(coldbrew.__file__).parent
    risky = re.compile(
        r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b"
        r"|allow_pickle\s*=\s*True|read_pickle\(|\.to_pickle\(|torch\.load\(", re.MULTILINE)
    found = {}
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        hits = risky.findall(text) or (["multiprocessing"] if re.search(r"^\s*import multiprocessing|^\s*from multiprocessing",
                                                                        text, re.MULTILINE) else [])
        if hits:
            found[path.relative_to(root).as_posix()] = hits
    unexpected = {k: v for k, v in found.items() if k not in _PICKLE_ALLOWED}
    assert not unexpected, unexpected
    # the loaders ask numpy for no pickles, explicitly
    for rel in ("storage/artifacts.py", "text/cache.py"):
        text = (root / rel).read_text(encoding="utf-8")
        assert "np.load(" in text and text.count("np.load(") == text.count("allow_pickle=False"), rel
