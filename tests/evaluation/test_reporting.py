"""``coldbrew evaluate`` and its report, on a small generated shop."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from coldbrew.cli import main
from coldbrew.demo import demo_events, demo_paths
from coldbrew.errors import ConfigError
from coldbrew.evaluation.reporting import (
    ReportConfig,
    cold_start_curve,
    parse_reveal,
    render_markdown,
)


def test_cold_start_curve_reads_the_new_user_segments_in_order():
    results = {"m": {"warm_users": {"ndcg@20": 0.5}, "new_users@3": {"ndcg@20": 0.3},
                     "new_users@0": {"ndcg@20": 0.1}, "new_users@1": {"ndcg@20": 0.2}}}
    assert cold_start_curve(results, "ndcg@20") == {"m": [(0, 0.1), (1, 0.2), (3, 0.3)]}


def test_report_config_and_reveal_validation():
    assert parse_reveal(["3", "0", "3", "1"]) == (0, 1, 3)
    with pytest.raises(ConfigError, match="integers"):
        parse_reveal(["one"])
    with pytest.raises(ConfigError, match="nope"):
        ReportConfig(baselines=("popularity", "nope"))
    with pytest.raises(ConfigError, match="quantile"):
        ReportConfig(quantile=1.5)


def test_markdown_has_one_table_per_metric():
    values = {f"{m}@5": 0.25 for m in ("recall", "ndcg", "hit", "mrr", "coverage")}
    report = {
        "command": "coldbrew evaluate", "k": 5, "quantile": 0.8, "cutoff_utc": "2025-01-01 00:00",
        "train_events": 10, "test_events": 3, "items_seen": 4, "items_new": 1,
        "users": {"warm_users": 2}, "results": {"a": {"warm_users": values}, "b": {"warm_users": values}},
        "timings": {"a": {"fit_s": 1.0, "add_items_s": 0.0}, "b": {"fit_s": 2.0, "add_items_s": 0.0}},
    }
    text = render_markdown(report)
    assert text.count("| model | warm_users |") == 5
    assert "| a | 0.2500 |" in text and "## ndcg@5" in text


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    catalog, _ = demo_paths()
    ids = pd.read_csv(catalog, dtype=str).item_id.tolist()
    events = demo_events(ids, n_users=300, seed=3).drop(columns=["taste"])
    late = events.user_id >= "u240"  # these shoppers arrive after everyone else: new users
    events.loc[late, "timestamp"] += 95 * 86_400
    events.to_csv(root / "events.csv", index=False)
    return catalog, root / "events.csv", root


def test_evaluate_command_writes_report_json_and_plot(shop, capsys):
    catalog, events, root = shop
    out = root / "report"
    code = main(["evaluate", "--catalog", str(catalog), "--events", str(events), "--out", str(out),
                 "--reveal", "0", "1", "--baselines", "popularity", "itemknn", "--k", "5"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["results"]) == {"coldbrew", "popularity", "itemknn"}
    for values in report["results"].values():
        assert {"warm_users", "new_users@0", "new_users@1"} <= set(values)
        assert all(0.0 <= v["ndcg@5"] <= 1.0 for v in values.values())
    assert report["users"]["new_users@0"] == report["users"]["new_users@1"]  # same users for every n
    assert [n for n, _ in report["cold_start_curve"]["coldbrew"]] == [0, 1]
    assert (out / "cold_start_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## ndcg@5" in (out / "report.md").read_text()


def test_evaluate_rejects_an_unknown_baseline_in_one_line(shop, capsys):
    catalog, events, root = shop
    code = main(["evaluate", "--catalog", str(catalog), "--events", str(events), "--out", str(root / "x"),
                 "--baselines", "popularity", "magic"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("coldbrew: error:") and "magic" in err[-1]
    assert not (root / "x" / "report.json").exists()


def test_evaluate_cold_item_split(shop):
    catalog, events, root = shop
    out = root / "cold"
    code = main(["evaluate", "--catalog", str(catalog), "--events", str(events), "--out", str(out),
                 "--split", "cold-item", "--cold-share", "0.25", "--baselines", "popularity", "--k", "5"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "cold-item" and report["items_new"] == 13  # 25 % of 52 products
    assert set(report["results"]["coldbrew"]) == {"cold_items"}
    assert report["users"]["cold_items"] > 50
    ours = report["results"]["coldbrew"]["cold_items"]["ndcg@5"]
    assert ours > report["results"]["popularity"]["cold_items"]["ndcg@5"]
    assert "random cold-item" in (out / "report.md").read_text()
