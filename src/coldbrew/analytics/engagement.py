"""Engagement metrics over an event log: pure functions of ``Events``.

Days are UTC calendar days (``timestamp // 86400``). A user's *first day* is the day of their
first event of any kind; "active" means any event at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from coldbrew.data.events import Events
from coldbrew.errors import DataError

__all__ = [
    "PURCHASE_EVENTS",
    "activity",
    "active_users",
    "new_user_conversion",
    "repeat_purchase_rate",
    "retention",
]

DAY = 86_400
# Event types that count as a purchase (lower-case; the loaders lower-case event names).
PURCHASE_EVENTS: tuple[str, ...] = ("purchase", "order", "buy", "transaction", "checkout")
_PERIODS = {"day": "D", "week": "W-SUN", "month": "M"}  # W-SUN: weeks end on Sunday, start Monday


def _frame(events: Events) -> pd.DataFrame:
    if len(events) == 0:
        raise DataError("events: no events to analyse")
    return pd.DataFrame({
        "user": events.user_ids.astype(str),
        "day": events.timestamps.astype(np.int64) // DAY,
        "event": events.events.astype(str),
    })


def _period_start(days: pd.Series, period: str) -> pd.Series:
    """The first day (as a ``datetime64`` date) of the week (Monday) or month of each day."""
    if period not in ("week", "month", "day"):
        raise DataError(f"period: expected 'day', 'week' or 'month', got {period!r}")
    dates = pd.to_datetime(days.to_numpy() * DAY, unit="s")
    if period == "day":
        return pd.Series(dates.normalize(), index=days.index)
    return pd.Series(dates.to_period(_PERIODS[period]).start_time, index=days.index)


def retention(
    events: Events,
    cohort: str = "month",
    horizons: Sequence[int] = (1, 7, 30),
) -> pd.DataFrame:
    """Day-N retention of users grouped by the week or month they were first seen.

    A user is *retained at day N* when they were active again on some later day no more than
    N days after their first day (calendar days 1..N). A cohort whose users could not all be
    observed for N days before the log ends gets NaN for that N (censored, not zero).

    Returns one row per cohort, oldest first: ``cohort`` (period start, ``YYYY-MM-DD``),
    ``users`` (int) and ``day_<N>`` (float in [0, 1] or NaN) for each N in ``horizons``.
    """
    if not horizons or any(int(h) < 1 for h in horizons):
        raise DataError(f"horizons: expected day counts >= 1, got {list(horizons)}")
    frame = _frame(events)
    last_day = int(frame["day"].max())
    first = frame.groupby("user")["day"].min().rename("first")
    frame = frame.join(first, on="user")
    since = frame["day"] - frame["first"]
    returned_after = since[since > 0].groupby(frame["user"]).min()  # first return, in days
    users = first.to_frame()
    users["back"] = returned_after.reindex(users.index)
    users["cohort"] = _period_start(users["first"], cohort)
    rows = []
    for start, group in users.groupby("cohort", sort=True):
        row: dict[str, object] = {"cohort": start.strftime("%Y-%m-%d"), "users": len(group)}
        for h in horizons:
            h = int(h)
            if int(group["first"].max()) + h > last_day:
                row[f"day_{h}"] = float("nan")
            else:
                row[f"day_{h}"] = float((group["back"] <= h).mean())
        rows.append(row)
    return pd.DataFrame(rows, columns=["cohort", "users", *(f"day_{int(h)}" for h in horizons)])


def repeat_purchase_rate(
    events: Events,
    purchase_events: Sequence[str] = PURCHASE_EVENTS,
) -> dict[str, float | int]:
    """Share of purchasers who bought on two or more different days.

    Returns ``{"purchasers": int, "repeat_purchasers": int, "rate": float}`` (rate NaN when
    nobody purchased).
    """
    frame = _frame(events)
    bought = frame[frame["event"].isin([e.lower() for e in purchase_events])]
    days = bought.groupby("user")["day"].nunique()
    purchasers, repeat = int(len(days)), int((days >= 2).sum())
    return {"purchasers": purchasers, "repeat_purchasers": repeat,
            "rate": repeat / purchasers if purchasers else float("nan")}


def activity(events: Events, period: str = "day") -> pd.DataFrame:
    """Active users and events per day, week or month.

    Returns ``period`` (start date, ``YYYY-MM-DD``), ``active_users`` and ``events`` (ints),
    one row per period from the first to the last (periods without events included, as 0).
    """
    frame = _frame(events)
    frame["period"] = _period_start(frame["day"], period)  # validates ``period``
    grouped = frame.groupby("period").agg(active_users=("user", "nunique"), events=("user", "size"))
    freq = {"day": "D", "week": "7D", "month": "MS"}[period]
    full = pd.date_range(grouped.index.min(), grouped.index.max(), freq=freq)
    grouped = grouped.reindex(full, fill_value=0)
    out = grouped.reset_index(names="period")
    out["period"] = out["period"].dt.strftime("%Y-%m-%d")
    return out.astype({"active_users": np.int64, "events": np.int64})


def active_users(events: Events, at: int | None = None) -> dict[str, float | int]:
    """DAU, WAU and MAU: distinct users active in the 1, 7 and 30 days up to ``at``.

    ``at`` is unix seconds (default: the last event). Also ``stickiness`` = DAU / MAU, where
    DAU is the mean daily active users over those 30 days.
    """
    frame = _frame(events)
    end_day = int(frame["day"].max()) if at is None else int(at) // DAY
    out: dict[str, float | int] = {}
    for name, span in (("dau", 1), ("wau", 7), ("mau", 30)):
        window = frame[(frame["day"] > end_day - span) & (frame["day"] <= end_day)]
        out[name] = int(window["user"].nunique())
    last30 = frame[(frame["day"] > end_day - 30) & (frame["day"] <= end_day)]
    mean_dau = float(last30.groupby("day")["user"].nunique().sum() / 30.0)
    out["mean_dau_30d"] = mean_dau
    out["stickiness"] = mean_dau / out["mau"] if out["mau"] else float("nan")
    return out


def new_user_conversion(
    events: Events,
    days: int = 7,
    purchase_events: Sequence[str] = PURCHASE_EVENTS,
) -> dict[str, float | int]:
    """Share of new users who purchased within ``days`` days of their first event.

    Only users first seen at least ``days`` days before the log ends are counted (the others
    could still convert). Returns ``{"new_users", "converted", "rate", "days"}``.
    """
    if days < 0:
        raise DataError(f"days: expected a number of days >= 0, got {days}")
    if len(events) == 0:
        raise DataError("events: no events to analyse")
    ts = events.timestamps.astype(np.int64)
    frame = pd.DataFrame({"user": events.user_ids.astype(str), "ts": ts,
                          "buy": np.isin(events.events.astype(str), [e.lower() for e in purchase_events])})
    first = frame.groupby("user")["ts"].min()
    observed = first[first + days * DAY <= ts.max()]
    buys = frame[frame["buy"]].groupby("user")["ts"].min()
    delay = buys.reindex(observed.index) - observed
    converted = int((delay <= days * DAY).sum())
    n = int(len(observed))
    return {"new_users": n, "converted": converted, "rate": converted / n if n else float("nan"),
            "days": int(days)}
