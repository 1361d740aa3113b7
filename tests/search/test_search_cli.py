"""``coldbrew search``: JSON out, batches of queries, history re-ranking, clean errors."""

from __future__ import annotations

import json

import pytest

from coldbrew.cli import main
from coldbrew.storage import save_model


@pytest.fixture(scope="module")
def model_dir(demo_model, tmp_path_factory):
    return str(save_model(demo_model, tmp_path_factory.mktemp("search-cli") / "model"))


def test_search_prints_one_json_object_per_query(model_dir, capsys):
    assert main(["search", "--model", model_dir, "--query", "trail running shoes", "--query", "铁观音", "--k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["query"] == "trail running shoes" and first["mode"] == "hybrid"
    assert len(first["items"]) == 3
    top = first["items"][0]
    assert top["item_id"] == "run-003" and top["price"] == 119.0 and top["category"] == "Sports > Running"
    assert set(top) == {"item_id", "title", "category", "price", "score", "reason"}
    assert second["items"][0]["item_id"] == "tea-002"


def test_search_with_a_user_history_and_a_mode(model_dir, capsys):
    assert main(["search", "--model", model_dir, "--query", "gift set", "--mode", "semantic",
                 "--user-history", "game-001", "game-002", "--k", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "semantic" and len(out["items"]) == 5
    assert any(item["reason"].endswith("suits your shopping history") for item in out["items"])


def test_search_errors_are_one_line(model_dir, tmp_path, capsys):
    assert main(["search", "--model", model_dir, "--query", "   "]) == 2
    assert "queries[0]" in capsys.readouterr().err
    assert main(["search", "--model", str(tmp_path / "none"), "--query", "tea"]) == 2
    assert "does not exist" in capsys.readouterr().err
