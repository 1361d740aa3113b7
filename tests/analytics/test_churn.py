"""Churn risk: features are computed from the past only; the model beats chance and recency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from coldbrew.analytics import (
    FEATURES,
    ChurnConfig,
    ChurnModel,
    churn_features,
    churn_labels,
    evaluate_churn,
)
from coldbrew.data import events_from_frame, load_events
from coldbrew.errors import DataError, NotFittedError

DAY = 86_400
T0 = 1_700_000_000


def _log(n_users: int = 300, days: int = 400, seed: int = 0):
    """Loyal users buy every few days throughout; fading users slow down, then stop."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        fading = u % 2 == 1
        stop = rng.integers(60, days) if fading else days
        day, gap = float(rng.integers(0, 30)), float(rng.uniform(2, 8))
        while day < stop:
            rows.append((f"u{u}", f"i{rng.integers(0, 50)}", T0 + int(day * DAY), "purchase", 1.0))
            if fading:
                gap *= 1.08  # visits thin out before they stop
            day += rng.exponential(gap)
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event", "value"])
    return events_from_frame(frame)[0]


def test_features_use_only_the_past() -> None:
    events = _log(40)
    cutoff = T0 + 200 * DAY
    feats = churn_features(events, cutoff)
    later = events.take(events.timestamps < cutoff)
    again = churn_features(later, cutoff)
    assert np.array_equal(feats.user_ids, again.user_ids)
    assert np.allclose(feats.values, again.values)
    assert feats.values.shape == (len(feats.user_ids), len(FEATURES)) and feats.values.dtype == np.float32
    assert (feats.column("recency_days") >= 0).all()
    assert (feats.column("active_days_30") <= feats.column("active_days_90")).all()


def test_hand_checked_features_and_labels() -> None:
    frame = pd.DataFrame([("a", "x", T0, "purchase", 2.0), ("a", "y", T0 + 10 * DAY, "purchase", 3.0),
                          ("b", "x", T0 + 5 * DAY, "view", None), ("b", "x", T0 + 40 * DAY, "view", None)],
                         columns=["user_id", "item_id", "timestamp", "event", "value"])
    events = events_from_frame(frame)[0]
    feats = churn_features(events, T0 + 20 * DAY)
    assert feats.user_ids.tolist() == ["a", "b"]
    a = dict(zip(FEATURES, feats.values[0]))
    assert a["recency_days"] == 10 and a["tenure_days"] == 20 and a["active_days"] == 2
    assert a["monetary"] == 5 and a["distinct_items"] == 2 and a["active_days_30"] == 2
    b = dict(zip(FEATURES, feats.values[1]))
    assert b["recency_days"] == 15 and b["events"] == 1 and b["monetary"] == 1  # the day-40 visit is future
    assert churn_labels(events, feats.user_ids, T0 + 20 * DAY, 30).tolist() == [1, 0]


def test_model_beats_recency_on_a_synthetic_log_and_round_trips() -> None:
    events = _log()
    for kind in ("logistic", "lightgbm"):
        result = evaluate_churn(events, config=ChurnConfig(horizon_days=60, model=kind))
        assert result["auc"] > 0.8, result
        assert result["test_users"] > 50 and 0 < result["test_churn_rate"] < 1
        for curve in result["roc"].values():
            assert curve[0] == [0.0, 0.0] and curve[-1] == [1.0, 1.0] and len(curve) <= 51
        model = ChurnModel(ChurnConfig(horizon_days=60, model=kind)).fit(events, T0 + 200 * DAY)
        users, risk = model.predict(events)
        again = ChurnModel.from_dict(model.to_dict())
        assert np.allclose(again.predict(events)[1], risk, atol=1e-6)
        assert ((risk >= 0) & (risk <= 1)).all() and len(users) == len(risk)


def test_errors() -> None:
    events = _log(40)
    with pytest.raises(NotFittedError):
        ChurnModel().predict(events)
    with pytest.raises(DataError, match="runs past the last event"):
        ChurnModel(ChurnConfig(horizon_days=90)).fit(events, int(events.timestamps.max()) - 10 * DAY)
    with pytest.raises(DataError, match="model"):
        ChurnConfig(model="svm")
    with pytest.raises(DataError, match="feature list"):
        ChurnModel.from_dict({"features": ["recency_days"]})


@pytest.mark.slow
def test_churn_auc_on_uci_retail_time_split(shared_data: Path) -> None:
    events, _ = load_events(shared_data / "uci_online_retail" / "interactions.csv.gz")
    result = evaluate_churn(events, config=ChurnConfig(horizon_days=90, model="logistic"))
    assert result["test_users"] > 3000
    assert result["auc"] > 0.72, result
    assert result["auc"] > result["recency_auc"] + 0.02, result


def test_report_plots_the_roc_curves(tmp_path) -> None:
    from coldbrew.analytics.report import AnalyticsConfig, write_report

    summary = write_report(_log(), tmp_path, AnalyticsConfig(churn=ChurnConfig(horizon_days=60)))
    assert summary["plots"] == ["retention.png", "activity.png", "churn_roc.png"]
    assert (tmp_path / "churn_roc.png").read_bytes()[:4] == b"\x89PNG"
    assert "![churn_roc.png](churn_roc.png)" in (tmp_path / "report.md").read_text()
