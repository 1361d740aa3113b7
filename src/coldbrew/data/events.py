"""Interaction events: loading, validation and timestamp parsing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from coldbrew.config import ColumnsConfig
from coldbrew.data._io import location, read_table
from coldbrew.data.catalog import LoadReport
from coldbrew.data.schema import EVENT_ALIASES, resolve_columns
from coldbrew.errors import DataError

__all__ = ["Events", "load_events", "events_from_frame", "parse_timestamps"]

# Numbers above this are taken as milliseconds since the epoch (year 5138 in seconds).
_MS_THRESHOLD = 1e11


@dataclass(frozen=True)
class Events:
    """A batch of events as parallel arrays (raw string IDs, unix seconds)."""

    user_ids: np.ndarray  # (n,) object
    item_ids: np.ndarray  # (n,) object
    timestamps: np.ndarray  # (n,) int64, unix seconds
    events: np.ndarray  # (n,) object, lower-case event type
    values: np.ndarray  # (n,) float64, NaN where absent

    def __len__(self) -> int:
        return len(self.user_ids)

    def take(self, mask_or_positions: np.ndarray) -> Events:
        """The events selected by a boolean mask or an array of positions."""
        sel = np.asarray(mask_or_positions)
        return Events(
            self.user_ids[sel], self.item_ids[sel], self.timestamps[sel], self.events[sel],
            self.values[sel],
        )

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        return Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                         ("user_ids", "item_ids", "timestamps", "events", "values")))

    def sorted_by_time(self) -> Events:
        return self.take(np.argsort(self.timestamps, kind="stable"))


def parse_timestamps(raw: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Parse unix seconds (or milliseconds) and ISO 8601 strings.

    Returns ``(seconds int64, ok bool)``; rows that are not ok hold 0.
    """
    numeric = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    ok = np.isfinite(numeric)
    seconds = np.zeros(len(raw), dtype=np.int64)
    ms = ok & (np.abs(numeric) > _MS_THRESHOLD)
    numeric[ms] = numeric[ms] / 1000.0
    seconds[ok] = np.floor(numeric[ok]).astype(np.int64)
    rest = ~ok & raw.notna().to_numpy()
    if rest.any():
        text = raw[rest].astype(str)
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        good = parsed.notna().to_numpy()
        epoch = pd.Timestamp(0, tz="UTC")
        as_s = ((parsed[good] - epoch) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
        positions = np.flatnonzero(rest)
        seconds[positions[good]] = as_s
        ok[positions[good]] = True
    return seconds, ok


def load_events(
    path: str | Path,
    columns: ColumnsConfig | None = None,
    on_bad_rows: str = "error",
) -> tuple[Events, LoadReport]:
    """Load and validate an events file (CSV/CSV.gz, Parquet or JSON Lines).

    Required: ``user_id``, ``item_id``, ``timestamp`` (unix seconds, milliseconds, or ISO
    8601). Optional: ``event`` (alias ``event_type``; missing means ``rating`` when the value
    column is a rating, else ``interaction``) and ``value`` (aliases ``rating``, ``quantity``).
    A row with an empty ID, an unparseable timestamp or a non-numeric value is an error naming
    the file, line and field, or is skipped and counted with ``on_bad_rows="skip"``.
    """
    frame = read_table(path)
    return events_from_frame(frame, str(path), columns, on_bad_rows)


def events_from_frame(
    frame: pd.DataFrame,
    source: str = "events",
    columns: ColumnsConfig | None = None,
    on_bad_rows: str = "error",
) -> tuple[Events, LoadReport]:
    """Validate an in-memory table as events; see :func:`load_events`."""
    if on_bad_rows not in ("error", "skip"):
        raise ValueError(f"on_bad_rows: expected 'error' or 'skip', got {on_bad_rows!r}")
    found = resolve_columns(
        frame, EVENT_ALIASES, ("user_id", "item_id", "timestamp"), columns or ColumnsConfig(), source
    )
    n = len(frame)
    report = LoadReport(source=source, rows_read=n)
    keep = np.ones(n, dtype=bool)

    def bad(mask: np.ndarray, field: str, what: str, raw: pd.Series | None = None) -> None:
        positions = np.flatnonzero(mask & keep)
        if len(positions) == 0:
            return
        if on_bad_rows == "error":
            pos = positions[0]
            got = f", got {raw.iloc[pos]!r}" if raw is not None else ""
            raise DataError(f"{source}: {location(frame, pos)}: field {field}: {what}{got}")
        report.skip(f"{field} {what}", location(frame, positions[0]), len(positions))
        keep[positions] = False

    def ids(name: str) -> np.ndarray:
        col = frame[found[name]]
        text = col.where(col.notna(), "").astype(str).str.strip()
        bad((text == "").to_numpy(), name, "is empty")
        return text.to_numpy(dtype=object)

    user_ids = ids("user_id")
    item_ids = ids("item_id")
    ts_raw = frame[found["timestamp"]]
    timestamps, ok = parse_timestamps(ts_raw)
    bad(~ok, "timestamp", "expected unix seconds or an ISO 8601 date-time", ts_raw)
    values = np.full(n, np.nan)
    if "value" in found:
        raw = frame[found["value"]]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, copy=True)
        bad(raw.notna().to_numpy() & ~np.isfinite(values), "value", "expected a number", raw)
    if "event" in found:
        col = frame[found["event"]]
        events = col.where(col.notna(), "").astype(str).str.strip().str.lower().to_numpy(dtype=object)
        events[events == ""] = "interaction"
    else:
        default = "rating" if found.get("value", "").lower() in ("rating", "score") else "interaction"
        events = np.full(n, default, dtype=object)
    out = Events(user_ids, item_ids, timestamps, events, values).take(keep)
    report.rows_kept = len(out)
    return out, report
