"""`coldbrew promote` and `coldbrew calibrate-ctr` on a saved tiny shop."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from coldbrew.cli import main
from coldbrew.pipeline import Recommender
from coldbrew.storage import save_model

from .builders import CONFIG, ITEMS, START, shop


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("promote")
    catalog, events = shop(n_users=90, days=40)
    save_model(Recommender(CONFIG).fit(catalog, events, progress=False), root / "model")
    pd.DataFrame(ITEMS, columns=["item_id", "title", "category", "price"]).to_csv(root / "items.csv", index=False)
    pd.DataFrame({"user_id": events.user_ids, "item_id": events.item_ids, "timestamp": events.timestamps,
                  "event": events.events}).to_csv(root / "events.csv", index=False)
    (root / "promos.json").write_text(json.dumps([
        {"promotion_id": "socks", "item_id": "s3", "bid": 0.5, "budget": 100, "frequency_cap": 1, "cap_period": "total"},
        {"promotion_id": "tea", "category": "Tea", "bid": 0.5, "budget": 100, "discount_percent": 10},
    ]))
    (root / "user.json").write_text(json.dumps([{"item_id": "s1", "timestamp": START + 50 * 86_400, "event": "purchase"}]))
    return root


def test_promote_prints_placements_and_keeps_caps_in_the_ledger(saved: Path, capsys) -> None:
    args = ["promote", "--model", str(saved / "model"), "--promotions", str(saved / "promos.json"),
            "--user-history", str(saved / "user.json"), "--slots", "2", "--ledger", str(saved / "ledger.json"),
            "--now", str(START + 60 * 86_400)]
    assert main(args) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["user_id"] == "cli-user"
    assert [p["promotion_id"] for p in out["placements"]] == ["socks", "tea"]
    assert "uncalibrated" in captured.err and "(pCTR uncalibrated)" in out["placements"][0]["explanation"]
    assert main(args + ["--language", "zh"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [p["promotion_id"] for p in again["placements"]] == ["tea"]
    assert again["skipped"]["socks"].startswith("frequency cap of 1 per total")
    assert "9折" in again["placements"][0]["copy"]


def test_calibrate_ctr_then_promote_uses_it(saved: Path, capsys) -> None:
    model_dir = saved / "model"
    assert main(["calibrate-ctr", "--model", str(model_dir), "--catalog", str(saved / "items.csv"),
                 "--events", str(saved / "events.csv"), "--horizon-days", "10"]) == 0
    assert json.loads((model_dir / "ctr_calibration.json").read_text())["calibrated"] is True
    capsys.readouterr()
    assert main(["promote", "--model", str(model_dir), "--promotions", str(saved / "promos.json"),
                 "--user-history", str(saved / "user.json"), "--slots", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "uncalibrated" not in out["placements"][0]["explanation"]


def test_promote_errors_are_one_line(saved: Path, capsys) -> None:
    (saved / "bad.json").write_text('[{"promotion_id": "x", "bid": 1, "budget": 1}]')
    assert main(["promote", "--model", str(saved / "model"), "--promotions", str(saved / "bad.json"),
                 "--user-history", str(saved / "user.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coldbrew: error:") and "item_id" in err
    assert main(["promote", "--model", str(saved / "model"), "--promotions", str(saved / "promos.json"),
                 "--user-history", str(saved / "nope.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
