"""IdMap: raw IDs <-> dense indices in insertion order."""

from __future__ import annotations

import numpy as np
import pytest

from coldbrew.data import IdMap
from coldbrew.errors import ColdbrewError, UnknownIdError


def test_indices_follow_insertion_order():
    ids = IdMap(["b", "a", "c", "a"])
    assert len(ids) == 3
    assert ids.ids() == ["b", "a", "c"]
    assert [ids.index(x) for x in ("b", "a", "c")] == [0, 1, 2]


def test_add_returns_indices_of_known_and_new_ids():
    ids = IdMap(["x", "y"])
    out = ids.add(["y", "z", "x", "z", "w"])
    assert out.dtype == np.int64
    assert list(out) == [1, 2, 0, 2, 3]
    assert ids.ids() == ["x", "y", "z", "w"]


def test_add_nothing_returns_an_empty_int_array():
    out = IdMap(["x"]).add([])
    assert out.shape == (0,) and out.dtype == np.int64


def test_ids_are_stored_as_strings():
    ids = IdMap([7, "007"])
    assert ids.ids() == ["7", "007"]
    assert ids.index(7) == 0  # looked up by its text
    assert ids.index("007") == 1
    assert "7" in ids and 7 not in ids  # membership is on the stored strings


def test_lookup_gives_missing_for_unknown_ids():
    ids = IdMap(["a", "b"])
    out = ids.lookup(["b", "zz", "a"])
    assert out.dtype == np.int64
    assert list(out) == [1, -1, 0]
    assert list(ids.lookup(["zz"], missing=99)) == [99]
    assert len(ids) == 2  # lookup never adds


def test_lookup_of_nothing():
    out = IdMap(["a"]).lookup([])
    assert out.shape == (0,) and out.dtype == np.int64


def test_index_of_unknown_id_names_it():
    ids = IdMap(["a"], kind="item")
    with pytest.raises(UnknownIdError) as info:
        ids.index("sku-42")
    assert str(info.value) == "unknown item 'sku-42'"
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ColdbrewError)


def test_ids_of_given_indices():
    ids = IdMap(["a", "b", "c"])
    assert ids.ids(np.array([2, 0])) == ["c", "a"]
    assert ids.ids([]) == []
    returned = ids.ids()
    returned.append("d")
    assert len(ids) == 3  # ids() returns a copy


def test_round_trip_through_indices():
    raw = ["u9", "u1", "u9", "u3"]
    ids = IdMap()
    assert ids.ids(ids.add(raw)) == raw
