"""The engagement report and `coldbrew analytics`."""

from __future__ import annotations

import json

import pandas as pd

from coldbrew.analytics.report import analytics_summary, render_markdown, write_report
from coldbrew.cli import main

from .builders import MONDAY, ROWS, hand_events


def test_summary_is_json_and_reports_an_unevaluable_churn_model() -> None:
    summary = analytics_summary(hand_events())
    json.dumps(summary, allow_nan=False)  # NaN became null
    assert summary["events"] == 13 and summary["users"] == 6
    assert summary["retention"]["rows"][1]["day_7"] is None
    assert summary["repeat_purchase"]["rate"] == 0.4
    assert "error" in summary["churn"]  # 40 days of log are too few for a 90-day horizon
    text = render_markdown(summary, ["retention.png"])
    assert "| 2024-01-01 | 4 | 25.0% | 50.0% | 75.0% |" in text and "n/a" in text
    assert "Repeat-purchase rate: **40.0%**" in text and "Not evaluated" in text


def test_write_report_and_cli(tmp_path) -> None:
    summary = write_report(hand_events(), tmp_path / "direct")
    for name in ("report.md", "analytics.json", "retention.png", "activity.png"):
        assert (tmp_path / "direct" / name).stat().st_size > 100
    assert summary["plots"] == ["retention.png", "activity.png"]
    assert (tmp_path / "direct" / "retention.png").read_bytes()[:4] == b"\x89PNG"

    frame = pd.DataFrame([(u, f"i{n}", MONDAY + d * 86_400 + 43_200 + n, ev) for n, (u, d, ev) in enumerate(ROWS)],
                         columns=["user_id", "item_id", "timestamp", "event_type"])
    frame.to_csv(tmp_path / "events.csv", index=False)
    code = main(["analytics", "--events", str(tmp_path / "events.csv"), "--out", str(tmp_path / "cli"),
                 "--cohort", "week", "--churn-days", "7"])
    assert code == 0
    data = json.loads((tmp_path / "cli" / "analytics.json").read_text())
    assert data["retention"]["cohort"] == "week" and len(data["retention"]["rows"]) == 3
    assert main(["analytics", "--events", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "x")]) == 2
