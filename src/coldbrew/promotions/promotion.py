"""Promotions and ads: what an advertiser buys, validated at the edge."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coldbrew.errors import DataError

__all__ = ["CAP_PERIODS", "Promotion", "load_promotions", "promotion_from_dict", "promotions_from_json"]

CAP_PERIODS = ("day", "total")
_FIELDS = {"promotion_id", "item_id", "category", "bid", "budget", "start", "end",
           "frequency_cap", "cap_period", "discount_percent"}


@dataclass(frozen=True)
class Promotion:
    """One promotion or ad.

    It promotes one product (``item_id``) or the user's best product of a ``category`` (a
    case-insensitive match of one level of the catalog's category path). ``bid`` is what the
    advertiser pays per click; ``budget`` caps the total spend, charged per impression at its
    expected cost (pCTR x bid). It runs from ``start`` (inclusive) to ``end`` (exclusive),
    unix seconds, open-ended when ``None``. ``frequency_cap`` limits impressions per user per
    ``cap_period`` (``"day"``: UTC calendar day, or ``"total"``); ``None`` means no cap.
    ``discount_percent`` (0-100) is used by the promotion copy.
    """

    promotion_id: str
    bid: float
    budget: float
    item_id: str | None = None
    category: str | None = None
    start: int | None = None
    end: int | None = None
    frequency_cap: int | None = None
    cap_period: str = "day"
    discount_percent: float | None = None

    def __post_init__(self) -> None:
        where = f"promotion '{self.promotion_id}'"
        if not isinstance(self.promotion_id, str) or not self.promotion_id.strip():
            raise DataError("promotion: field 'promotion_id' is required (a non-empty string)")
        if (self.item_id is None) == (self.category is None):
            raise DataError(f"{where}: give exactly one of 'item_id' and 'category'")
        for name in ("item_id", "category"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise DataError(f"{where}: field '{name}' must be a non-empty string")
        for name in ("bid", "budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise DataError(f"{where}: field '{name}' must be a positive number, got {value!r}")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise DataError(f"{where}: field 'end' must be after 'start'")
        if self.frequency_cap is not None and (isinstance(self.frequency_cap, bool) or not isinstance(self.frequency_cap, int) or self.frequency_cap < 1):
            raise DataError(f"{where}: field 'frequency_cap' must be an integer >= 1 (or absent for no cap)")
        if self.cap_period not in CAP_PERIODS:
            raise DataError(f"{where}: field 'cap_period' must be 'day' or 'total', got {self.cap_period!r}")
        d = self.discount_percent
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 < d < 100):
            raise DataError(f"{where}: field 'discount_percent' must be a number between 0 and 100")

    def active(self, now: int) -> bool:
        """Whether the schedule allows showing it at ``now`` (unix seconds)."""
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (
            "promotion_id", "item_id", "category", "bid", "budget", "start", "end",
            "frequency_cap", "cap_period", "discount_percent")}


def _time(value: Any, field: str, where: str) -> int | None:
    if value is None:
        return None
    from coldbrew.requests import parse_timestamp

    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"{where}: field '{field}': expected unix seconds or ISO 8601")
    seconds = parse_timestamp(value)
    if seconds is None:
        raise DataError(f"{where}: field '{field}': expected unix seconds or ISO 8601, got {value!r}")
    return seconds


def promotion_from_dict(obj: Any, where: str = "promotion") -> Promotion:
    """Validate one decoded JSON promotion; errors name ``where`` and the field."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object")
    unknown = set(obj) - _FIELDS
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    pid = obj.get("promotion_id")
    if not isinstance(pid, (str, int)) or isinstance(pid, bool) or str(pid).strip() == "":
        raise DataError(f"{where}: field 'promotion_id' is required (a non-empty string)")
    for name in ("bid", "budget"):
        if name not in obj:
            raise DataError(f"{where}: field '{name}' is required (a positive number)")
    item = obj.get("item_id")
    try:
        return Promotion(
            promotion_id=str(pid),
            bid=obj["bid"],
            budget=obj["budget"],
            item_id=None if item is None else str(item),
            category=obj.get("category"),
            start=_time(obj.get("start"), "start", where),
            end=_time(obj.get("end"), "end", where),
            frequency_cap=obj.get("frequency_cap"),
            cap_period=obj.get("cap_period", "day"),
            discount_percent=obj.get("discount_percent"),
        )
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None


def promotions_from_json(data: Any, where: str = "promotions") -> list[Promotion]:
    """A list of promotions from decoded JSON: a list, ``{"promotions": [...]}`` or one object."""
    if isinstance(data, dict) and "promotions" in data:
        data = data["promotions"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataError(f"{where}: expected a list of promotions or {{\"promotions\": [...]}}")
    out = [promotion_from_dict(obj, f"{where}[{i}]") for i, obj in enumerate(data)]
    seen: set[str] = set()
    for i, promo in enumerate(out):
        if promo.promotion_id in seen:
            raise DataError(f"{where}[{i}]: field 'promotion_id': duplicate '{promo.promotion_id}'")
        seen.add(promo.promotion_id)
    return out


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {line_no}: malformed JSON ({exc.msg})") from None


def load_promotions(path: str | Path) -> list[Promotion]:
    """Promotions from a JSON file (list or ``{"promotions": [...]}``) or JSON Lines."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: promotions file does not exist")
    if p.suffix == ".jsonl":
        objs = list(_lines(p))
        return promotions_from_json([o for _, o in objs], str(p))
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: line {exc.lineno}: malformed JSON ({exc.msg})") from None
    return promotions_from_json(data, str(p))
