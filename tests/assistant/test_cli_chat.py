"""``coldbrew chat``: piped messages in, one answer per message out."""

from __future__ import annotations

import io
import json

import pytest

from coldbrew.cli import main


@pytest.fixture(scope="module")
def shop_model_dir(shop_model, tmp_path_factory):
    from coldbrew.storage import save_model

    path = tmp_path_factory.mktemp("chat") / "model"
    save_model(shop_model, path)
    return path


def test_piped_conversation_as_json(shop_model_dir, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("show me candles\n\ncheaper ones\nquit\nhello\n"))
    assert main(["chat", "--model", str(shop_model_dir), "--json", "--k", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["intent"] for r in lines] == ["find_products", "filter"]  # stops at quit
    assert len(lines[0]["items"]) == 3 and lines[1]["conversation_id"] == "cli"
    assert max(i["price"] for i in lines[1]["items"]) < max(i["price"] for i in lines[0]["items"])


def test_piped_conversation_as_text(shop_model_dir, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("给我看看蜡烛\n"))
    assert main(["chat", "--model", str(shop_model_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("assistant [find_products]: ") and "  1. " in out and "[c" in out


def test_missing_model_is_a_clean_error(tmp_path, capsys):
    assert main(["chat", "--model", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("coldbrew: error:")
