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
    NormOrderedIndex,
    VectorIndex,
    ivf_lists,
    load_index,
    make_index,
    save_index,
)

pytest.importorskip("faiss")

# query (1, 0) scores these four vectors 1.0, 0.0, 0.6, -1.0 -> ids 0, 2, 1, 3
VECTORS = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]], dtype=np.float32)
QUERY = np.array([[1.0, 0.0]], dtype=np.float32)

FACTORIES: dict[str, Callable[[int], VectorIndex]] = {
    "exact": ExactIndex,
    "norm": NormOrderedIndex,
    "norm-blocks": lambda dim: NormOrderedIndex(dim, block=1),  # many blocks, merges of the tail
    "flat": lambda dim: FaissIndex(dim, kind="flat"),
    "hnsw": lambda dim: FaissIndex(dim, kind="hnsw"),
    "ivf": lambda dim: FaissIndex(dim, kind="ivf"),  # float lists at this dim: exact scores
    "auto": AutoIndex,
    "auto-ivf": lambda dim: AutoIndex(dim, threshold=0),
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


def test_norm_ordered_skips_short_vectors_and_stays_exact() -> None:
    # ALS-like factors: a few long vectors (popular items), many short ones
    rng = np.random.default_rng(4)
    x = (unit_rows(rng, 40_000, 16) * rng.pareto(1.5, (40_000, 1)).astype(np.float32)).astype(np.float32)
    q = x[rng.integers(0, 40_000, 30)] + 0.1 * unit_rows(rng, 30, 16)
    exact, norm = ExactIndex(16), NormOrderedIndex(16, block=1024)
    exact.add(x[:30_000])
    norm.add(x[:30_000])
    exact.add(x[30_000:])
    norm.add(x[30_000:])  # a tail of 10,000, merged (more than 1/16 of the sorted part)
    exclude = [rng.choice(40_000, size=12, replace=False) for _ in range(30)]
    norm.scanned = 0
    norm_scores, norm_ids = norm.search(q, 50, exclude)
    exact_scores, exact_ids = exact.search(q, 50, exclude)
    np.testing.assert_array_equal(norm_ids, exact_ids)
    np.testing.assert_allclose(norm_scores, exact_scores, rtol=1e-5)
    assert norm.scanned < 0.25 * 30 * 40_000  # most vectors were never scored
    zero_scores, zero_ids = norm.search(np.zeros((1, 16), np.float32), 3, [np.array([1])])
    np.testing.assert_array_equal(zero_ids, [[0, 2, 3]])  # all tie at 0: the lowest ids
    np.testing.assert_array_equal(zero_scores, 0.0)


def test_pq4_codes_refined_with_the_full_vectors() -> None:
    rng = np.random.default_rng(5)
    x, q = clustered_rows(rng, 6000, 160), clustered_rows(rng, 60, 160)
    exact = ExactIndex(160)
    exact.add(x)
    pq = FaissIndex(160, kind="ivf", codec="pq4")
    pq.add(x)
    assert pq.codec == "pq4" and "FastScan" in type(pq.faiss_index).__name__
    exclude = [rng.choice(6000, size=10, replace=False) for _ in range(60)]
    truth_scores, truth = exact.search(q, 20, exclude)
    rough_scores, rough = pq.search(q, 20, exclude)
    pq.refine_with(x)
    scores, found = pq.search(q, 20, exclude)
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(truth, found)])
    rough_recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(truth, rough)])
    assert recall >= 0.95 and recall >= rough_recall
    np.testing.assert_allclose(scores, np.einsum("nd,nkd->nk", q, x[found]), rtol=1e-5)  # exact scores
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert not any(set(row) & set(banned) for row, banned in zip(found, exclude))
    with pytest.raises(ValueError, match="refine_with"):
        pq.refine_with(x[:, :10])
    few = FaissIndex(160, kind="ivf", codec="pq4")
    few.add(x[:500])  # too few to train 4-bit codes: 8-bit ones
    assert few.codec == "sq8"


def test_auto_uses_refined_pq4_codes_when_given_the_vectors(tmp_path) -> None:
    rng = np.random.default_rng(6)
    x, q = clustered_rows(rng, 3000, 200), clustered_rows(rng, 10, 200)
    auto = AutoIndex(200, threshold=1000)
    auto.refine_with(x)
    auto.add(x)
    assert auto.inner.codec == "pq4"
    meta = save_index(auto, tmp_path / "c.faiss")
    with pytest.raises(ValueError, match="dim"):
        load_index(tmp_path / "c.faiss", **meta)
    loaded = load_index(tmp_path / "c.faiss", dim=200, **meta)
    assert loaded.codec == "pq4" and loaded.dim == 200 and len(loaded) == 3000
    loaded.refine_with(x)
    for a, b in zip(auto.search(q, 10), loaded.search(q, 10)):
        np.testing.assert_array_equal(a, b)


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


def clustered_rows(rng: np.random.Generator, n: int, dim: int, clusters: int = 40) -> np.ndarray:
    """Unit vectors around ``clusters`` centres: what encoders give, unlike uniform noise."""
    centres = unit_rows(rng, clusters, dim)
    x = centres[rng.integers(0, clusters, n)] + 0.35 * unit_rows(rng, n, dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("codec", ["sq8", "flat"])
def test_ivf_recall_and_exclusion_against_exact(codec: str) -> None:
    rng = np.random.default_rng(0)
    x = clustered_rows(rng, 4000, 160)
    q = clustered_rows(rng, 100, 160)
    exact, ivf = ExactIndex(160), FaissIndex(160, kind="ivf", codec=codec)
    exact.add(x)
    ivf.add(x)
    assert ivf.nlist == 63 and ivf.codec == codec  # ivf_lists(4000): about sqrt(n)
    exclude = [rng.choice(4000, size=15, replace=False) for _ in range(100)]
    _, truth = exact.search(q, 20, exclude)
    scores, found = ivf.search(q, 20, exclude)
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(truth, found)])
    assert recall >= 0.95
    assert not any(set(row) & set(banned) for row, banned in zip(found, exclude))
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_ivf_finds_the_best_inner_products_of_vectors_of_different_norms() -> None:
    # CF factors: popular items have long vectors, so the best inner product is often not
    # the nearest angle; the lift onto a sphere keeps IVF's recall
    rng = np.random.default_rng(3)
    x = clustered_rows(rng, 5000, 32) * rng.lognormal(0.0, 0.6, (5000, 1)).astype(np.float32)
    q = clustered_rows(rng, 100, 32) * rng.lognormal(0.0, 0.6, (100, 1)).astype(np.float32)
    exact, ivf = ExactIndex(32), FaissIndex(32, kind="ivf")
    exact.add(x)
    ivf.add(x)
    truth_scores, truth = exact.search(q, 20)
    scores, found = ivf.search(q, 20)
    assert np.mean([len(set(a) & set(b)) / 20 for a, b in zip(truth, found)]) >= 0.95
    np.testing.assert_allclose(scores[:, 0], truth_scores[:, 0], rtol=1e-4)  # float lists: exact scores


def test_ivf_appends_without_retraining_and_keeps_earlier_ids() -> None:
    rng = np.random.default_rng(1)
    x = clustered_rows(rng, 2000, 32)
    index = FaissIndex(32, kind="ivf")
    index.add(x)
    raw, nlist = index.faiss_index, index.nlist
    _, before = index.search(x[:50], 5)
    extra = clustered_rows(rng, 300, 32)
    index.add(extra)
    assert index.faiss_index is raw and index.nlist == nlist and len(index) == 2300
    _, ids = index.search(extra[-3:], 1)  # each new vector finds itself, under its new id
    np.testing.assert_array_equal(ids[:, 0], [2297, 2298, 2299])
    _, after = index.search(x[:50], 5)
    kept = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(before, after)])
    assert kept >= 0.9  # earlier vectors keep their ids (new ones may outrank some)


def test_ivf_lists_grow_with_the_square_root() -> None:
    assert ivf_lists(0) == 1 and ivf_lists(10) == 1
    assert ivf_lists(100_000) == 316 and ivf_lists(1_000_000) == 1000


def test_saved_index_loads_with_identical_results(tmp_path) -> None:
    rng = np.random.default_rng(2)
    x, q = clustered_rows(rng, 3000, 200), clustered_rows(rng, 20, 200)
    auto = AutoIndex(200, threshold=1000)
    auto.add(x)
    path = tmp_path / "content.faiss"
    meta = save_index(auto, path)
    assert meta == {"kind": "ivf", "max_norm": auto.inner.max_norm}
    loaded = load_index(path, **meta)
    assert loaded.kind == "ivf" and loaded.codec == "sq8" and len(loaded) == 3000
    exclude = [np.arange(r, r + 3) for r in range(20)]
    for a, b in zip(auto.search(q, 10, exclude), loaded.search(q, 10, exclude)):
        np.testing.assert_array_equal(a, b)
    wrapped = AutoIndex(200, inner=loaded)
    wrapped.add(x[:5])  # appends go to the loaded index
    assert wrapped.inner is loaded and len(loaded) == 3005
    small = AutoIndex(200)
    small.add(x[:10])
    assert save_index(small, tmp_path / "small.faiss") is None  # exact: rebuilt from the vectors
    assert not (tmp_path / "small.faiss").exists()
    (tmp_path / "junk.faiss").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not a readable faiss index"):
        load_index(tmp_path / "junk.faiss")
    with pytest.raises(ValueError, match="max_norm"):
        load_index(path)


def test_missing_faiss_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes "import faiss" fail
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        FaissIndex(4)


# ---------------------------------------------------------------------- factory
def test_make_index_kinds() -> None:
    assert isinstance(make_index("exact", 4), ExactIndex)
    flat, hnsw, ivf = make_index("faiss", 4), make_index("hnsw", 4), make_index("ivf", 4, nprobe=3)
    assert isinstance(flat, FaissIndex) and flat.kind == "flat"
    assert isinstance(hnsw, FaissIndex) and hnsw.kind == "hnsw"
    assert isinstance(ivf, FaissIndex) and ivf.kind == "ivf" and ivf.nprobe == 3
    auto = make_index("auto", 4, exact_below=7)
    assert isinstance(auto, AutoIndex) and auto.threshold == 7
    with pytest.raises(ConfigError, match="auto, exact, norm, faiss, hnsw, ivf"):
        make_index("annoy", 4)
    with pytest.raises(ConfigError, match="nprobe must be >= 1"):
        make_index("ivf", 4, nprobe=0)
    with pytest.raises(ConfigError, match="exact_below must be >= 0"):
        make_index("auto", 4, exact_below=-1)
    with pytest.raises(ConfigError, match="codec"):
        FaissIndex(4, kind="ivf", codec="pq")
    with pytest.raises(ConfigError, match="'flat', 'hnsw' or 'ivf'"):
        FaissIndex(4, kind="ivfpq")


def test_auto_decides_at_the_first_add() -> None:
    small, large = AutoIndex(4, threshold=10), AutoIndex(4, threshold=10)
    rng = np.random.default_rng(0)
    small.add(unit_rows(rng, 9, 4))
    large.add(unit_rows(rng, 10, 4))
    assert isinstance(small.inner, ExactIndex)
    assert isinstance(large.inner, NormOrderedIndex)  # 4-d: exact, in order of decreasing norm
    text = AutoIndex(200, threshold=10)
    text.add(unit_rows(rng, 50, 200))
    assert isinstance(text.inner, FaissIndex) and text.inner.kind == "ivf" and text.inner.codec == "sq8"
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


@pytest.mark.parametrize("kind", ["exact", "norm-blocks", "flat"])
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


@settings(max_examples=100, deadline=None)
@given(case=search_cases(), block=st.integers(1, 8), split=st.integers(0, 25))
def test_norm_ordered_equals_exact(case, block: int, split: int) -> None:
    # same ids (ties to the lower id) and scores as the reference, however the vectors were
    # added (one batch, or a sorted part and a tail) and whatever the block size
    x, q, k, exclude = case
    exact, norm = ExactIndex(3), NormOrderedIndex(3, block=block)
    exact.add(x)
    norm.add(x[:split])
    norm.add(x[split:])
    exact_scores, exact_ids = exact.search(q, k, exclude)
    norm_scores, norm_ids = norm.search(q, k, exclude)
    np.testing.assert_array_equal(norm_ids, exact_ids)
    np.testing.assert_array_equal(norm_scores, exact_scores)
