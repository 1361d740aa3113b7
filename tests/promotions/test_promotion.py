"""Promotion records: validation names the field; files in JSON and JSON Lines."""

from __future__ import annotations

import json

import pytest

from coldbrew.errors import DataError
from coldbrew.promotions import (
    Promotion,
    load_promotions,
    promotion_from_dict,
    promotions_from_json,
)


def test_valid_promotion_and_schedule() -> None:
    p = promotion_from_dict({"promotion_id": "p1", "item_id": 42, "bid": 0.4, "budget": 10,
                             "start": "2024-01-01T00:00:00Z", "end": 1_704_153_600, "frequency_cap": 2})
    assert p.item_id == "42" and p.start == 1_704_067_200 and p.cap_period == "day"
    assert not p.active(1_704_067_199) and p.active(1_704_067_200) and not p.active(1_704_153_600)


@pytest.mark.parametrize("obj, field", [
    ({"item_id": "a", "bid": 1, "budget": 1}, "promotion_id"),
    ({"promotion_id": "p", "bid": 1, "budget": 1}, "item_id"),
    ({"promotion_id": "p", "item_id": "a", "category": "c", "bid": 1, "budget": 1}, "item_id"),
    ({"promotion_id": "p", "item_id": "a", "bid": -1, "budget": 1}, "bid"),
    ({"promotion_id": "p", "item_id": "a", "bid": 1}, "budget"),
    ({"promotion_id": "p", "item_id": "a", "bid": 1, "budget": 1, "start": 10, "end": 5}, "end"),
    ({"promotion_id": "p", "item_id": "a", "bid": 1, "budget": 1, "frequency_cap": 0}, "frequency_cap"),
    ({"promotion_id": "p", "item_id": "a", "bid": 1, "budget": 1, "cap_period": "week"}, "cap_period"),
    ({"promotion_id": "p", "item_id": "a", "bid": 1, "budget": 1, "discount_percent": 120}, "discount_percent"),
    ({"promotion_id": "p", "item_id": "a", "bid": 1, "budget": 1, "start": "soon"}, "start"),
    ({"promotion_id": "p", "item_id": "a", "bid": 1, "budget": 1, "colour": "red"}, "colour"),
])
def test_bad_promotions_name_the_field(obj: dict, field: str) -> None:
    with pytest.raises(DataError, match=field):
        promotion_from_dict(obj, "promo[0]")


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(DataError, match=r"promotions\[1\].*duplicate"):
        promotions_from_json([{"promotion_id": "p", "item_id": "a", "bid": 1, "budget": 1}] * 2)


def test_files(tmp_path) -> None:
    rows = [{"promotion_id": "p1", "item_id": "a", "bid": 1, "budget": 5},
            {"promotion_id": "p2", "category": "Tea", "bid": 0.5, "budget": 5, "cap_period": "total"}]
    (tmp_path / "p.json").write_text(json.dumps({"promotions": rows}))
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert load_promotions(tmp_path / "p.json") == load_promotions(tmp_path / "p.jsonl")
    assert load_promotions(tmp_path / "p.json")[1] == Promotion("p2", 0.5, 5, category="Tea", cap_period="total")
    (tmp_path / "bad.jsonl").write_text(json.dumps(rows[0]) + "\n{oops\n")
    with pytest.raises(DataError, match="line 2"):
        load_promotions(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        load_promotions(tmp_path / "missing.json")
