"""One reason per shown item (``coldbrew.reasons``), on a hand-made model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

from coldbrew.data.idmap import IdMap
from coldbrew.reasons import _matching_words, reasons, title
from coldbrew.requests import HistoryEvent, Request
from coldbrew.scoring import SOURCES, Batch


def _model():
    ids = ["mug", "cup", "kettle", "oolong", "x" * 3]
    titles = np.array(["Blue mug", "Blue cup", "Steel kettle", "Oolong tea", ""], dtype=object)
    categories = np.array(["Home > Kitchen", "Home > Kitchen", "Home > Kitchen", "Food > Tea", ""], dtype=object)
    cooc = sp.csr_matrix(np.array([[0, 0.9, 0, 0, 0], [0.9, 0, 0, 0, 0], [0] * 5, [0] * 5, [0] * 5], np.float32))
    factors = np.eye(5, 3, dtype=np.float32)
    return SimpleNamespace(
        catalog_=SimpleNamespace(titles=titles, categories=categories),
        item_map_=IdMap(ids, kind="item"),
        item_warm_=np.array([True, True, True, False, True]),
        cooccurrence_=cooc, item_factors_=factors, text_vectors_=np.eye(5, 4, dtype=np.float32),
    )


def _batch(history_items: list[int], text: bool = False) -> Batch:
    n_items = 5
    strengths = sp.csr_matrix((np.ones(len(history_items), np.float32), (np.zeros(len(history_items), int),
                               history_items)), shape=(1, n_items))
    return Batch(strengths, np.array([len(history_items)]), np.zeros((1, 4), np.float32), np.array([text]),
                 np.ones((1, n_items), bool), np.array([-1]))


def _parts(strongest: list[str]) -> np.ndarray:
    """(len(SOURCES), k): each item's named source strongest."""
    parts = np.full((len(SOURCES), len(strongest)), 0.1, np.float32)
    for n, name in enumerate(strongest):
        parts[SOURCES.index(name), n] = 1.0
    return parts


def test_each_source_gives_its_own_reason_with_the_history_item_behind_it():
    model = _model()
    req = Request("r", "u", history=(HistoryEvent("mug", 1, "purchase"),))
    got = reasons(model, req, _batch([0]), 0, np.array([1, 2, 3]), _parts(["cooccurrence", "popularity", "popularity"]))
    assert got == [
        "often bought with Blue mug, which you bought",
        "popular in Kitchen right now",
        "new in Tea",  # an item without interactions on the popularity source
    ]
    got = reasons(model, req, _batch([0]), 0, np.array([1, 3]), _parts(["cf", "cf"]))
    assert got == ["because you bought Blue mug", "new arrival like Blue mug, which you bought"]


def test_the_words_of_the_request_are_quoted_and_similar_items_have_their_own_wording():
    model = _model()
    req = Request("r", "u", text="oolong tea please")
    assert reasons(model, req, _batch([], text=True), 0, np.array([3]), _parts(["content"])) == \
        ["matches 'oolong tea' in your interests"]
    similar = Request("s", "", history=(HistoryEvent("mug", 1, "view"),))
    assert reasons(model, similar, _batch([0]), 0, np.array([1]), _parts(["cooccurrence"]), mode="similar") == \
        ["often bought together"]


def test_a_source_with_no_weight_for_an_item_is_never_its_reason():
    model = _model()
    parts = np.zeros((len(SOURCES), 1), np.float32)
    parts[SOURCES.index("popularity"), 0] = -0.5  # the only non-zero part, though negative
    req = Request("r", "u", history=(HistoryEvent("mug", 1, "purchase"),))
    assert reasons(model, req, _batch([0]), 0, np.array([2]), parts) == ["popular in Kitchen right now"]


def test_title_falls_back_to_the_id_and_is_clipped():
    model = _model()
    assert title(model, 4) == "xxx"
    model.catalog_.titles[0] = "A" * 80
    assert title(model, 0) == "A" * 57 + "..."


def test_matching_words_in_english_and_chinese():
    assert _matching_words("Premium green TEA for me", "Green Tea Premium Box") == "premium green tea"
    assert _matching_words("我想要绿茶", "特级绿茶礼盒") == "绿茶"
    assert _matching_words("a to", "a to b") == ""  # words of two letters or fewer do not count
