"""Event loading and validation: aliases, timestamps, bad rows, JSON Lines line numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coldbrew.config import ColumnsConfig
from coldbrew.data import Events, events_from_frame, load_events, parse_timestamps
from coldbrew.errors import DataError

JAN_1_2024 = 1_704_067_200  # 2024-01-01T00:00:00Z in unix seconds


def test_basic_csv(write_file):
    path = write_file(
        "e.csv",
        "user_id,item_id,timestamp,event,value\n"
        "u1,i1,100,view,\n"
        "u1,i2,200,PURCHASE,2\n"
        "007,00123,300,,\n",
    )
    events, report = load_events(path)
    assert isinstance(events, Events)
    assert len(events) == 3
    assert list(events.user_ids) == ["u1", "u1", "007"]
    assert list(events.item_ids) == ["i1", "i2", "00123"]
    assert events.timestamps.dtype == np.int64
    assert list(events.timestamps) == [100, 200, 300]
    # Event types are lower-cased; an empty one is a generic interaction.
    assert list(events.events) == ["view", "purchase", "interaction"]
    assert events.values.dtype == np.float64
    np.testing.assert_array_equal(events.values, [np.nan, 2.0, np.nan])
    assert (report.rows_read, report.rows_kept, report.skipped) == (3, 3, {})


def test_aliases(write_file):
    path = write_file(
        "e.csv",
        "customer_id,product_id,event_time,event_type,quantity\n"
        "c1,p1,100,cart,3\n",
    )
    events, _ = load_events(path)
    assert (events.user_ids[0], events.item_ids[0], events.timestamps[0]) == ("c1", "p1", 100)
    assert events.events[0] == "cart"
    assert events.values[0] == 3.0


def test_movielens_header_defaults_event_to_rating(write_file):
    path = write_file("ratings.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")
    events, _ = load_events(path)
    assert list(events.events) == ["rating"]
    assert events.values[0] == 2.5
    assert events.item_ids[0] == "31"
    assert events.timestamps[0] == 1260759144


def test_default_event_is_interaction_for_other_value_columns(write_file):
    events, _ = load_events(write_file("e.csv", "user_id,item_id,ts,quantity\nu,i,1,2\n"))
    assert list(events.events) == ["interaction"]


def test_default_event_is_interaction_without_value_column(write_file):
    events, _ = load_events(write_file("e.csv", "user_id,item_id,timestamp\nu,i,1\n"))
    assert list(events.events) == ["interaction"]
    assert np.isnan(events.values[0])


def test_explicit_column_mapping(write_file):
    path = write_file("e.csv", "who,what,when,stars\nu,i,5,4\n")
    columns = ColumnsConfig(user_id="who", item_id="what", timestamp="when", value="stars")
    events, _ = load_events(path, columns=columns)
    assert (events.user_ids[0], events.item_ids[0], events.timestamps[0]) == ("u", "i", 5)
    assert events.values[0] == 4.0


def test_missing_required_column_lists_the_file_columns(write_file):
    path = write_file("e.csv", "user_id,item_id,rating\nu,i,5\n")
    with pytest.raises(DataError) as info:
        load_events(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "timestamp" in msg
    assert "user_id, item_id, rating" in msg


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1700000000", 1_700_000_000),  # unix seconds
        ("1700000000.9", 1_700_000_000),  # fractions are floored
        ("1700000000123", 1_700_000_000),  # milliseconds
        ("0", 0),
        ("2024-01-01T00:00:00Z", JAN_1_2024),
        ("2024-01-01T08:00:00+08:00", JAN_1_2024),
        ("2023-12-31T19:00:00-05:00", JAN_1_2024),
        ("2024-01-01T00:00:00", JAN_1_2024),  # no zone: UTC
        ("2024-01-01T00:00:59.999", JAN_1_2024 + 59),
        ("2024-01-01", JAN_1_2024),
    ],
)
def test_timestamp_formats(write_file, raw, expected):
    events, _ = load_events(write_file("e.csv", f"user_id,item_id,timestamp\nu,i,{raw}\n"))
    assert int(events.timestamps[0]) == expected


def test_parse_timestamps_mixed_series():
    raw = pd.Series(["100", 1_700_000_000_000, -5.5, "soon", None, ""], dtype=object)
    seconds, ok = parse_timestamps(raw)
    assert seconds.dtype == np.int64
    assert list(ok) == [True, True, True, False, False, False]
    assert list(seconds) == [100, 1_700_000_000, -6, 0, 0, 0]


def test_unparseable_timestamp_names_file_line_and_field(write_file):
    path = write_file("e.csv", "user_id,item_id,timestamp\nu,i,100\nu,i,yesterday\n")
    with pytest.raises(DataError) as info:
        load_events(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 3: field timestamp")
    assert "'yesterday'" in msg


def test_empty_timestamp_is_bad(write_file):
    with pytest.raises(DataError, match="line 2: field timestamp"):
        load_events(write_file("e.csv", "user_id,item_id,timestamp\nu,i,\n"))


# --- bad rows ------------------------------------------------------------------------------


def test_empty_user_id_names_line_and_field(write_file):
    path = write_file("e.csv", "user_id,item_id,timestamp\n,i,1\n")
    with pytest.raises(DataError) as info:
        load_events(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 2: field user_id")
    assert msg.endswith("is empty")


def test_empty_item_id_names_line_and_field(write_file):
    path = write_file("e.csv", "user_id,item_id,timestamp\nu,i,1\nu,  ,2\n")
    with pytest.raises(DataError, match=r"line 3: field item_id:? is empty$"):
        load_events(path)


@pytest.mark.parametrize("bad", ["five", "inf"])
def test_non_numeric_value_names_line_and_field(write_file, bad):
    path = write_file("e.csv", f"user_id,item_id,timestamp,rating\nu,i,1,4\nu,i,2,{bad}\n")
    with pytest.raises(DataError) as info:
        load_events(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 3: field value: expected a number")
    assert repr(bad) in msg


def test_skip_policy_drops_and_counts_bad_rows(write_file):
    path = write_file(
        "e.csv",
        "user_id,item_id,timestamp,rating\n"
        "u1,i1,1,5\n"  # line 2: good
        ",i2,2,5\n"  # line 3: empty user
        "u3,i3,later,5\n"  # line 4: bad timestamp
        "u4,i4,4,great\n"  # line 5: bad value
        "u5,i5,never,5\n"  # line 6: bad timestamp
        "u6,i6,6,\n",  # line 7: good, no value
    )
    events, report = load_events(path, on_bad_rows="skip")
    assert list(events.user_ids) == ["u1", "u6"]
    assert list(events.timestamps) == [1, 6]
    np.testing.assert_array_equal(events.values, [5.0, np.nan])
    assert report.rows_read == 6
    assert report.rows_kept == 2
    assert report.skipped == {
        "user_id is empty": 1,
        "timestamp expected unix seconds or an ISO 8601 date-time": 2,
        "value expected a number": 1,
    }
    # One example per kind of problem, at its first line.
    assert report.examples == [
        "line 3: user_id is empty",
        "line 4: timestamp expected unix seconds or an ISO 8601 date-time",
        "line 5: value expected a number",
    ]
    assert "kept 2 of 6 rows" in report.summary()


def test_a_row_bad_twice_is_counted_once(write_file):
    path = write_file("e.csv", "user_id,item_id,timestamp\n,i,never\nu,i,1\n")
    events, report = load_events(path, on_bad_rows="skip")
    assert len(events) == 1
    assert sum(report.skipped.values()) == 1


# --- JSON Lines ----------------------------------------------------------------------------


def test_jsonl_events(write_file):
    lines = [
        {"user_id": 7, "item_id": "00123", "timestamp": 1_700_000_000, "event": "view"},
        {"user_id": "u", "item_id": 5, "timestamp": "1700000100500", "event": "cart"},
    ]
    path = write_file("e.jsonl.gz", "".join(json.dumps(r) + "\n" for r in lines))
    events, _ = load_events(path)
    assert list(events.user_ids) == ["7", "u"]
    assert list(events.item_ids) == ["00123", "5"]
    assert list(events.timestamps) == [1_700_000_000, 1_700_000_100]
    assert list(events.events) == ["view", "cart"]


def test_jsonl_line_numbers_count_blank_lines(write_file):
    path = write_file(
        "e.jsonl",
        '{"user_id": "u", "item_id": "i", "timestamp": 1}\n'
        "\n"
        '{"user_id": "u", "item_id": "i", "timestamp": 2}\n'
        "   \n"
        '{"user_id": "u", "item_id": "i", "timestamp": "tomorrow"}\n',
    )
    with pytest.raises(DataError) as info:
        load_events(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line 5: field timestamp")
    assert "'tomorrow'" in msg
    events, report = load_events(path, on_bad_rows="skip")
    assert list(events.timestamps) == [1, 2]
    assert report.rows_read == 3
    assert report.examples == ["line 5: timestamp expected unix seconds or an ISO 8601 date-time"]


def test_malformed_json_line_is_named(write_file):
    path = write_file(
        "e.jsonl",
        '{"user_id": "u", "item_id": "i", "timestamp": 1}\n\n{"user_id": "u", "item_id": \n',
    )
    with pytest.raises(DataError) as info:
        load_events(path)
    assert str(info.value).startswith(f"{path}: line 3: malformed JSON")


def test_json_line_that_is_not_an_object_is_named(write_file):
    path = write_file("e.jsonl", '{"user_id": "u", "item_id": "i", "timestamp": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match="line 2: expected a JSON object"):
        load_events(path)


def test_jsonl_value_may_be_absent_on_some_rows(write_file):
    # Optional fields may be omitted (or null) row by row: that is "no value", not an error.
    path = write_file(
        "e.jsonl",
        '{"user_id": "u", "item_id": "a", "timestamp": 1, "event": "rating", "value": 4}\n'
        '{"user_id": "u", "item_id": "b", "timestamp": 2, "event": "view"}\n'
        '{"user_id": "u", "item_id": "c", "timestamp": 3, "event": "view", "value": null}\n',
    )
    events, report = load_events(path)
    np.testing.assert_array_equal(events.values, [4.0, np.nan, np.nan])
    assert list(events.events) == ["rating", "view", "view"]
    assert report.skipped == {}


def test_jsonl_row_without_user_id_is_an_empty_id(write_file):
    path = write_file(
        "e.jsonl",
        '{"user_id": "u", "item_id": "a", "timestamp": 1}\n'
        '{"item_id": "b", "timestamp": 2}\n',
    )
    with pytest.raises(DataError, match="line 2: field user_id:? is empty"):
        load_events(path)


# --- frames and the Events helpers ---------------------------------------------------------


def test_events_from_frame_locations_are_rows():
    frame = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["i", "j"], "timestamp": [1, "x"]})
    with pytest.raises(DataError) as info:
        events_from_frame(frame, source="live")
    assert str(info.value).startswith("live: row 2: field timestamp")


def test_events_from_frame_numeric_columns():
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 20], "timestamp": [5, 6],
                          "rating": [4.5, 1.0]})
    events, report = events_from_frame(frame)
    assert list(events.user_ids) == ["1", "2"]
    assert list(events.item_ids) == ["10", "20"]
    assert list(events.timestamps) == [5, 6]
    assert list(events.events) == ["rating", "rating"]
    assert report.source == "events"


def _three() -> Events:
    return Events(
        np.array(["a", "b", "c"], dtype=object),
        np.array(["x", "y", "z"], dtype=object),
        np.array([30, 10, 20], dtype=np.int64),
        np.array(["view", "cart", "view"], dtype=object),
        np.array([np.nan, 1.0, 2.0]),
    )


def test_events_take_concat_and_sort():
    events = _three()
    masked = events.take(np.array([True, False, True]))
    assert list(masked.user_ids) == ["a", "c"]
    picked = events.take(np.array([2, 0]))
    assert list(picked.timestamps) == [20, 30]
    both = Events.concat([events, picked])
    assert len(both) == 5
    assert list(both.item_ids) == ["x", "y", "z", "z", "x"]
    ordered = events.sorted_by_time()
    assert list(ordered.timestamps) == [10, 20, 30]
    assert list(ordered.user_ids) == ["b", "c", "a"]
    np.testing.assert_array_equal(ordered.values, [1.0, 2.0, np.nan])


def test_sorted_by_time_is_stable():
    events = Events(
        np.array(["first", "second"], dtype=object), np.array(["i", "i"], dtype=object),
        np.array([5, 5], dtype=np.int64), np.array(["view", "view"], dtype=object),
        np.array([np.nan, np.nan]),
    )
    assert list(events.sorted_by_time().user_ids) == ["first", "second"]


def test_unknown_bad_row_policy_is_refused(write_file):
    # A typo such as "raise" must not silently drop rows as if it were "skip".
    path = write_file("e.csv", "user_id,item_id,timestamp\nu,i,never\n")
    with pytest.raises(ValueError, match="on_bad_rows"):
        load_events(path, on_bad_rows="raise")
