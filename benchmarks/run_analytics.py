"""Engagement analytics on UCI retail: churn AUC on a time split, retention and repeat figures.

    python benchmarks/run_analytics.py
    python benchmarks/run_analytics.py --horizon-days 60

Churn = no event in the ``H`` days after a cutoff. Test cutoff t2 = last event - H; the model
is trained on features at t1 = t2 - H - 1 day labelled by [t1, t1 + H), so no training label
overlaps the test period. Both churn models (logistic regression, LightGBM) are compared with
recency alone (days since the last event), the usual strong baseline. Also times each step.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from coldbrew.analytics import (
    ChurnConfig,
    active_users,
    evaluate_churn,
    new_user_conversion,
    repeat_purchase_rate,
    retention,
)
from coldbrew.data import load_events

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "uci_online_retail"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--horizon-days", type=int, default=90)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "analytics.json")
    args = parser.parse_args()

    events, _ = load_events(args.data / "interactions.csv.gz")
    result: dict = {"data": args.data.name, "events": len(events)}
    started = time.perf_counter()
    ret = retention(events, "month")
    result["retention_month"] = ret.to_dict(orient="records")
    result["repeat_purchase"] = repeat_purchase_rate(events)
    result["active_users"] = active_users(events)
    result["new_user_conversion_7d"] = new_user_conversion(events, 7)
    result["engagement_seconds"] = round(time.perf_counter() - started, 2)
    weighted = {}
    for col in ("day_1", "day_7", "day_30"):
        ok = ret[col].notna()
        weighted[col] = float((ret.loc[ok, col] * ret.loc[ok, "users"]).sum() / ret.loc[ok, "users"].sum())
    result["retention_all_cohorts"] = weighted
    result["churn"] = {}
    for model in ("logistic", "lightgbm"):
        t0 = time.perf_counter()
        res = evaluate_churn(events, config=ChurnConfig(horizon_days=args.horizon_days, model=model))
        res["seconds"] = round(time.perf_counter() - t0, 2)
        result["churn"][model] = res
        print(model, res, flush=True)
    print("retention (user-weighted over observable cohorts):", weighted)
    print("repeat purchase:", result["repeat_purchase"], "conversion:", result["new_user_conversion_7d"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
