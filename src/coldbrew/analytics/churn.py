"""Churn risk: features of each user's past activity, a label from the next D days, a model.

At a cutoff ``t`` every user active in the ``lookback_days`` before ``t`` gets RFM-style
features computed from events strictly before ``t`` only; the label is 1 (churned) when the
user has no event in ``[t, t + horizon_days)``. A model trained at ``t1`` is evaluated at
``t2 >= t1 + horizon_days`` so that no training label peeks into the test period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from coldbrew.data.events import Events
from coldbrew.errors import DataError, NotFittedError

__all__ = [
    "FEATURES",
    "ChurnConfig",
    "ChurnFeatures",
    "ChurnModel",
    "churn_features",
    "churn_labels",
    "evaluate_churn",
]

DAY = 86_400
FEATURES = (
    "recency_days", "tenure_days", "active_days", "active_days_30", "active_days_90",
    "events", "distinct_items", "monetary", "trend", "mean_gap_days", "recency_over_gap",
)


@dataclass(frozen=True)
class ChurnConfig:
    """Churn definition and model.

    horizon_days: a user has churned when inactive for this many days after the cutoff.
    lookback_days: users active in this many days before the cutoff are scored.
    model: ``"logistic"`` (scikit-learn logistic regression on standardised log features;
        saved as plain numbers) or ``"lightgbm"`` (gradient-boosted trees).
    """

    horizon_days: int = 90
    lookback_days: int = 365
    model: str = "logistic"

    def __post_init__(self) -> None:
        if self.horizon_days < 1 or self.lookback_days < 1:
            raise DataError("churn: horizon_days and lookback_days must be at least 1")
        if self.model not in ("logistic", "lightgbm"):
            raise DataError(f"churn: model must be 'logistic' or 'lightgbm', got {self.model!r}")


@dataclass(frozen=True)
class ChurnFeatures:
    """Per-user features at one cutoff: ``user_ids`` (n,) object, ``values`` (n, f) float32."""

    user_ids: np.ndarray
    values: np.ndarray
    cutoff: int

    def column(self, name: str) -> np.ndarray:
        return self.values[:, FEATURES.index(name)]


def churn_features(events: Events, cutoff: int, lookback_days: int = 365) -> ChurnFeatures:
    """Features (n_users, len(FEATURES)) float32 at ``cutoff`` (unix s) from earlier events.

    Users are those with an event in ``[cutoff - lookback_days, cutoff)``, sorted by ID.
    ``monetary`` sums positive event values (1 per event where the value is missing);
    ``trend`` is log((active days in the last 90 + 1) / (active days in the 90 before + 1)).
    """
    ts = events.timestamps.astype(np.int64)
    past = ts < cutoff
    frame = pd.DataFrame({
        "user": events.user_ids[past].astype(str), "ts": ts[past],
        "item": events.item_ids[past].astype(str),
        "value": np.where(np.isfinite(events.values[past]), np.clip(events.values[past], 0, None), 1.0),
    })
    start = cutoff - lookback_days * DAY
    recent_users = frame.loc[frame["ts"] >= start, "user"].unique()
    frame = frame[frame["user"].isin(recent_users)]
    if frame.empty:
        return ChurnFeatures(np.zeros(0, dtype=object), np.zeros((0, len(FEATURES)), np.float32), cutoff)
    frame["day"] = frame["ts"] // DAY
    age = (cutoff - frame["ts"]) / DAY
    in_window = frame[age <= lookback_days]
    g_all = frame.groupby("user")
    g = in_window.groupby("user")
    days = in_window[["user", "day"]].drop_duplicates()
    day_age = (cutoff // DAY) - days["day"]

    def active_within(lo: int, hi: int) -> pd.Series:
        sel = days[(day_age > lo) & (day_age <= hi)]
        return sel.groupby("user").size()

    index = np.sort(recent_users.astype(str))
    out = pd.DataFrame(index=index)
    out["recency_days"] = (cutoff - g_all["ts"].max()) / DAY
    out["tenure_days"] = (cutoff - g_all["ts"].min()) / DAY
    out["active_days"] = days.groupby("user").size()
    out["active_days_30"] = active_within(-1, 30)
    out["active_days_90"] = active_within(-1, 90)
    out["events"] = g.size()
    out["distinct_items"] = g["item"].nunique()
    out["monetary"] = g["value"].sum()
    out = out.fillna(0.0)
    before = active_within(90, 180).reindex(index).fillna(0.0)
    out["trend"] = np.log((out["active_days_90"] + 1.0) / (before + 1.0))
    span = np.minimum(out["tenure_days"], float(lookback_days))
    out["mean_gap_days"] = span / np.maximum(out["active_days"], 1.0)
    out["recency_over_gap"] = out["recency_days"] / np.maximum(out["mean_gap_days"], 1.0)
    return ChurnFeatures(index.astype(object), out[list(FEATURES)].to_numpy(np.float32), int(cutoff))


def churn_labels(events: Events, user_ids: np.ndarray, cutoff: int, horizon_days: int) -> np.ndarray:
    """(n,) int8: 1 when the user has no event in ``[cutoff, cutoff + horizon_days)``."""
    ts = events.timestamps.astype(np.int64)
    window = (ts >= cutoff) & (ts < cutoff + horizon_days * DAY)
    active = set(events.user_ids[window].astype(str))
    return np.fromiter((u not in active for u in user_ids), dtype=np.int8, count=len(user_ids))


def _transform(values: np.ndarray) -> np.ndarray:
    """Signed log1p: counts and durations are heavy-tailed."""
    return (np.sign(values) * np.log1p(np.abs(values))).astype(np.float64)


class ChurnModel:
    """A churn-risk model: ``fit(events, cutoff)`` then ``predict(events, at)``.

    Scores are probabilities of churning within ``config.horizon_days`` of the cutoff.
    """

    def __init__(self, config: ChurnConfig | None = None) -> None:
        self.config = config or ChurnConfig()

    def fit(self, events: Events, cutoff: int) -> ChurnModel:
        """Train on features at ``cutoff`` labelled by the following ``horizon_days``."""
        cfg = self.config
        last = int(events.timestamps.max()) if len(events) else cutoff
        if cutoff + cfg.horizon_days * DAY > last + DAY:
            raise DataError(
                f"churn: cutoff {pd.Timestamp(cutoff, unit='s').date()} + {cfg.horizon_days} days"
                f" runs past the last event ({pd.Timestamp(last, unit='s').date()}): labels unknown"
            )
        feats = churn_features(events, cutoff, cfg.lookback_days)
        labels = churn_labels(events, feats.user_ids, cutoff, cfg.horizon_days)
        if len(labels) < 10 or labels.min() == labels.max():
            raise DataError(
                f"churn: need at least 10 users and both churned and retained users at the cutoff,"
                f" got {len(labels)} users with {int(labels.sum())} churned"
            )
        x = _transform(feats.values)
        if cfg.model == "logistic":
            from sklearn.linear_model import LogisticRegression

            self.mean_ = x.mean(axis=0)
            self.scale_ = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
            lr = LogisticRegression(C=1.0, max_iter=1000).fit((x - self.mean_) / self.scale_, labels)
            self.coef_ = lr.coef_.ravel().astype(np.float64)
            self.intercept_ = float(lr.intercept_[0])
        else:
            import lightgbm as lgb

            params = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 15,
                      "min_data_in_leaf": 20, "feature_fraction": 0.9, "verbose": -1,
                      "num_threads": 1, "seed": 0}
            self.booster_ = lgb.train(params, lgb.Dataset(x, labels.astype(np.float64)), num_boost_round=200)
        self.train_users_ = int(len(labels))
        self.train_churn_rate_ = float(labels.mean())
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_") and not hasattr(self, "booster_"):
            raise NotFittedError("the churn model is not fitted: call fit(events, cutoff) first")

    def predict_features(self, features: ChurnFeatures) -> np.ndarray:
        """Churn probabilities (n,) float32 for precomputed features."""
        self._check_fitted()
        if len(features.user_ids) == 0:
            return np.zeros(0, np.float32)
        x = _transform(features.values)
        if hasattr(self, "coef_"):
            z = ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
            return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        return np.asarray(self.booster_.predict(x), dtype=np.float32)

    def predict(self, events: Events, at: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(user_ids (n,) object, churn risk (n,) float32)`` for users active before ``at``.

        ``at`` defaults to one second after the last event (everything is history).
        """
        at = int(events.timestamps.max()) + 1 if at is None else int(at)
        feats = churn_features(events, at, self.config.lookback_days)
        return feats.user_ids, self.predict_features(feats)

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain JSON-serialisable data (never a pickle)."""
        self._check_fitted()
        out: dict[str, Any] = {"features": list(FEATURES), "horizon_days": self.config.horizon_days,
                               "lookback_days": self.config.lookback_days, "model": self.config.model}
        if hasattr(self, "coef_"):
            out.update(mean=self.mean_.tolist(), scale=self.scale_.tolist(),
                       coef=self.coef_.tolist(), intercept=self.intercept_)
        else:
            out["booster"] = self.booster_.model_to_string()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChurnModel:
        if list(data.get("features", [])) != list(FEATURES):
            raise DataError("churn model: its feature list differs from this version's; refit it")
        model = cls(ChurnConfig(int(data["horizon_days"]), int(data["lookback_days"]), str(data["model"])))
        if data["model"] == "logistic":
            model.mean_ = np.asarray(data["mean"], np.float64)
            model.scale_ = np.asarray(data["scale"], np.float64)
            model.coef_ = np.asarray(data["coef"], np.float64)
            model.intercept_ = float(data["intercept"])
        else:
            import lightgbm as lgb

            model.booster_ = lgb.Booster(model_str=data["booster"])
        return model


def _roc_points(labels: np.ndarray, scores: np.ndarray, n: int = 51) -> list[list[float]]:
    """The ROC curve thinned to about ``n`` points, rounded (for JSON and a plot)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, n).round().astype(int))
    return [[round(float(fpr[i]), 4), round(float(tpr[i]), 4)] for i in keep]


def evaluate_churn(
    events: Events,
    test_cutoff: int | None = None,
    config: ChurnConfig | None = None,
) -> dict[str, Any]:
    """Time-split AUC: train at ``t1 = t2 - horizon - 1 day``, test at ``t2``.

    ``test_cutoff`` (t2) defaults to ``horizon_days`` before the last event. Returns the
    model's AUC, the AUC of recency alone (the baseline every churn model must beat), the
    user counts and churn rates of both cutoffs, and both ROC curves (``roc``: at most 51
    ``[false positive rate, true positive rate]`` points each).
    """
    from sklearn.metrics import roc_auc_score

    cfg = config or ChurnConfig()
    last = int(events.timestamps.max())
    t2 = last - cfg.horizon_days * DAY + 1 if test_cutoff is None else int(test_cutoff)
    t1 = t2 - cfg.horizon_days * DAY - DAY
    model = ChurnModel(cfg).fit(events, t1)
    feats = churn_features(events, t2, cfg.lookback_days)
    labels = churn_labels(events, feats.user_ids, t2, cfg.horizon_days)
    if labels.min() == labels.max():
        raise DataError("churn: the test cutoff has only churned or only retained users; AUC is undefined")
    scores = model.predict_features(feats)
    return {
        "roc": {"model": _roc_points(labels, scores), "recency": _roc_points(labels, feats.column("recency_days"))},
        "model": cfg.model,
        "horizon_days": cfg.horizon_days,
        "train_cutoff": pd.Timestamp(t1, unit="s").strftime("%Y-%m-%d"),
        "test_cutoff": pd.Timestamp(t2, unit="s").strftime("%Y-%m-%d"),
        "train_users": model.train_users_,
        "train_churn_rate": model.train_churn_rate_,
        "test_users": int(len(labels)),
        "test_churn_rate": float(labels.mean()),
        "auc": float(roc_auc_score(labels, scores)),
        "recency_auc": float(roc_auc_score(labels, feats.column("recency_days"))),
    }
