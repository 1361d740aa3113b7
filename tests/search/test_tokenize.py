"""The search tokenizer: English words, Chinese words (jieba) and the bigram fallback."""

from __future__ import annotations

import pytest

from coldbrew.search import Tokenizer


def test_english_is_lower_cased_stemmed_and_stripped_of_stop_words():
    tok = Tokenizer()
    assert tok.tokenize("Running SHOES for the Trail") == ["running", "shoe", "trail"]
    assert tok.tokenize("boxes glasses puppies bus") == ["box", "glass", "puppy", "bus"]
    assert tok.tokenize("T-Light holder, 6 pcs") == ["t", "light", "holder", "6", "pcs"]


def test_full_width_text_is_normalised():
    assert Tokenizer().tokenize("ＲＥＤ　ＷＩＮＥ") == ["red", "wine"]


def test_chinese_words_come_from_jieba_search_mode():
    tok = Tokenizer("jieba")
    tokens = tok.tokenize("安溪铁观音乌龙茶")
    # search mode also yields the shorter words inside long ones
    assert {"铁观音", "乌龙茶", "乌龙"} <= set(tokens)
    assert tok.tokenize("机械键盘 青轴") == ["机械", "键盘", "青轴"]


def test_mixed_scripts_are_split_between_runs():
    tok = Tokenizer("jieba")
    assert tok.tokenize("运动能量胶12支装 gel") == tok.tokenize("运动能量胶") + ["12"] + tok.tokenize("支装") + ["gel"]


def test_bigram_fallback_for_chinese():
    tok = Tokenizer("bigram")
    assert tok.tokenize("跑步鞋") == ["跑步", "步鞋"]
    assert tok.tokenize("茶 red") == ["茶", "red"]


def test_terms_keep_the_surface_word():
    terms = Tokenizer().terms("Green teas")
    assert terms == [("green", ["green"]), ("teas", ["tea"])]


def test_batch_in_batch_out_and_errors():
    tok = Tokenizer()
    assert tok(["tea", "", "wine"]) == [["tea"], [], ["wine"]]
    with pytest.raises(TypeError, match="batch of one"):
        tok("tea")
    with pytest.raises(ValueError, match="chinese"):
        Tokenizer("pinyin")
