"""BM25 over token lists (bm25s)."""

from __future__ import annotations

import numpy as np
import pytest

from coldbrew.search import LexicalIndex


def test_bm25_ranks_rarer_and_repeated_terms_higher_and_skips_non_matches():
    index = LexicalIndex()
    index.add([["red", "wine"], ["white", "wine"], ["red", "red", "apple"], ["tea"]])
    scores, ids = index.search([["red", "wine"], ["tea", "unknown"], ["nothing"]], k=4)
    assert ids[0, 0] == 0  # both terms
    assert set(ids[0, :3].tolist()) == {0, 1, 2} and ids[0, 3] == -1  # tea shares no token
    assert np.all(np.diff(scores[0, :3]) <= 0)
    assert ids[1].tolist() == [3, -1, -1, -1]
    assert ids[2].tolist() == [-1] * 4 and scores[2].tolist() == [0.0] * 4


def test_adding_documents_rebuilds_the_index():
    index = LexicalIndex()
    assert index.search([["tea"]], 2)[1].tolist() == [[-1, -1]]
    index.add([["tea"]])
    index.add([["green", "tea"]])
    assert len(index) == 2 and index.tokens(1) == ["green", "tea"]
    assert index.search([["green"]], 2)[1].tolist() == [[1, -1]]


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="k1"):
        LexicalIndex(k1=-1)
    with pytest.raises(ValueError, match="k must"):
        LexicalIndex().search([["a"]], 0)


def test_replace_changes_a_documents_tokens():
    index = LexicalIndex()
    index.add([["red", "wine"], ["green", "tea"]])
    assert index.search([["oolong"]], 1)[1].tolist() == [[-1]]
    index.replace([1], [["oolong", "tea"]])
    assert not index.current
    assert index.search([["oolong"]], 1)[1].tolist() == [[1]] and index.current


def test_large_indexes_rebuild_in_the_background():
    index = LexicalIndex(background_above=2)
    index.add([["red", "wine"], ["green", "tea"], ["tea", "pot"]])
    assert index.search([["tea"]], 3)[1][0].tolist()[:2] == [1, 2]  # first build: synchronous
    index.add([["oolong", "tea"]])
    index.search([["oolong"]], 2)  # the previous matrix answers while the new one is built
    index.wait()
    assert index.current
    assert index.search([["oolong"]], 2)[1].tolist() == [[3, -1]]
