"""Contract tests for the ``coldbrew`` command (the interface other tools depend on)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from coldbrew.cli import main
from coldbrew.demo import demo_events, demo_paths


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The bundled demo shop written to files, and a model fitted on it through the CLI."""
    root = tmp_path_factory.mktemp("shop")
    catalog, new_items = demo_paths()
    import pandas as pd

    ids = pd.read_csv(catalog, dtype=str).item_id.tolist()
    events = demo_events(ids).drop(columns=["taste"])
    events_path = root / "events.csv"
    events.to_csv(events_path, index=False)
    model = root / "model"
    assert main(["fit", "--catalog", str(catalog), "--events", str(events_path), "--out", str(model)]) == 0
    return {"root": root, "catalog": catalog, "new_items": new_items, "events": events,
            "events_path": events_path, "model": model}


def test_fit_says_which_time_scales_it_chose(shop, tmp_path):
    out = _run("fit", "--catalog", str(shop["catalog"]), "--events", str(shop["events_path"]),
               "--out", str(tmp_path / "m"), "--config", str(_config(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert "time scales: events weigh with a 45-day half-life, the trend with a 7-day half-life" \
        " (from [weighting])" in out.stderr
    assert "new-product bridge (text -> CF): ridge penalty 3 (from [bridge])" in out.stderr


def test_fit_says_how_it_chose_time_scales_and_bridge_penalty(shop, tmp_path, capsys):
    from coldbrew.models.bridge import RIDGE_GRID

    assert main(["fit", "--catalog", str(shop["catalog"]), "--events", str(shop["events_path"]),
                 "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert "(set from the pace of these events: the spans of their newest 50 % and 2.5 %)" in err
    line = next(x for x in err.splitlines() if x.startswith("new-product bridge"))
    assert line.endswith("(chosen by leave-one-out on the products with interactions)")
    assert float(line.split("ridge penalty ")[1].split()[0]) in RIDGE_GRID


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "coldbrew.toml"
    path.write_text("[weighting]\nhalf_life_days = 45\ntrend_half_life_days = 7\n[blend]\ntune = false\n"
                    "[bridge]\nridge = 3\n")
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coldbrew.cli", *args], capture_output=True, text=True, timeout=300)


def _write_requests(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_fit_writes_a_model_directory_with_a_manifest(shop):
    manifest = json.loads((shop["model"] / "manifest.json").read_text())
    weighting = manifest["config"]["weighting"]
    assert manifest["tuning"], "the demo shop is large enough to tune"
    assert any(f"half_life_days={weighting['half_life_days']:g} " in label for label in manifest["tuning"])
    assert manifest["format"] == "coldbrew-model"
    assert manifest["encoder"].startswith("use-multilingual-v3")
    assert manifest["items"] == 52
    assert manifest["versions"]["coldbrew"]


def test_recommend_contract(shop, tmp_path):
    events = shop["events"]
    user = events.user_id.iloc[0]
    history = [
        {"item_id": r.item_id, "timestamp": int(r.timestamp), "event": r.event}
        for r in events[events.user_id == user].itertuples()
    ]
    seen = {h["item_id"] for h in history}
    requests = _write_requests(tmp_path / "req.jsonl", [
        {"request_id": "a", "user_id": user, "history": history, "exclude": ["tea-001"]},
        {"request_id": "b", "user_id": "stranger", "history": []},
        {"request_id": "c", "user_id": "stranger2", "history": [], "text": "green tea 绿茶"},
        {"request_id": "d", "user_id": "x", "history": [{"item_id": "run-001", "timestamp": "2025-03-01T10:00:00Z"}],
         "candidates": ["run-002", "yoga-001", "run-001", "no-such-item"]},
    ])
    out = tmp_path / "recs.jsonl"
    assert main(["recommend", "--model", str(shop["model"]), "--requests", str(requests), "--k", "5", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["request_id"] for r in lines] == ["a", "b", "c", "d"]
    for rec in lines:
        assert set(rec) == {"request_id", "user_id", "items", "scores", "reasons"}
        assert len(rec["items"]) == len(rec["scores"]) == len(rec["reasons"]) <= 5
        assert rec["scores"] == sorted(rec["scores"], reverse=True)
        assert all(isinstance(r, str) and r for r in rec["reasons"])
    assert not (set(lines[0]["items"]) & (seen | {"tea-001"}))
    assert len(lines[1]["items"]) == 5  # a stranger still gets the popular products
    assert any(i.startswith("tea-") for i in lines[2]["items"][:3])
    assert set(lines[3]["items"]) <= {"run-002", "yoga-001"}  # only candidates, never history
    assert lines[3]["items"][0] == "run-002"


def test_add_items_then_recommend_the_new_ones(shop, tmp_path):
    model = tmp_path / "model"
    import shutil

    shutil.copytree(shop["model"], model)
    assert main(["add-items", "--model", str(model), "--catalog", str(shop["new_items"])]) == 0
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["items"] == 58 and manifest["generation"] == 1
    assert not (model / "items-0.parquet").exists()  # the old generation is cleaned up
    # Adding again changes nothing (known IDs are left alone).
    assert main(["add-items", "--model", str(model), "--catalog", str(shop["new_items"])]) == 0
    assert json.loads((model / "manifest.json").read_text())["items"] == 58
    new_ids = ["run-101", "tea-101", "wine-101", "game-101", "baby-101", "home-101"]
    requests = _write_requests(tmp_path / "req.jsonl", [
        {"request_id": "r", "user_id": "runner", "candidates": new_ids, "history": [
            {"item_id": "run-001", "timestamp": 1740000000, "event": "purchase"},
            {"item_id": "run-003", "timestamp": 1740000100, "event": "purchase"},
            {"item_id": "run-005", "timestamp": 1740000200, "event": "view"}]},
        {"request_id": "t", "user_id": "tea", "text": "乌龙茶", "candidates": new_ids},
    ])
    out = tmp_path / "recs.jsonl"
    assert main(["recommend", "--model", str(model), "--requests", str(requests), "--k", "2", "--out", str(out)]) == 0
    runner, tea = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert runner["items"][0] == "run-101"
    assert tea["items"][0] == "tea-101"


def test_similar_and_onboard_print_json(shop, capsys):
    assert main(["similar", "--model", str(shop["model"]), "--item", "wine-001", "--k", "4"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert len(rec["items"]) == 4 and "wine-001" not in rec["items"]
    assert main(["onboard", "--model", str(shop["model"]), "--text", "我想买瑜伽垫", "--k", "3"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["items"][0].startswith("yoga-")


def test_entry_point_runs_as_a_process(shop):
    result = _run("onboard", "--model", str(shop["model"]), "--text", "red wine", "--k", "2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["items"][0].startswith("wine-")


@pytest.mark.parametrize(
    "case",
    ["missing_column", "unknown_model", "malformed_json", "unknown_item", "bad_k", "bad_config", "bad_timestamp", "empty_text"],
)
def test_user_errors_exit_nonzero_with_one_actionable_line(shop, tmp_path, capsys, case):
    model = str(shop["model"])
    if case == "missing_column":
        bad = tmp_path / "events.csv"
        bad.write_text("customer,item_id,timestamp\nu1,run-001,1700000000\n")
        args = ["fit", "--catalog", str(shop["catalog"]), "--events", str(bad), "--out", str(tmp_path / "m")]
        expect = "user_id"
    elif case == "unknown_model":
        args = ["similar", "--model", str(tmp_path / "nope"), "--item", "x"]
        expect = "does not exist"
    elif case == "malformed_json":
        req = _write_requests(tmp_path / "r.jsonl", [{"request_id": "1", "user_id": "u"}, "{not json"])
        args = ["recommend", "--model", model, "--requests", str(req), "--k", "3", "--out", str(tmp_path / "o.jsonl")]
        expect = "line 2"
    elif case == "unknown_item":
        args = ["similar", "--model", model, "--item", "no-such-item"]
        expect = "no-such-item"
    elif case == "bad_k":
        args = ["similar", "--model", model, "--item", "run-001", "--k", "0"]
        expect = "--k"
    elif case == "bad_config":
        cfg = tmp_path / "c.toml"
        cfg.write_text("[als]\nfactorz = 3\n")
        args = ["fit", "--catalog", str(shop["catalog"]), "--events", str(shop["events_path"]), "--out", str(tmp_path / "m"), "--config", str(cfg)]
        expect = "factorz"
    elif case == "bad_timestamp":
        req = _write_requests(tmp_path / "r.jsonl", [{"request_id": "1", "user_id": "u", "history": [{"item_id": "run-001", "timestamp": "yesterday"}]}])
        args = ["recommend", "--model", model, "--requests", str(req), "--k", "3", "--out", str(tmp_path / "o.jsonl")]
        expect = "history[0]"
    else:
        args = ["onboard", "--model", model, "--text", "   "]
        expect = "empty"
    with pytest.raises(SystemExit) if case == "bad_k" else _nullcontext():
        code = main(args)
        assert code == 2
    err = capsys.readouterr().err.strip()
    assert expect in err
    assert "Traceback" not in err
    if case != "bad_k":  # argparse prints usage + one error line
        errors = [line for line in err.splitlines() if "error" in line]
        assert len(errors) == 1 and err.splitlines()[-1].startswith("coldbrew: error:")
    assert not (tmp_path / "o.jsonl").exists()


def test_model_from_another_version_is_refused(shop, tmp_path, capsys):
    import shutil

    model = tmp_path / "old"
    shutil.copytree(shop["model"], model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["versions"]["coldbrew"] = "0.0.1"
    (model / "manifest.json").write_text(json.dumps(manifest))
    assert main(["similar", "--model", str(model), "--item", "run-001"]) == 2
    err = capsys.readouterr().err
    assert "0.0.1" in err and "refit" in err


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_encode_fills_the_embedding_cache_that_fit_then_reuses(shop, tmp_path, capsys):
    import numpy as np

    model = tmp_path / "m"
    assert main(["encode", "--catalog", str(shop["catalog"]), "--out", str(model),
                 "--vectors", str(tmp_path / "vectors.npz")]) == 0
    assert "encoded 52 distinct product texts (0 from the cache) in this process" in capsys.readouterr().err
    with np.load(tmp_path / "vectors.npz") as saved:
        assert saved["vectors"].shape == (52, 512) and saved["vectors"].dtype == np.float32
        assert len(saved["item_ids"]) == 52 and str(saved["encoder"]).startswith("use-multilingual-v3")
    assert main(["fit", "--catalog", str(shop["catalog"]), "--events", str(shop["events_path"]),
                 "--out", str(model), "--config", str(_config(tmp_path))]) == 0
    err = capsys.readouterr().err
    assert f"reusing the embedding cache of {model}" in err
    assert "encoded 0 distinct product texts (52 from the cache) in this process" in err


@pytest.mark.parametrize("options, expect", [
    (["--ray-address", "auto"], "coldbrew: error: --ray-address: only with --engine ray"),
    (["--engine", "ray", "--ray-address", "http://head:8265"],
     "coldbrew: error: --ray-address: expected 'auto', 'ray://HOST:PORT' or 'HOST:PORT', got 'http://head:8265'"),
])
def test_engine_options_that_make_no_sense_are_refused_before_any_work(shop, tmp_path, capsys, options, expect):
    requests = _write_requests(tmp_path / "r.jsonl", [{"request_id": "1", "user_id": "u"}])
    for args in (["encode", "--catalog", str(shop["catalog"]), "--out", str(tmp_path / "m")],
                 ["fit", "--catalog", str(shop["catalog"]), "--events", str(shop["events_path"]), "--out", str(tmp_path / "m")],
                 ["recommend", "--model", str(shop["model"]), "--requests", str(requests), "--out", str(tmp_path / "o.jsonl")]):
        assert main(args + options) == 2
        assert capsys.readouterr().err.strip().splitlines() == [expect]
    assert not (tmp_path / "m").exists() and not (tmp_path / "o.jsonl").exists()
