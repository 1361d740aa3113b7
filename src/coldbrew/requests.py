"""Recommendation requests and results: the types at the edge of the pipeline.

Raw string IDs live here (the edge); the pipeline turns them into dense indices.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coldbrew.data.events import parse_timestamps
from coldbrew.errors import DataError

__all__ = [
    "HistoryEvent",
    "Recommendation",
    "Request",
    "read_requests",
    "request_from_dict",
    "write_recommendations",
]


@dataclass(frozen=True)
class HistoryEvent:
    """One thing the user did before the request."""

    item_id: str
    timestamp: int
    event: str = "interaction"
    value: float | None = None


@dataclass(frozen=True)
class Request:
    """What the pipeline is asked: rank items for this user now.

    ``history`` is everything known about the user at request time; ``text`` the user's own
    words; ``candidates`` (when given) restricts ranking to those items; items in ``history``
    and ``exclude`` are never returned.
    """

    request_id: str
    user_id: str
    history: tuple[HistoryEvent, ...] = ()
    text: str | None = None
    candidates: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recommendation:
    """The answer to one request: up to k items, best first, each with a score and reason."""

    request_id: str
    user_id: str
    items: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "items": self.items,
            "scores": [round(float(s), 6) for s in self.scores],
            "reasons": self.reasons,
        }


def _str_list(obj: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise DataError(f"{where}: field '{key}' must be a list of item IDs (strings)")
    return tuple(str(v) for v in value)


def parse_timestamp(ts: int | float | str) -> int | None:
    """Unix seconds from a number (fast path) or an ISO 8601 / numeric string."""
    if isinstance(ts, (int, float)):
        if ts != ts or ts in (float("inf"), float("-inf")):
            return None
        return int(ts / 1000) if abs(ts) > 1e11 else int(ts)
    import pandas as pd

    seconds, ok = parse_timestamps(pd.Series([ts], dtype=object))
    return int(seconds[0]) if ok[0] else None


def request_from_dict(obj: Any, where: str = "request") -> Request:
    """Validate one decoded JSON request; errors name ``where`` and the field."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object")
    unknown = set(obj) - {"request_id", "user_id", "history", "text", "candidates", "exclude"}
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    request_id = obj.get("request_id")
    if not isinstance(request_id, (str, int)) or str(request_id) == "":
        raise DataError(f"{where}: field 'request_id' is required (a non-empty string)")
    user_id = obj.get("user_id")
    if not isinstance(user_id, (str, int)) or str(user_id) == "":
        raise DataError(f"{where}: field 'user_id' is required (a non-empty string)")
    raw_history = obj.get("history", [])
    if raw_history is None:
        raw_history = []
    if not isinstance(raw_history, list):
        raise DataError(f"{where}: field 'history' must be a list of events")
    history = []
    for j, ev in enumerate(raw_history):
        at = f"{where}: history[{j}]"
        if not isinstance(ev, dict):
            raise DataError(f"{at}: expected an object with item_id and timestamp")
        item = ev.get("item_id")
        if not isinstance(item, (str, int)) or str(item) == "":
            raise DataError(f"{at}: field 'item_id' is required")
        if "timestamp" not in ev:
            raise DataError(f"{at}: field 'timestamp' is required")
        ts = ev["timestamp"]
        if isinstance(ts, bool) or not isinstance(ts, (int, float, str)):
            raise DataError(f"{at}: field 'timestamp': expected unix seconds or ISO 8601")
        seconds = parse_timestamp(ts)
        if seconds is None:
            raise DataError(f"{at}: field 'timestamp': expected unix seconds or ISO 8601, got {ts!r}")
        event = ev.get("event", "interaction")
        if not isinstance(event, str):
            raise DataError(f"{at}: field 'event' must be a string")
        value = ev.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise DataError(f"{at}: field 'value' must be a number")
        history.append(HistoryEvent(str(item), seconds, event.lower() or "interaction",
                                    None if value is None else float(value)))
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        raise DataError(f"{where}: field 'text' must be a string")
    return Request(
        request_id=str(request_id),
        user_id=str(user_id),
        history=tuple(history),
        text=text,
        candidates=_str_list(obj, "candidates", where),
        exclude=_str_list(obj, "exclude", where) or (),
    )


def read_requests(path: str | Path) -> Iterator[Request]:
    """Yield requests from a JSON Lines file; a bad line raises ``DataError`` naming it."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: requests file does not exist")
    with open(p, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}: line {line_no}: malformed JSON ({exc.msg})") from None
            yield request_from_dict(obj, f"{p}: line {line_no}")


def write_recommendations(path: str | Path, recs: list[Recommendation]) -> None:
    """Write one JSON object per line, in request order (atomically: temp file + rename)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for rec in recs:
            handle.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(p)
