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


def test_evaluate_cold_user_split_gives_a_few_shot_curve_and_item_warmth(shop):
    catalog, events, root = shop
    out = root / "cold-user"
    code = main(["evaluate", "--catalog", str(catalog), "--events", str(events), "--out", str(out),
                 "--split", "cold-user", "--cold-share", "0.3", "--reveal", "0", "1", "3",
                 "--baselines", "popularity", "--k", "5"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["split"] == "cold-user"
    assert set(report["results"]["coldbrew"]) == {"new_users@0", "new_users@1", "new_users@3"}
    # roughly 30 % of 300 shoppers, minus those with too few events to reveal 3 and keep one
    assert 40 < report["users"]["new_users@1"] <= 90
    assert [n for n, _ in report["cold_start_curve"]["coldbrew"]] == [0, 1, 3]
    # knowing 3 events beats knowing none for coldbrew on this shop of consistent tastes
    curve = dict(report["cold_start_curve"]["coldbrew"])
    assert curve[3] > curve[0]
    assert (out / "cold_start_curve.png").is_file()
    assert "random cold-user" in (out / "report.md").read_text()


def test_evaluate_leave_last_out_split_reports_item_warmth(shop):
    catalog, events, root = shop
    out = root / "llo"
    code = main(["evaluate", "--catalog", str(catalog), "--events", str(events), "--out", str(out),
                 "--split", "leave-last-out", "--baselines", "popularity", "--k", "5"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert "warm_users" in report["results"]["coldbrew"]
    assert not any(s.startswith("new_users") for s in report["results"]["coldbrew"])
    rows = report["item_warmth"]["coldbrew"]
    assert [label for label, _, _ in rows] == ["0", "1-2", "3-5", "6-20", "21-100", "101+"]
    # the pairs of each bucket add up to the warm segment's relevant pairs
    assert sum(n for _, _, n in rows) >= report["users"]["warm_users"]
    assert all(r != r or 0.0 <= r <= 1.0 for _, r, _ in rows)  # NaN or a share
    assert (out / "item_warmth_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "by the item's training events" in (out / "report.md").read_text()


def test_training_curves_are_saved_with_the_model_and_plotted(shop, tmp_path, capsys):
    from coldbrew.data import load_catalog, load_events
    from coldbrew.pipeline import Recommender
    from coldbrew.storage import load_training_curves, save_model

    catalog_path, events_path, _ = shop
    catalog, _ = load_catalog(catalog_path)
    events, _ = load_events(events_path)
    from coldbrew.config import FitConfig

    model = Recommender(FitConfig.from_dict({"blend": {"tune": False}})).fit(catalog, events)
    model.training_curves_["component"] = {"epoch": [1, 2, 3], "loss": [0.9, 0.5, 0.4], "val_ndcg": [0.1, 0.2, 0.25]}
    save_model(model, tmp_path / "m")
    assert load_training_curves(tmp_path / "m")["component"]["loss"] == [0.9, 0.5, 0.4]
    code = main(["evaluate", "--training-curves", str(tmp_path / "m"), "--out", str(tmp_path / "plots")])
    assert code == 0
    assert (tmp_path / "plots" / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a model that trained nothing says so in one line
    model.training_curves_ = {}
    save_model(model, tmp_path / "m2")
    assert main(["evaluate", "--training-curves", str(tmp_path / "m2"), "--out", str(tmp_path / "p2")]) == 2
    assert "no training curves" in capsys.readouterr().err


def test_evaluate_without_data_files_is_a_one_line_error(tmp_path, capsys):
    assert main(["evaluate", "--out", str(tmp_path / "r")]) == 2
    assert "--catalog and --events" in capsys.readouterr().err
