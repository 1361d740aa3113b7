"""The engagement report: one summary (JSON, also served by the API), markdown and PNG plots."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from coldbrew.analytics.churn import ChurnConfig, ChurnModel, evaluate_churn
from coldbrew.analytics.engagement import (
    active_users,
    activity,
    new_user_conversion,
    repeat_purchase_rate,
    retention,
)
from coldbrew.data.events import Events
from coldbrew.errors import DataError

__all__ = ["AnalyticsConfig", "analytics_summary", "churn_scores", "write_report"]

DAY = 86_400


@dataclass(frozen=True)
class AnalyticsConfig:
    """What the report computes: cohort period, retention horizons, conversion window, churn."""

    cohort: str = "month"
    horizons: tuple[int, ...] = (1, 7, 30)
    conversion_days: int = 7
    activity_period: str = "week"
    churn: ChurnConfig = ChurnConfig()

    def __post_init__(self) -> None:
        if self.cohort not in ("week", "month"):
            raise DataError(f"cohort: expected 'week' or 'month', got {self.cohort!r}")
        if self.activity_period not in ("day", "week", "month"):
            raise DataError(f"activity_period: expected 'day', 'week' or 'month', got {self.activity_period!r}")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def analytics_summary(events: Events, config: AnalyticsConfig | None = None, churn: bool = True) -> dict[str, Any]:
    """Every engagement figure as plain JSON data.

    Keys: ``events``, ``users``, ``period`` (first/last day), ``retention`` (cohort rows),
    ``repeat_purchase``, ``active_users`` (DAU/WAU/MAU), ``activity`` (rows per period),
    ``new_user_conversion``, and with ``churn=True`` ``churn`` (time-split AUC of the model
    and of recency alone, or ``{"error": ...}`` when the log is too short to evaluate).
    """
    cfg = config or AnalyticsConfig()
    if len(events) == 0:
        raise DataError("events: no events to analyse")
    ts = events.timestamps
    out: dict[str, Any] = {
        "events": int(len(events)),
        "users": int(len(np.unique(events.user_ids.astype(str)))),
        "period": {"first": pd.Timestamp(int(ts.min()), unit="s").strftime("%Y-%m-%d"),
                   "last": pd.Timestamp(int(ts.max()), unit="s").strftime("%Y-%m-%d")},
        "retention": {"cohort": cfg.cohort,
                      "rows": retention(events, cfg.cohort, cfg.horizons).to_dict(orient="records")},
        "repeat_purchase": repeat_purchase_rate(events),
        "active_users": active_users(events),
        "activity": {"period": cfg.activity_period,
                     "rows": activity(events, cfg.activity_period).to_dict(orient="records")},
        "new_user_conversion": new_user_conversion(events, cfg.conversion_days),
    }
    if churn:
        try:
            out["churn"] = evaluate_churn(events, config=cfg.churn)
        except DataError as exc:
            out["churn"] = {"error": str(exc)}
    return _clean(out)


def churn_scores(events: Events, config: ChurnConfig | None = None) -> dict[str, float]:
    """Churn risk of every recently active user now: a model trained ``horizon_days`` ago.

    Returns ``{user_id: probability of no activity in the next horizon_days}``.
    """
    cfg = config or ChurnConfig()
    last = int(events.timestamps.max())
    model = ChurnModel(cfg).fit(events, last - cfg.horizon_days * DAY + 1)
    users, scores = model.predict(events)
    return {str(u): float(s) for u, s in zip(users, scores)}


def _plots(summary: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    rows = pd.DataFrame(summary["retention"]["rows"])
    fig, ax = plt.subplots(figsize=(8, 4))
    for col in [c for c in rows.columns if c.startswith("day_")]:
        ax.plot(rows["cohort"], rows[col].astype(float), marker="o", label=col.replace("_", "-"))
    ax.set_ylabel("share of cohort returning")
    ax.set_title(f"Retention by first-seen {summary['retention']['cohort']}")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "retention.png", dpi=110)
    plt.close(fig)
    written.append("retention.png")

    act = pd.DataFrame(summary["activity"]["rows"])
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(pd.to_datetime(act["period"]), act["active_users"], color="tab:blue")
    ax.set_ylabel(f"active users per {summary['activity']['period']}", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(pd.to_datetime(act["period"]), act["events"], color="tab:orange", alpha=0.6)
    ax2.set_ylabel("events", color="tab:orange")
    ax.set_title("Activity")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "activity.png", dpi=110)
    plt.close(fig)
    written.append("activity.png")

    churn = summary.get("churn") or {}
    if "roc" in churn:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for name, label in (("model", f"churn model ({churn['model']}), AUC {churn['auc']:.3f}"),
                            ("recency", f"recency only, AUC {churn['recency_auc']:.3f}")):
            points = np.asarray(churn["roc"][name], dtype=float)
            ax.plot(points[:, 0], points[:, 1], label=label)
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"Churn within {churn['horizon_days']} days, tested at {churn['test_cutoff']}", fontsize=9)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        fig.savefig(out / "churn_roc.png", dpi=110)
        plt.close(fig)
        written.append("churn_roc.png")
    return written


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def render_markdown(summary: dict[str, Any], plots: list[str]) -> str:
    """The report as markdown (tables + links to the plots)."""
    lines = ["# Engagement report", "",
             f"{summary['events']:,} events from {summary['users']:,} users,"
             f" {summary['period']['first']} to {summary['period']['last']}.", ""]
    ret = summary["retention"]
    horizons = [k for k in ret["rows"][0] if k.startswith("day_")] if ret["rows"] else []
    lines += [f"## Retention by first-seen {ret['cohort']}", "",
              "A user is retained at day N when active again on a later day at most N days after"
              " their first day; n/a = not observable yet.", "",
              "| cohort | users | " + " | ".join(h.replace("_", "-") for h in horizons) + " |",
              "|---|---:|" + "---:|" * len(horizons)]
    for row in ret["rows"]:
        lines.append(f"| {row['cohort']} | {row['users']:,} | " + " | ".join(_pct(row[h]) for h in horizons) + " |")
    rp, au, conv = summary["repeat_purchase"], summary["active_users"], summary["new_user_conversion"]
    lines += ["", "## Purchases and activity", "",
              f"- Repeat-purchase rate: **{_pct(rp['rate'])}** ({rp['repeat_purchasers']:,} of"
              f" {rp['purchasers']:,} purchasers bought on two or more days)",
              f"- New-user conversion: **{_pct(conv['rate'])}** of {conv['new_users']:,} new users"
              f" purchased within {conv['days']} days of their first event",
              f"- Last day: DAU {au['dau']:,}, WAU {au['wau']:,}, MAU {au['mau']:,};"
              f" mean DAU over 30 days {au['mean_dau_30d']:.1f} (stickiness {_pct(au['stickiness'])})", ""]
    churn = summary.get("churn")
    if churn:
        lines += ["## Churn risk", ""]
        if "error" in churn:
            lines.append(f"Not evaluated: {churn['error']}")
        else:
            lines += [
                f"Churn = no activity in the {churn['horizon_days']} days after a cutoff. A"
                f" {churn['model']} model trained on features at {churn['train_cutoff']}"
                f" ({churn['train_users']:,} users, {_pct(churn['train_churn_rate'])} churned) is"
                f" tested at {churn['test_cutoff']} ({churn['test_users']:,} users,"
                f" {_pct(churn['test_churn_rate'])} churned).", "",
                "| scorer | AUC |", "|---|---:|",
                f"| churn model ({churn['model']}) | {churn['auc']:.3f} |",
                f"| recency only | {churn['recency_auc']:.3f} |",
            ]
        lines.append("")
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def write_report(events: Events, out_dir: str | Path, config: AnalyticsConfig | None = None) -> dict[str, Any]:
    """Write ``report.md``, ``analytics.json``, ``retention.png``, ``activity.png`` (and
    ``churn_roc.png`` when the churn model could be evaluated).

    Returns the summary (as in :func:`analytics_summary`) with ``plots`` added.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = analytics_summary(events, config)
    plots = _plots(summary, out)
    summary["plots"] = plots
    (out / "analytics.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "report.md").write_text(render_markdown(summary, plots), encoding="utf-8")
    return summary
