"""Arbitrary input never gets a 500 or stores garbage (hypothesis over JSON bodies and params)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
_event = st.fixed_dictionaries(
    {"user_id": st.text(max_size=5) | st.integers(), "item_id": st.sampled_from(["tea-001", "nope", ""]) | _json},
    optional={"timestamp": _json | st.sampled_from(["2026-01-01T00:00:00Z", "2026-13-01", "1e99", "NaN"]),
              "event": _json | st.sampled_from(["view", "Purchase", "x y"]),
              "value": _json, "extra": _json},
)
_body = _json | _event | st.fixed_dictionaries({"events": st.lists(_event, max_size=3) | _json})

_fuzz = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_events(body) -> int:
    events = body.get("events") if isinstance(body, dict) and "events" in body else [body]
    return len(events) if isinstance(events, list) else 0


@_fuzz
@given(body=_body)
def test_events_endpoint_never_fails_with_500(client, body) -> None:
    r = client.post("/v1/events", json=body)
    assert r.status_code in (200, 404, 413, 422), r.text
    payload = r.json()
    if r.status_code == 200:
        assert payload["accepted"] == _valid_events(body)
    else:
        assert set(payload) == {"error"} and payload["error"]["message"]


@_fuzz
@given(k=st.text(max_size=8) | st.integers().map(str), max_price=st.text(max_size=8),
       category=st.text(max_size=8), exclude=st.text(max_size=20), user=st.text(min_size=1, max_size=30))
def test_recommendations_never_fail_with_500(client, k, max_price, category, exclude, user) -> None:
    from urllib.parse import quote

    user = quote(user, safe="")
    if user in (".", ".."):
        user = "u"
    params = {"k": k, "max_price": max_price, "category": category, "exclude": exclude}
    r = client.get(f"/v1/users/{user}/recommendations", params=params)
    assert r.status_code in (200, 404, 422), r.text
    if r.status_code != 200:
        assert set(r.json()) == {"error"}


@_fuzz
@given(body=_json | st.fixed_dictionaries({"item_id": _json, "title": _json}, optional={"price": _json, "tags": _json}))
def test_items_endpoint_never_fails_with_500(client, body) -> None:
    r = client.post("/v1/items", json=body)
    assert r.status_code in (201, 404, 413, 422), r.text


@pytest.mark.parametrize("raw", [b'{"user_id": "u", "item_id": "tea-001", "value": NaN}',
                                 b'{"user_id": "u", "item_id": "tea-001", "timestamp": Infinity}',
                                 b'{"user_id": "u", "item_id": "tea-001", "value": 1e999}'])
def test_non_finite_numbers_are_refused(client, raw: bytes) -> None:
    r = client.post("/v1/events", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] in ("value", "timestamp")
    assert client.get("/v1/users/u/profile").json()["events"] == 0
