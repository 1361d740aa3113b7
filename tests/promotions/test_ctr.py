"""pCTR calibration: weighted logistic regression on a temporal hold-out, saved as JSON."""

from __future__ import annotations

import numpy as np
import pytest

from coldbrew.errors import DataError, ModelFormatError
from coldbrew.promotions import CTRCalibrator, calibrate_ctr, holdout_requests, sample_pairs

from .builders import CONFIG, START, shop


def test_fit_recovers_a_known_logistic_relation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6_000, 3)).astype(np.float32)
    p = 1 / (1 + np.exp(-(-2.0 + 1.5 * x[:, 0] - 1.0 * x[:, 1])))
    y = (rng.random(len(p)) < p).astype(np.int8)
    cal = CTRCalibrator.fit(x, y, np.ones(len(y)))
    assert cal.coef == pytest.approx((1.5, -1.0, 0.0), abs=0.15)
    assert cal.intercept == pytest.approx(-2.0, abs=0.15)
    assert CTRCalibrator.from_dict(cal.to_dict()) == cal
    with pytest.raises(DataError, match="both"):
        CTRCalibrator.fit(x, np.zeros(len(y)), np.ones(len(y)))


def test_sample_weights_undo_negative_subsampling() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20_000, 3)).astype(np.float32)
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-(-4 + x[:, 0])))).astype(np.int8)
    keep = (y == 1) | (rng.random(len(y)) < 0.1)  # keep 10% of negatives, weight them 10x
    w = np.where(y[keep] == 1, 1.0, 10.0)
    cal = CTRCalibrator.fit(x[keep], y[keep], w)
    assert cal.predict(x).mean() == pytest.approx(y.mean(), rel=0.15)


def test_prior_is_monotone_in_rank_and_marked_uncalibrated() -> None:
    prior = CTRCalibrator.prior(1000)
    ranks = np.linspace(0, 1, 5)
    p = prior.predict(np.stack([np.zeros(5), ranks, np.zeros(5)], axis=1))
    assert np.all(np.diff(p) < 0) and not prior.calibrated
    assert p[0] == pytest.approx(1 / np.sqrt(1000), rel=1e-3)


def test_load_rejects_other_feature_sets(tmp_path) -> None:
    (tmp_path / "c.json").write_text('{"features": ["score"], "coef": [1], "intercept": 0}')
    with pytest.raises(ModelFormatError, match="features"):
        CTRCalibrator.load(tmp_path / "c.json")
    cal = CTRCalibrator((0.5, -2.0, 1.0), -3.0, 14)
    cal.save(tmp_path / "ok.json")
    assert CTRCalibrator.load(tmp_path / "ok.json") == cal


def test_holdout_requests_split_history_and_future() -> None:
    _, events = shop(n_users=30, days=20)
    cutoff = START + 10 * 86_400
    requests, future = holdout_requests(events, cutoff, horizon_days=5)
    assert requests and len(requests) == len(future)
    for req, items in zip(requests, future):
        assert all(h.timestamp < cutoff for h in req.history) and req.history
        assert items
        ts = events.timestamps[events.user_ids == req.user_id]
        assert ((ts >= cutoff) & (ts < cutoff + 5 * 86_400)).any()


def test_calibrate_ctr_end_to_end_gives_higher_pctr_to_bought_items() -> None:
    catalog, events = shop(n_users=90, days=40)
    cal, info = calibrate_ctr(catalog, events, CONFIG, horizon_days=10, negatives=6)
    assert info["users"] > 10 and 0 < info["positives"] < info["pairs"]
    assert cal.calibrated and cal.horizon_days == 10
    from coldbrew.pipeline import Recommender

    model = Recommender(CONFIG).fit(catalog, events.take(events.timestamps < info["cutoff"]), progress=False)
    requests, future = holdout_requests(events, info["cutoff"], 10)
    x, y, w = sample_pairs(model, requests, future, negatives=6)
    p = cal.predict(x)
    assert p[y == 1].mean() > 2 * p[y == 0].mean()
    # Calibrated on its own sample: mean prediction equals the weighted base rate.
    assert (p * w).sum() / w.sum() == pytest.approx((y * w).sum() / w.sum(), rel=0.05)
