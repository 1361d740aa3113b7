"""Recommendation requests (validation, JSON Lines reading) and writing results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coldbrew.errors import DataError
from coldbrew.requests import (
    HistoryEvent,
    Recommendation,
    Request,
    read_requests,
    request_from_dict,
    write_recommendations,
)

JAN_1_2024 = 1_704_067_200  # 2024-01-01T00:00:00Z


def _req(**fields):
    return request_from_dict({"request_id": "r1", "user_id": "u1", **fields})


def test_minimal_request():
    request = _req()
    assert request == Request(request_id="r1", user_id="u1")
    assert request.history == ()
    assert request.text is None
    assert request.candidates is None
    assert request.exclude == ()


def test_full_request():
    request = _req(
        history=[
            {"item_id": "i1", "timestamp": 100},
            {"item_id": 42, "timestamp": 200, "event": "PURCHASE", "value": 2},
        ],
        text="I run marathons 我喜欢跑步",
        candidates=["a", 7],
        exclude=["b"],
    )
    assert request.history == (
        HistoryEvent("i1", 100, "interaction", None),
        HistoryEvent("42", 200, "purchase", 2.0),
    )
    assert request.text == "I run marathons 我喜欢跑步"
    assert request.candidates == ("a", "7")
    assert request.exclude == ("b",)


def test_integer_ids_become_strings():
    request = request_from_dict({"request_id": 5, "user_id": 9})
    assert (request.request_id, request.user_id) == ("5", "9")


def test_null_history_and_empty_candidates():
    request = _req(history=None, candidates=[], exclude=None)
    assert request.history == ()
    assert request.candidates == ()  # an explicit empty candidate set is not "no restriction"
    assert request.exclude == ()


@pytest.mark.parametrize("obj", [{"user_id": "u"}, {"request_id": "", "user_id": "u"},
                                 {"request_id": None, "user_id": "u"},
                                 {"request_id": ["r"], "user_id": "u"}])
def test_request_id_is_required(obj):
    with pytest.raises(DataError) as info:
        request_from_dict(obj, where="req.jsonl: line 4")
    assert str(info.value).startswith("req.jsonl: line 4: field 'request_id' is required")


@pytest.mark.parametrize("user_id", [None, "", {"id": 1}])
def test_user_id_is_required(user_id):
    obj = {"request_id": "r"} if user_id is None else {"request_id": "r", "user_id": user_id}
    with pytest.raises(DataError, match="field 'user_id' is required"):
        request_from_dict(obj)


def test_request_must_be_an_object():
    with pytest.raises(DataError, match=r"^request: expected a JSON object$"):
        request_from_dict(["r1", "u1"])


def test_unknown_field_is_named():
    with pytest.raises(DataError, match=r"unknown field\(s\) histroy, kk"):
        _req(histroy=[], kk=3)


@pytest.mark.parametrize("history", [{"item_id": "a", "timestamp": 1}, "a,b", 3])
def test_history_must_be_a_list(history):
    with pytest.raises(DataError, match="field 'history' must be a list"):
        _req(history=history)


def test_history_entry_must_be_an_object():
    with pytest.raises(DataError, match=r"^request: history\[1\]: expected an object"):
        _req(history=[{"item_id": "a", "timestamp": 1}, "b"])


@pytest.mark.parametrize("event", [{"timestamp": 1}, {"item_id": "", "timestamp": 1},
                                   {"item_id": None, "timestamp": 1}])
def test_history_item_id_is_required(event):
    with pytest.raises(DataError, match=r"history\[0\]: field 'item_id' is required"):
        _req(history=[event])


def test_history_timestamp_is_required():
    with pytest.raises(DataError, match=r"history\[0\]: field 'timestamp' is required"):
        _req(history=[{"item_id": "a"}])


@pytest.mark.parametrize("ts", ["soon", "", "2024-13-45T00:00:00Z", float("nan"), float("inf")])
def test_bad_history_timestamp_names_the_entry(ts):
    with pytest.raises(DataError) as info:
        _req(history=[{"item_id": "a", "timestamp": 1}, {"item_id": "b", "timestamp": ts}])
    msg = str(info.value)
    assert msg.startswith("request: history[1]: field 'timestamp'")
    assert repr(ts) in msg


@pytest.mark.parametrize("ts", [True, None, [1], {"s": 1}])
def test_history_timestamp_of_the_wrong_type(ts):
    with pytest.raises(DataError, match=r"history\[0\]: field 'timestamp': expected unix seconds"):
        _req(history=[{"item_id": "a", "timestamp": ts}])


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1_700_000_000, 1_700_000_000),
        (1_700_000_000.75, 1_700_000_000),
        (1_700_000_000_123, 1_700_000_000),  # milliseconds
        ("1700000000", 1_700_000_000),
        ("1700000000123", 1_700_000_000),
        ("2024-01-01T00:00:00Z", JAN_1_2024),
        ("2024-01-01T08:00:00+08:00", JAN_1_2024),
        ("2024-01-01T00:00:00", JAN_1_2024),
    ],
)
def test_history_timestamps(ts, expected):
    (event,) = _req(history=[{"item_id": "a", "timestamp": ts}]).history
    assert event.timestamp == expected
    assert isinstance(event.timestamp, int)


def test_history_event_and_value_types():
    with pytest.raises(DataError, match=r"history\[0\]: field 'event' must be a string"):
        _req(history=[{"item_id": "a", "timestamp": 1, "event": 3}])
    for value in ("5", True):
        with pytest.raises(DataError, match=r"history\[0\]: field 'value' must be a number"):
            _req(history=[{"item_id": "a", "timestamp": 1, "value": value}])


def test_empty_event_is_an_interaction():
    (event,) = _req(history=[{"item_id": "a", "timestamp": 1, "event": ""}]).history
    assert event.event == "interaction"


def test_text_must_be_a_string():
    with pytest.raises(DataError, match="field 'text' must be a string"):
        _req(text=["running"])


@pytest.mark.parametrize("field", ["candidates", "exclude"])
@pytest.mark.parametrize("value", ["a,b", {"a": 1}, ["a", {"b": 2}], ["a", None]])
def test_candidates_and_exclude_must_be_lists_of_ids(field, value):
    with pytest.raises(DataError) as info:
        _req(**{field: value})
    assert f"field '{field}' must be a list of item IDs" in str(info.value)


# --- read_requests -------------------------------------------------------------------------


def _lines(*objs) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o, ensure_ascii=False)) + "\n"
                   for o in objs)


def test_read_requests_in_order_ignoring_blank_lines(write_file):
    path = write_file(
        "req.jsonl",
        _lines(
            {"request_id": "r1", "user_id": "u1"},
            "",
            "   ",
            {"request_id": "r2", "user_id": "新用户", "text": "跑步鞋"},
            {"request_id": "r3", "user_id": "u3", "history": [{"item_id": "a", "timestamp": 5}]},
            "",
        ),
    )
    requests = list(read_requests(path))
    assert [r.request_id for r in requests] == ["r1", "r2", "r3"]
    assert requests[1].user_id == "新用户" and requests[1].text == "跑步鞋"
    assert requests[2].history == (HistoryEvent("a", 5),)


def test_read_requests_is_lazy(write_file):
    path = write_file("req.jsonl", _lines({"request_id": "r1", "user_id": "u1"}, "{oops"))
    stream = read_requests(path)
    assert next(stream).request_id == "r1"  # the good line comes before the bad one fails
    with pytest.raises(DataError, match="line 2"):
        next(stream)


def test_malformed_json_names_the_line(write_file):
    path = write_file(
        "req.jsonl", _lines({"request_id": "r1", "user_id": "u1"}, "", '{"request_id": "r2",')
    )
    with pytest.raises(DataError) as info:
        list(read_requests(path))
    assert str(info.value).startswith(f"{path}: line 3: malformed JSON")


def test_invalid_request_names_the_line_and_field(write_file):
    path = write_file(
        "req.jsonl",
        _lines(
            {"request_id": "r1", "user_id": "u1"},
            {"request_id": "r2", "user_id": "u2",
             "history": [{"item_id": "a", "timestamp": 1}, {"item_id": "b", "timestamp": "x"}]},
        ),
    )
    with pytest.raises(DataError) as info:
        list(read_requests(path))
    assert str(info.value).startswith(f"{path}: line 2: history[1]: field 'timestamp'")


def test_line_that_is_not_an_object(write_file):
    path = write_file("req.jsonl", _lines("[1, 2]"))
    with pytest.raises(DataError, match=r"line 1: expected a JSON object"):
        list(read_requests(path))


def test_missing_requests_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match="requests file does not exist"):
        list(read_requests(path))


def test_empty_requests_file(write_file):
    assert list(read_requests(write_file("req.jsonl", "\n\n"))) == []


# --- write_recommendations -----------------------------------------------------------------


def test_write_recommendations_round_trip(tmp_path):
    recs = [
        Recommendation("r1", "u1", ["a", "b"], [np.float32(0.5), 0.1234567891],
                       ["because you bought X", "与您的兴趣相符"]),
        Recommendation("r2", "u2"),
    ]
    path = tmp_path / "out.jsonl"
    write_recommendations(path, recs)
    text = path.read_text(encoding="utf-8")
    assert "与您的兴趣相符" in text  # written as UTF-8, not \\u escapes
    lines = text.splitlines()
    assert len(lines) == 2 and text.endswith("\n")
    rows = [json.loads(line) for line in lines]
    assert rows[0] == {
        "request_id": "r1",
        "user_id": "u1",
        "items": ["a", "b"],
        "scores": [0.5, 0.123457],
        "reasons": ["because you bought X", "与您的兴趣相符"],
    }
    assert rows[1] == {"request_id": "r2", "user_id": "u2", "items": [], "scores": [],
                       "reasons": []}
    assert rows == [rec.to_dict() for rec in recs]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]  # no temp file left behind


def test_write_recommendations_replaces_an_existing_file(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old content\nmore\nand more\n", encoding="utf-8")
    write_recommendations(path, [Recommendation("r9", "u9", ["x"], [1.0], ["popular"])])
    assert [json.loads(line)["request_id"] for line in path.read_text().splitlines()] == ["r9"]


def test_write_no_recommendations_gives_an_empty_file(tmp_path):
    path = tmp_path / "out.jsonl"
    write_recommendations(path, [])
    assert path.read_text() == ""
