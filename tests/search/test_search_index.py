"""SearchIndex on the bundled bilingual shop: modes, Chinese queries, new items, personalisation."""

from __future__ import annotations

import numpy as np
import pytest

from coldbrew.errors import ConfigError, DataError
from coldbrew.requests import HistoryEvent, Request
from coldbrew.search import SearchConfig, SearchHit, SearchIndex

from .conftest import fit_demo


@pytest.fixture(scope="module")
def index(demo_model):
    return SearchIndex.build(demo_model)


def _ids(hits):
    return [h.item_id for h in hits]


@pytest.mark.parametrize("mode", ["lexical", "semantic", "hybrid"])
def test_english_queries_find_their_products_in_every_mode(index, mode):
    running, teapot = index.search(["trail running shoes", "cast iron teapot"], k=3, mode=mode)
    assert running[0].item_id == "run-003"
    assert teapot[0].item_id == "tea-004"
    assert isinstance(running[0], SearchHit) and running[0].score > running[-1].score


@pytest.mark.parametrize("query, expected", [
    ("跑步鞋", "run-002"),  # 女式轻量跑步鞋
    ("铁观音", "tea-002"),  # 安溪铁观音乌龙茶
    ("机械键盘", "game-003"),  # 机械键盘 青轴
    ("婴儿推车", "baby-002"),  # 婴儿推车 轻便可折叠
    ("普洱茶", "tea-006"),  # 云南普洱熟茶饼 (the description says 普洱茶饼)
    ("香薰蜡烛", "home-004"),
])
def test_chinese_queries_find_chinese_products(index, query, expected):
    for mode in ("lexical", "hybrid"):
        hits = index.search([query], k=3, mode=mode)[0]
        assert hits[0].item_id == expected, (mode, hits)
    assert index.search([query], k=1, mode="lexical")[0][0].reason.startswith("matches '")


def test_chinese_with_the_bigram_tokenizer(demo_model):
    index = SearchIndex.build(demo_model, SearchConfig(chinese="bigram"))
    assert index.search(["龙井绿茶"], 1, "lexical")[0][0].item_id == "tea-003"
    assert index.search(["不粘锅"], 1, "lexical")[0][0].item_id == "cook-003"


def test_lexical_mode_returns_only_matches_and_reasons_name_the_words(index):
    hits = index.search(["yoga mat"], k=20, mode="lexical")[0]
    assert hits[0].item_id == "yoga-001" and hits[0].reason == "matches 'yoga mat'"
    assert all(h.item_id.startswith("yoga") or "yoga" in h.reason for h in hits)
    assert index.search(["zzzqqq"], k=5, mode="lexical") == [[]]


def test_hybrid_fills_in_with_semantic_results_and_says_so(index):
    hits = index.search(["zzzqqq tea"], k=10)[0]
    assert len(hits) == 10
    assert any(h.reason.startswith("similar in meaning") for h in hits)
    assert any(h.reason == "matches 'tea'" for h in hits)


def test_results_are_sorted_unique_and_at_most_k(index):
    for mode in ("lexical", "semantic", "hybrid"):
        for hits in index.search(["wine", "baby", "茶"], k=7, mode=mode):
            assert len(hits) <= 7
            assert len(set(_ids(hits))) == len(hits)
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True)


def test_batch_equals_single_queries(index):
    queries = ["running", "绿茶", "gaming mouse"]
    batch = index.search(queries, k=5)
    assert batch == [index.search([q], k=5)[0] for q in queries]


def test_new_items_are_searchable_without_rebuilding_by_hand(new_items):
    model = fit_demo()
    index = SearchIndex.build(model)
    assert "run-101" not in _ids(index.search(["carbon plate racing shoes"], 5)[0])
    n_before = len(index)
    model.add_items(new_items)
    hits = index.search(["carbon plate racing shoes", "高山乌龙茶"], 3)
    assert hits[0][0].item_id == "run-101"
    assert hits[1][0].item_id == "tea-101"
    assert len(index) == n_before + len(new_items)
    assert not index.refresh()  # already up to date


def test_a_history_re_ranks_towards_the_users_taste(index):
    tea_lover = (HistoryEvent("tea-001", 1_740_000_000, "purchase"), HistoryEvent("tea-003", 1_740_000_100, "purchase"))
    gamer = (HistoryEvent("game-001", 1_740_000_000, "purchase"), HistoryEvent("game-002", 1_740_000_100, "purchase"))
    plain, for_tea, for_gamer = index.search(["gift set"] * 3, k=10, user_histories=[None, tea_lover, gamer])
    assert set(_ids(plain)) != set() and _ids(for_tea) != _ids(for_gamer)

    def share(hits, prefix):
        return sum(h.item_id.startswith(prefix) for h in hits[:5])

    assert share(for_tea, "tea") > share(for_gamer, "tea")
    assert share(for_gamer, "game") > share(for_tea, "game")
    assert any(h.reason.endswith("suits your shopping history") for h in for_tea)
    assert not any("history" in h.reason for h in plain)


def test_unknown_history_items_leave_the_results_unpersonalised(index):
    stranger = (HistoryEvent("not-in-catalog", 1_740_000_000, "view"),)
    assert index.search(["tea"], 5, user_histories=[stranger]) == index.search(["tea"], 5)


def test_score_items_scores_history_items_and_pads(demo_model):
    request = Request("r", "", history=(HistoryEvent("tea-001", 1_740_000_000, "purchase"),))
    ids = demo_model.item_map_.lookup(["tea-001", "tea-003", "game-002"]).tolist()
    scores = demo_model.score_items([request], np.array([ids + [-1]]))
    assert scores.shape == (1, 4) and scores.dtype == np.float32
    assert scores[0, 1] > scores[0, 2]  # the tea lover likes tea more than a keyboard
    assert np.isfinite(scores[0, 0]) and scores[0, 3] == -np.inf  # history kept, padding -inf
    with pytest.raises(ValueError, match="items"):
        demo_model.score_items([request, request], np.array([ids]))


def test_bad_input_names_the_field(index):
    with pytest.raises(DataError, match=r"queries\[1\]"):
        index.search(["tea", "  "])
    with pytest.raises(DataError, match="batch of one"):
        index.search("tea")
    with pytest.raises(DataError, match="mode"):
        index.search(["tea"], mode="fuzzy")
    with pytest.raises(DataError, match="k"):
        index.search(["tea"], k=0)
    with pytest.raises(DataError, match="user_histories"):
        index.search(["tea"], user_histories=[None, None])
    with pytest.raises(ConfigError, match="rerank_depth"):
        SearchConfig(rerank_depth=0)
    with pytest.raises(ConfigError, match="chinese"):
        SearchConfig(chinese="pinyin")


def test_excluded_items_are_never_returned(index, demo_model):
    exclude = np.zeros(len(demo_model.item_map_), dtype=bool)
    exclude[demo_model.item_map_.lookup(["run-003", "run-001"])] = True
    for mode in ("lexical", "semantic", "hybrid"):
        hits = index.search(["running shoes"], k=10, mode=mode, exclude=exclude)[0]
        assert not {"run-003", "run-001"} & set(_ids(hits))
        unfiltered = _ids(index.search(["running shoes"], k=12, mode=mode)[0])
        assert _ids(hits) == [i for i in unfiltered if i not in {"run-003", "run-001"}][:10]
    # a shorter mask (made before items were added) leaves the rest allowed
    assert index.search(["running shoes"], 1, "lexical", exclude=np.array([True]))[0][0].item_id == "run-003"


def test_in_place_catalog_edits_need_a_forced_refresh():
    model = fit_demo()
    index = SearchIndex.build(model)
    pos = model.item_map_.index("home-005")
    model.catalog_.titles[pos] = "Alpaca wool throw"
    model.text_vectors_[pos] = model.encode(["Alpaca wool throw"])[0]
    assert not index.refresh()  # same objects: not noticed without force
    assert index.refresh(force=True)
    assert index.search(["alpaca"], 1, "lexical")[0][0].item_id == "home-005"
    assert index.search(["Alpaca wool throw"], 1, "semantic")[0][0].item_id == "home-005"
    assert not index.refresh(force=True)  # nothing changed since


def test_a_request_brings_its_text_as_a_profile(index):
    wine = Request("r", "", text="red wine and wine glasses")
    hits = index.search(["gift"], 10, user_histories=[wine])[0]
    assert any(h.reason.endswith("suits your shopping history") for h in hits)
    assert sum(h.item_id.startswith("wine") for h in hits[:5]) >= 2


def test_personalised_scores_stay_sorted_beyond_the_re_ranked_pool(demo_model):
    index = SearchIndex.build(demo_model, SearchConfig(rerank_depth=5))
    history = (HistoryEvent("wine-001", 1_740_000_000, "purchase"),)
    for mode in ("lexical", "semantic", "hybrid"):
        hits = index.search(["tea"], k=12, mode=mode, user_histories=[history])[0]
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True), mode


def test_reasons_name_short_english_words_too(index):
    top = index.search(["tea teapot"], 1, "lexical")[0][0]
    assert top.item_id == "tea-004" and top.reason == "matches 'tea teapot'"  # "tea" is kept
    assert index.search(["婴儿车"], 1, "lexical")[0][0].reason == "matches '婴儿车'"


class _Permute:
    """A stand-in text adapter: a fixed permutation of the vector's coordinates."""

    def __init__(self, dim: int) -> None:
        self.order = np.random.default_rng(0).permutation(dim)

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(vectors)[:, self.order], dtype=np.float32)


def test_queries_live_in_the_adapted_text_space_when_the_model_has_an_adapter():
    model = fit_demo()
    texts = model.catalog_.texts()
    model.adapter_ = _Permute(model.text_vectors_.shape[1])
    model.text_vectors_ = model.adapter_.transform(model.encode(texts))  # as fit does with an adapter
    np.testing.assert_allclose(model.query_vectors(texts[:3]), model.text_vectors_[:3], atol=1e-6)
    index = SearchIndex.build(model)
    for position in (2, 17, 40):
        hits = index.search([texts[position]], 1, "semantic")[0]
        assert hits[0].item_id == model.catalog_.item_ids[position]
