"""Tests of the vector indexes: a hand-checked fixture, faiss vs the numpy reference, invariants."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coldbrew.errors import ConfigError
from coldbrew.retrieval import (
    AutoIndex,
    ExactIndex,
    FaissIndex,
    VectorIndex,
    make_index,
)

pytest.importorskip("faiss")

# query (1, 0) scores these four vectors 1.0, 0.0, 0.6, -1.0 -> ids 0, 2, 1, 3
VECTORS = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]], dtype=np.float32)
QUERY = np.array([[1.0, 0.0]], dtype=np.float32)

FACTORIES: dict[str, Callable[[int], VectorIndex]] = {
    "exact": ExactIndex,
    "flat": lambda dim: FaissIndex(dim, kind="flat"),
    "hnsw": lambda dim: FaissIndex(dim, kind="hnsw"),
    "auto": AutoIndex,
}


@pytest.fixture(params=list(FACTORIES))
def make(request: pytest.FixtureRequest) -> Callable[[int], VectorIndex]:
    return FACTORIES[request.param]


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---------------------------------------------------------------------- every index
def test_hand_checked_ranking(make: Callable[[int], VectorIndex]) -> None:
    index = make(2)
    index.add(VECTORS)
    assert isinstance(index, VectorIndex) and len(index) == 4 and index.dim == 2
    scores, ids = index.search(QUERY, 3)
    np.testing.assert_array_equal(ids, [[0, 2, 1]])
    np.testing.assert_allclose(scores, [[1.0, 0.6, 0.0]], atol=1e-6)
    assert scores.dtype == np.float32 and ids.dtype == np.int64


def test_k_larger_than_n_is_padded(make: Callable[[int], VectorIndex]) -> None:
    index = make(2)
    index.add(VECTORS)
    scores, ids = index.search(QUERY, 6)
    np.testing.assert_array_equal(ids, [[0, 2, 1, 3, -1, -1]])
    np.testing.assert_allclose(scores[0, :4], [1.0, 0.6, 0.0, -1.0], atol=1e-6)
    assert np.isneginf(scores[0, 4:]).all()


def test_exclusion(make: Callable[[int], VectorIndex]) -> None:
    index = make(2)
    index.add(VECTORS)
    queries = np.vstack([QUERY, QUERY, QUERY])
    exclude = [np.array([0, 2]), np.array([], dtype=np.int64), np.array([0, 1, 2, 3, 99, -1])]
    scores, ids = index.search(queries, 3, exclude=exclude)
    np.testing.assert_array_equal(ids, [[1, 3, -1], [0, 2, 1], [-1, -1, -1]])
    assert np.isneginf(scores[0, 2]) and np.isneginf(scores[2]).all()
    with pytest.raises(ValueError, match="one id array per query"):
        index.search(queries, 3, exclude=exclude[:2])


def test_empty_index_and_k_zero(make: Callable[[int], VectorIndex]) -> None:
    index = make(2)
    scores, ids = index.search(np.vstack([QUERY, QUERY]), 3)
    assert len(index) == 0
    np.testing.assert_array_equal(ids, -1)
    assert np.isneginf(scores).all() and scores.shape == (2, 3)
    index.add(VECTORS)
    scores, ids = index.search(QUERY, 0)
    assert scores.shape == ids.shape == (1, 0)


def test_ids_continue_across_adds(make: Callable[[int], VectorIndex]) -> None:
    index = make(2)
    index.add(VECTORS[:2])
    index.add(VECTORS[2:])
    _, ids = index.search(np.array([[-1.0, 0.0]], dtype=np.float32), 1)
    assert len(index) == 4 and ids[0, 0] == 3


def test_bad_input_is_rejected(make: Callable[[int], VectorIndex]) -> None:
    index = make(2)
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        index.add(np.array([1.0, 0.0], dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        index.add(np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.array([[np.nan, 0.0]], dtype=np.float32))
    index.add(VECTORS)
    with pytest.raises(ValueError, match="k"):
        index.search(QUERY, -1)


# ---------------------------------------------------------------------- faiss vs exact
def test_exact_ties_go_to_the_lower_id() -> None:
    index = ExactIndex(2)
    index.add(np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=np.float32))
    _, ids = index.search(QUERY, 4)
    np.testing.assert_array_equal(ids, [[1, 3, 0, 2]])


def test_exact_chunking_does_not_change_results() -> None:
    rng = np.random.default_rng(1)
    x, q = unit_rows(rng, 300, 8), unit_rows(rng, 50, 8)
    whole, chunked = ExactIndex(8), ExactIndex(8, chunk_elements=700)  # 2 queries per block
    whole.add(x)
    chunked.add(x)
    exclude = [rng.choice(300, size=5) for _ in range(50)]
    whole_scores, whole_ids = whole.search(q, 7, exclude)
    chunked_scores, chunked_ids = chunked.search(q, 7, exclude)
    np.testing.assert_array_equal(chunked_ids, whole_ids)
    # BLAS may round the last bit differently for a different block shape
    np.testing.assert_allclose(chunked_scores, whole_scores, atol=1e-6)


def test_faiss_flat_equals_exact() -> None:
    rng = np.random.default_rng(0)
    x, q = unit_rows(rng, 2000, 32), unit_rows(rng, 200, 32)
    exact, flat = ExactIndex(32), FaissIndex(32, kind="flat")
    exact.add(x)
    flat.add(x)
    exclude = [rng.choice(2000, size=int(rng.integers(0, 40)), replace=False) for _ in range(200)]
    exact_scores, exact_ids = exact.search(q, 10, exclude)
    flat_scores, flat_ids = flat.search(q, 10, exclude)
    np.testing.assert_array_equal(flat_ids, exact_ids)
    np.testing.assert_allclose(flat_scores, exact_scores, atol=1e-5)


def test_hnsw_recall_against_exact() -> None:
    rng = np.random.default_rng(0)
    x, q = unit_rows(rng, 2000, 32), unit_rows(rng, 200, 32)
    exact, hnsw = ExactIndex(32), FaissIndex(32, kind="hnsw")
    exact.add(x)
    hnsw.add(x)
    exclude = [rng.choice(2000, size=20, replace=False) for _ in range(200)]
    _, truth = exact.search(q, 10, exclude)
    _, found = hnsw.search(q, 10, exclude)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])
    assert recall >= 0.95
    assert not any(set(row) & set(banned) for row, banned in zip(found, exclude))


def test_missing_faiss_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes "import faiss" fail
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        FaissIndex(4)


# ---------------------------------------------------------------------- factory
def test_make_index_kinds() -> None:
    assert isinstance(make_index("exact", 4), ExactIndex)
    flat, hnsw = make_index("faiss", 4), make_index("hnsw", 4)
    assert isinstance(flat, FaissIndex) and flat.kind == "flat"
    assert isinstance(hnsw, FaissIndex) and hnsw.kind == "hnsw"
    assert isinstance(make_index("auto", 4), AutoIndex)
    with pytest.raises(ConfigError, match="auto, exact, faiss, hnsw"):
        make_index("annoy", 4)


def test_auto_decides_at_the_first_add() -> None:
    small, large = AutoIndex(4, threshold=10), AutoIndex(4, threshold=10)
    rng = np.random.default_rng(0)
    small.add(unit_rows(rng, 9, 4))
    large.add(unit_rows(rng, 10, 4))
    assert isinstance(small.inner, ExactIndex)
    assert isinstance(large.inner, FaissIndex) and large.inner.kind == "hnsw"
    small.add(unit_rows(rng, 30, 4))  # stays exact
    assert isinstance(small.inner, ExactIndex) and len(small) == 39


# ---------------------------------------------------------------------- invariants
@st.composite
def search_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, list[np.ndarray]]:
    n = draw(st.integers(0, 25))
    n_queries = draw(st.integers(1, 4))
    # small integers: many ties, and exact float32 products
    ints = st.integers(-3, 3)
    x = np.array(draw(st.lists(st.lists(ints, min_size=3, max_size=3), min_size=n, max_size=n)))
    q = np.array(
        draw(
            st.lists(st.lists(ints, min_size=3, max_size=3), min_size=n_queries, max_size=n_queries)
        )
    )
    k = draw(st.integers(0, 30))
    ids = st.lists(st.integers(-2, 30), max_size=10)
    exclude = [np.array(draw(ids), dtype=np.int64) for _ in range(n_queries)]
    return x.reshape(n, 3).astype(np.float32), q.astype(np.float32), k, exclude


@pytest.mark.parametrize("kind", ["exact", "flat"])
@settings(max_examples=150, deadline=None)
@given(case=search_cases())
def test_search_invariants(
    kind: str, case: tuple[np.ndarray, np.ndarray, int, list[np.ndarray]]
) -> None:
    x, q, k, exclude = case
    index = FACTORIES[kind](3)
    index.add(x)
    scores, ids = index.search(q, k, exclude)
    assert scores.shape == ids.shape == (len(q), k)
    brute = q @ x.T
    for row in range(len(q)):
        valid = ids[row] >= 0
        n_valid = int(valid.sum())
        assert valid[:n_valid].all()  # padding only at the end
        assert np.isneginf(scores[row, ~valid]).all()
        found, found_scores = ids[row, valid], scores[row, valid]
        assert len(set(found.tolist())) == n_valid  # unique
        assert not set(found.tolist()) & set(exclude[row].tolist())  # never excluded
        assert np.all(np.diff(found_scores) <= 0)  # best first
        allowed = np.setdiff1d(np.arange(len(x)), exclude[row])
        assert n_valid == min(k, len(allowed))  # exact indexes fill k when they can
        best = np.sort(brute[row, allowed])[::-1][:n_valid]
        np.testing.assert_allclose(found_scores, best)
        np.testing.assert_allclose(found_scores, brute[row, found])
