"""Predicted click-through: logistic calibration of the recommender's score and rank.

There are no click logs offline, so the target is the nearest observable thing: *the user
interacts with the item within the next ``horizon_days``*. Calibration data come from a
temporal hold-out: a recommender fitted on the events before a cutoff scores, for each user
active after it, every item they went on to interact with (positives) and a uniform sample of
the other items (negatives, weighted by the inverse sampling rate so that predicted
probabilities are those of the whole catalog). A weighted logistic regression maps three
features to a probability:

* ``score``: the item's blended recommendation score, standardised over the whole catalog;
* ``rank``: log(1 + its rank in the user's full ordering) / log(1 + n_items), in [0, 1];
* ``seen``: 1 when the user interacted with it before (repeat purchases are common).

The fitted calibrator is five numbers, saved as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coldbrew.data.catalog import Catalog
from coldbrew.data.events import Events
from coldbrew.errors import DataError, ModelFormatError
from coldbrew.requests import HistoryEvent, Request

__all__ = ["CALIBRATION_FILE", "CTR_FEATURES", "CTRCalibrator", "calibrate_ctr", "ctr_features", "holdout_requests", "sample_pairs"]

DAY = 86_400
CTR_FEATURES = ("score", "rank", "seen")
CALIBRATION_FILE = "ctr_calibration.json"


def ctr_features(model, requests: Sequence[Request], items: np.ndarray) -> np.ndarray:
    """Features (n, m, 3) float32 of given items for each request.

    ``items`` (n, m) int64 item indices of ``model`` (each >= 0). Scores every catalog item
    once per request (``Recommender.score_items``) to place the given ones in the ordering.
    """
    items = np.asarray(items, dtype=np.int64)
    n_items = len(model.item_map_)
    out = np.zeros(items.shape + (len(CTR_FEATURES),), dtype=np.float32)
    dim = model.text_vectors_.shape[1] + model.item_factors_.shape[1]
    chunk = max(1, min(64, (1 << 25) // max(n_items * dim, 1)))  # bounds the (c, n_items, d) gather
    everything = np.arange(n_items, dtype=np.int64)
    for start in range(0, len(requests), chunk):
        part = requests[start:start + chunk]
        scores = model.score_items(part, np.tile(everything, (len(part), 1)))
        for r, req in enumerate(part):
            row, wanted = scores[r], items[start + r]
            picked = row[wanted]
            rank = np.searchsorted(np.sort(-row), -picked, side="left")  # items scored strictly higher
            history = model.item_map_.lookup([h.item_id for h in req.history])
            out[start + r, :, 0] = picked
            out[start + r, :, 1] = np.log1p(rank) / np.log1p(n_items)
            out[start + r, :, 2] = np.isin(wanted, history[history >= 0])
    return out


@dataclass(frozen=True)
class CTRCalibrator:
    """pCTR = sigmoid(intercept + coef . features); see the module docstring for the features.

    ``calibrated`` is False for the prior used before any calibration was fitted.
    """

    coef: tuple[float, ...]
    intercept: float
    horizon_days: int = 30
    calibrated: bool = True

    def __post_init__(self) -> None:
        if len(self.coef) != len(CTR_FEATURES):
            raise DataError(f"ctr calibration: 'coef' needs {len(CTR_FEATURES)} numbers ({', '.join(CTR_FEATURES)})")

    @classmethod
    def prior(cls, n_items: int) -> CTRCalibrator:
        """An uncalibrated stand-in: the top item ~ 1/sqrt(n) chance, the median ~ 1/n."""
        n = max(int(n_items), 2)
        top, median = 1.0 / np.sqrt(n), 1.0 / n
        logit = lambda p: float(np.log(p / (1 - p)))  # noqa: E731
        slope = (logit(top) - logit(median)) / np.log1p(n / 2) * np.log1p(n)
        return cls((0.0, -slope, 0.0), logit(top), calibrated=False)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probabilities (...,) float32 from features (..., 3)."""
        z = np.asarray(features, np.float64) @ np.asarray(self.coef, np.float64) + self.intercept
        return (1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(CTR_FEATURES), "coef": list(self.coef), "intercept": self.intercept,
                "horizon_days": self.horizon_days, "calibrated": self.calibrated}

    @classmethod
    def from_dict(cls, data: Any, where: str = "ctr calibration") -> CTRCalibrator:
        if not isinstance(data, dict) or list(data.get("features", [])) != list(CTR_FEATURES):
            raise ModelFormatError(f"{where}: expected features {list(CTR_FEATURES)}; refit the calibration")
        try:
            return cls(tuple(float(c) for c in data["coef"]), float(data["intercept"]),
                       int(data.get("horizon_days", 30)), bool(data.get("calibrated", True)))
        except (KeyError, TypeError, ValueError):
            raise ModelFormatError(f"{where}: fields 'coef' and 'intercept' must be numbers") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> CTRCalibrator:
        p = Path(path)
        try:
            return cls.from_dict(json.loads(p.read_text(encoding="utf-8")), str(p))
        except json.JSONDecodeError as exc:
            raise ModelFormatError(f"{p}: malformed JSON ({exc.msg})") from None

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, weights: np.ndarray, horizon_days: int = 30) -> CTRCalibrator:
        """Weighted logistic regression on (n, 3) features and (n,) 0/1 labels."""
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels)
        if labels.min() == labels.max():
            raise DataError("ctr calibration: need both interacted and not-interacted pairs")
        lr = LogisticRegression(C=10.0, max_iter=2000)
        lr.fit(np.asarray(features, np.float64), labels, sample_weight=np.asarray(weights, np.float64))
        return cls(tuple(float(c) for c in lr.coef_.ravel()), float(lr.intercept_[0]), int(horizon_days))


def holdout_requests(events: Events, cutoff: int, horizon_days: int, max_users: int | None = None,
                     max_history: int = 200, seed: int = 0) -> tuple[list[Request], list[set[str]]]:
    """Users with events both before ``cutoff`` and in ``[cutoff, cutoff + horizon)``.

    Returns their requests (history = events before the cutoff, the latest ``max_history``)
    and, per request, the items they interacted with in the window.
    """
    ts = events.timestamps.astype(np.int64)
    users = events.user_ids.astype(str)
    window = (ts >= cutoff) & (ts < cutoff + horizon_days * DAY)
    before = ts < cutoff
    active = np.intersect1d(np.unique(users[window]), np.unique(users[before]))
    if max_users is not None and len(active) > max_users:
        active = np.sort(np.random.default_rng(seed).choice(active, max_users, replace=False))
    keep = set(active.tolist())
    future: dict[str, set[str]] = {u: set() for u in active}
    for u, i in zip(users[window], events.item_ids[window]):
        if u in keep:
            future[u].add(str(i))
    hist: dict[str, list[HistoryEvent]] = {u: [] for u in active}
    order = np.flatnonzero(before)
    order = order[np.argsort(ts[order], kind="stable")]
    for p in order:
        u = users[p]
        if u in keep:
            v = events.values[p]
            hist[u].append(HistoryEvent(str(events.item_ids[p]), int(ts[p]), str(events.events[p]),
                                        None if not np.isfinite(v) else float(v)))
    requests = [Request(f"ctr:{u}", u, tuple(hist[u][-max_history:])) for u in active]
    return requests, [future[u] for u in active]


def sample_pairs(model, requests: Sequence[Request], positives: Sequence[set[str]], negatives: int = 50,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (N, 3), labels (N,) int8 and weights (N,) float64 of sampled (user, item) pairs.

    Every positive item known to the model, and ``negatives`` uniform non-positive items per
    user weighted ``(n_items - n_positive) / negatives`` so the sample stands for the catalog.
    """
    rng = np.random.default_rng(seed)
    n_items = len(model.item_map_)
    rows, labels, weights = [], [], []
    for pos in positives:
        pos_idx = model.item_map_.lookup(sorted(pos))
        pos_idx = np.unique(pos_idx[pos_idx >= 0])
        pool = np.setdiff1d(np.arange(n_items), pos_idx)
        neg = rng.choice(pool, min(negatives, len(pool)), replace=False) if len(pool) else pool
        rows.append(np.concatenate([pos_idx, neg]))
        labels.append(np.r_[np.ones(len(pos_idx), np.int8), np.zeros(len(neg), np.int8)])
        weights.append(np.r_[np.ones(len(pos_idx)), np.full(len(neg), len(pool) / max(len(neg), 1))])
    width = max((len(r) for r in rows), default=0)
    items = np.zeros((len(rows), width), np.int64)
    for r, row in enumerate(rows):
        items[r, :len(row)] = row
    feats = ctr_features(model, list(requests), items)
    x = np.concatenate([feats[r, :len(row)] for r, row in enumerate(rows)]) if rows else np.zeros((0, 3), np.float32)
    return x, np.concatenate(labels) if labels else np.zeros(0, np.int8), np.concatenate(weights) if weights else np.zeros(0)


def calibrate_ctr(catalog: Catalog, events: Events, config=None, horizon_days: int = 30,
                  max_users: int = 1000, negatives: int = 50, seed: int = 0,
                  encoder=None) -> tuple[CTRCalibrator, dict[str, Any]]:
    """Fit a calibrator on the last ``horizon_days`` of ``events``.

    A recommender with ``config`` is fitted on the events before ``last - horizon_days``;
    users active on both sides give the pairs. Returns the calibrator and a small report
    (cutoff, users, pairs, positives).
    """
    from coldbrew.pipeline import Recommender

    if len(events) == 0:
        raise DataError("events: no events to calibrate on")
    cutoff = int(events.timestamps.max()) - horizon_days * DAY + 1
    train = events.take(events.timestamps < cutoff)
    if len(train) == 0:
        raise DataError(f"ctr calibration: no events before the cutoff ({horizon_days} days before the last)")
    model = Recommender(config, encoder=encoder).fit(catalog, train, progress=False)
    requests, positives = holdout_requests(events, cutoff, horizon_days, max_users, seed=seed)
    if not requests:
        raise DataError("ctr calibration: no user is active both before and after the cutoff")
    x, y, w = sample_pairs(model, requests, positives, negatives, seed)
    calibrator = CTRCalibrator.fit(x, y, w, horizon_days)
    return calibrator, {"cutoff": cutoff, "users": len(requests), "pairs": int(len(y)),
                        "positives": int(y.sum())}
