"""Engagement metrics on the hand-checkable log of builders.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from coldbrew.analytics import (
    active_users,
    activity,
    new_user_conversion,
    repeat_purchase_rate,
    retention,
)
from coldbrew.data.events import Events
from coldbrew.errors import DataError

from .builders import hand_events


def test_monthly_retention_cohorts() -> None:
    table = retention(hand_events(), "month")
    assert table["cohort"].tolist() == ["2024-01-01", "2024-02-01"]
    assert table["users"].tolist() == [4, 2]
    jan, feb = table.iloc[0], table.iloc[1]
    assert (jan["day_1"], jan["day_7"], jan["day_30"]) == (0.25, 0.5, 0.75)
    assert feb["day_1"] == 0.5
    assert math.isnan(feb["day_7"]) and math.isnan(feb["day_30"])  # censored, not zero


def test_weekly_cohorts_start_on_monday() -> None:
    table = retention(hand_events(), "week", horizons=(7,))
    assert table["cohort"].tolist() == ["2024-01-01", "2024-01-29", "2024-02-05"]  # f: Monday 5 Feb
    assert table["users"].tolist() == [4, 1, 1] and table["day_7"].iloc[0] == 0.5
    with pytest.raises(DataError, match="horizons"):
        retention(hand_events(), horizons=(0,))
    with pytest.raises(DataError, match="period"):
        retention(hand_events(), "year")


def test_repeat_purchase_rate() -> None:
    assert repeat_purchase_rate(hand_events()) == {"purchasers": 5, "repeat_purchasers": 2, "rate": 0.4}
    none = repeat_purchase_rate(hand_events(), purchase_events=("refund",))
    assert none["purchasers"] == 0 and math.isnan(none["rate"])


def test_activity_per_week_includes_empty_weeks() -> None:
    table = activity(hand_events(), "week")
    assert table["period"].tolist() == ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22",
                                        "2024-01-29", "2024-02-05"]
    assert table["active_users"].tolist() == [4, 0, 1, 0, 1, 1]
    assert table["events"].tolist() == [8, 0, 1, 0, 2, 2]
    assert activity(hand_events(), "day")["events"].sum() == 13
    assert len(activity(hand_events(), "month")) == 2


def test_dau_wau_mau() -> None:
    got = active_users(hand_events())
    assert (got["dau"], got["wau"], got["mau"]) == (1, 1, 3)
    assert got["mean_dau_30d"] == pytest.approx(5 / 30)  # days 11-40: c on 20, e on 31, 32, f on 35, 40
    assert got["stickiness"] == pytest.approx(got["mean_dau_30d"] / 3)


def test_new_user_conversion() -> None:
    assert new_user_conversion(hand_events(), days=7) == {"new_users": 5, "converted": 4, "rate": 0.8, "days": 7}
    # Within 0 seconds: only users whose first event is a purchase (b, d, f); all 6 observable.
    assert new_user_conversion(hand_events(), days=0) == {"new_users": 6, "converted": 3, "rate": 0.5, "days": 0}
    with pytest.raises(DataError, match="days"):
        new_user_conversion(hand_events(), days=-1)


def test_empty_log_is_an_error() -> None:
    empty = hand_events().take(np.zeros(13, dtype=bool))
    assert isinstance(empty, Events)
    with pytest.raises(DataError, match="no events"):
        retention(empty)
