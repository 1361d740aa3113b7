"""Promotions: is the predicted click-through calibrated, and how fast is slot selection?

    python benchmarks/run_promotions.py                    # UCI retail, 30-day windows
    python benchmarks/run_promotions.py --max-users 300    # quicker

Protocol (no click logs exist offline; the target is "interacts with the promoted item within
the next H days"): with T = the last event,

* calibration: a recommender fitted on events before ``T - 2H`` scores the users active in
  ``[T - 2H, T - H)``; the calibrator is fitted on their positives + 50 sampled negatives each;
* test: a recommender fitted on events before ``T - H`` (as in production: the calibrator is
  older than the model) scores the users active in ``[T - H, T]``; pCTR is compared with what
  they did: weighted log-loss and AUC (negatives weighted by their sampling rate), and
  predicted against observed rates per tenth of the weighted population sorted by pCTR
  (the top tenth = the 10 % of all user x item pairs with the highest pCTR). Baselines: the
  uncalibrated rank prior and a constant equal to the observed rate (an oracle constant).
* latency: ``PromotionPlanner.select`` for 3 slots among 20 item promotions, per user.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from coldbrew.config import FitConfig, load_config
from coldbrew.data import load_catalog, load_events
from coldbrew.pipeline import Recommender
from coldbrew.promotions import (
    CTRCalibrator,
    Promotion,
    PromotionPlanner,
    holdout_requests,
    sample_pairs,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"
DAY = 86_400


def _log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return float(-(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum() / w.sum())


def _deciles(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> list[dict[str, float]]:
    """Mean pCTR and observed rate per tenth of the (weighted) user x item population."""
    order = np.argsort(p, kind="stable")
    cum = np.cumsum(w[order]) / w.sum()
    rows = []
    for q in range(10):
        part = order[(cum > q / 10) & (cum <= (q + 1) / 10 + 1e-12)]
        ww = w[part]
        rows.append({"mean_pctr": float((p[part] * ww).sum() / ww.sum()),
                     "observed_rate": float((y[part] * ww).sum() / ww.sum()), "pairs": int(len(part))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--config", default=None, help="coldbrew config (default: FitConfig())")
    parser.add_argument("--horizon-days", type=int, default=30)
    parser.add_argument("--max-users", type=int, default=1000)
    parser.add_argument("--negatives", type=int, default=50)
    parser.add_argument("--latency-users", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "promotions.json")
    args = parser.parse_args()

    config = load_config(args.config) if args.config else FitConfig()
    catalog, _ = load_catalog(args.data / "items.csv.gz")
    events, _ = load_events(args.data / "interactions.csv.gz")
    h = args.horizon_days
    last = int(events.timestamps.max())
    t_cal, t_test = last - 2 * h * DAY + 1, last - h * DAY + 1
    result: dict = {"data": str(args.data.name), "horizon_days": h, "negatives": args.negatives}

    started = time.perf_counter()
    model_cal = Recommender(config).fit(catalog, events.take(events.timestamps < t_cal), progress=False)
    reqs, pos = holdout_requests(events.take(events.timestamps < t_test), t_cal, h, args.max_users, seed=0)
    x, y, w = sample_pairs(model_cal, reqs, pos, args.negatives, seed=0)
    calibrator = CTRCalibrator.fit(x, y, w, h)
    result["calibration"] = {"users": len(reqs), "pairs": int(len(y)), "positives": int(y.sum()),
                             "coef": dict(zip(("score", "rank", "seen"), calibrator.coef)),
                             "intercept": calibrator.intercept,
                             "seconds": round(time.perf_counter() - started, 1)}
    print("calibration", result["calibration"], flush=True)

    model = Recommender(config).fit(catalog, events.take(events.timestamps < t_test), progress=False)
    reqs, pos = holdout_requests(events, t_test, h + 1, args.max_users, seed=1)
    x, y, w = sample_pairs(model, reqs, pos, args.negatives, seed=1)
    from sklearn.metrics import roc_auc_score

    base_rate = float((y * w).sum() / w.sum())
    scorers = {"calibrated": calibrator.predict(x), "prior (uncalibrated)": CTRCalibrator.prior(len(model.item_map_)).predict(x),
               "constant base rate": np.full(len(y), base_rate, np.float32)}
    result["test"] = {"users": len(reqs), "pairs": int(len(y)), "positives": int(y.sum()),
                      "observed_rate": base_rate, "scorers": {}}
    for name, p in scorers.items():
        result["test"]["scorers"][name] = {
            "log_loss": _log_loss(p, y, w),
            "auc": float(roc_auc_score(y, p, sample_weight=w)) if name != "constant base rate" else 0.5,
            "mean_pctr": float((p * w).sum() / w.sum()),
        }
    result["test"]["deciles"] = _deciles(scorers["calibrated"], y, w)
    print("test", json.dumps(result["test"]["scorers"], indent=1), flush=True)

    rng = np.random.default_rng(2)
    promoted = rng.choice(model.item_map_.ids(), 20, replace=False)
    promos = [Promotion(f"p{i}", float(rng.uniform(0.1, 1.0)), 1e9, item_id=str(it), frequency_cap=3)
              for i, it in enumerate(promoted)]
    planner = PromotionPlanner(model, promos, calibrator)
    times = []
    for req in reqs[: args.latency_users]:
        t0 = time.perf_counter()
        planner.select(req, 3, now=last, record=False)
        times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1000
    result["latency_ms"] = {"users": len(ms), "items": len(model.item_map_), "promotions": len(promos),
                            "slots": 3, "p50": float(np.median(ms)), "p95": float(np.percentile(ms, 95))}
    print("latency", result["latency_ms"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
