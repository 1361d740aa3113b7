"""Vector indexes: the ``VectorIndex`` protocol, an exact numpy index and faiss adapters.

All indexes score by inner product (cosine for the unit-norm vectors that encoders
produce). Ids are dense integers assigned ``0, 1, ...`` in order of addition. A search
returns ``(scores, ids)``, best first, padded with ``-inf`` / ``-1`` when fewer than ``k``
results exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from coldbrew.config import default_threads
from coldbrew.errors import ConfigError

__all__ = [
    "VectorIndex",
    "ExactIndex",
    "FaissIndex",
    "AutoIndex",
    "make_index",
    "INDEX_KINDS",
    "AUTO_EXACT_BELOW",
]

#: Values accepted by :func:`make_index`.
INDEX_KINDS: tuple[str, ...] = ("auto", "exact", "faiss", "hnsw")

#: ``"auto"`` searches exactly below this many vectors and with HNSW from here on.
AUTO_EXACT_BELOW = 50_000


@runtime_checkable
class VectorIndex(Protocol):
    """Inner-product top-k search over vectors with dense integer ids."""

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def add(self, vectors: np.ndarray) -> None:
        """Append float32 ``(n, dim)`` vectors; they get ids ``len(self) .. len(self) + n - 1``."""
        ...

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best vectors per query by inner product.

        Parameters
        ----------
        queries: float32 ``(q, dim)``.
        k: results per query (may exceed ``len(self)``).
        exclude: optional, one int array per query of ids never to return.

        Returns
        -------
        ``(scores, ids)``: float32 ``(q, k)`` and int64 ``(q, k)``, best first, padded with
        ``-inf`` / ``-1``.
        """
        ...


# ---------------------------------------------------------------------- validation
def _as_matrix(x: np.ndarray, dim: int, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[1] != dim:
        hint = "; a single vector is a batch of one: x.reshape(1, -1)" if arr.ndim == 1 else ""
        raise ValueError(f"{what}: expected shape (n, {dim}), got {arr.shape}{hint}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return arr


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k: expected an integer >= 0, got {k!r}")
    return int(k)


def _as_exclusions(
    exclude: Sequence[np.ndarray] | None, n_queries: int, n_vectors: int
) -> list[np.ndarray] | None:
    """One sorted int64 array of in-range ids per query, or ``None`` when nothing is excluded."""
    if exclude is None:
        return None
    if len(exclude) != n_queries:
        raise ValueError(
            f"exclude: expected one id array per query ({n_queries}), got {len(exclude)}"
        )
    out = []
    for ids in exclude:
        arr = np.asarray(ids if ids is not None else (), dtype=np.int64).reshape(-1)
        # ids the index does not hold cannot be returned anyway; dropping them also keeps
        # negative ids from wrapping around in numpy indexing
        out.append(np.unique(arr[(arr >= 0) & (arr < n_vectors)]))
    return out if any(a.size for a in out) else None


def _empty_result(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.full((n_queries, k), -np.inf, dtype=np.float32),
        np.full((n_queries, k), -1, dtype=np.int64),
    )


# ---------------------------------------------------------------------- exact
class ExactIndex:
    """Exact inner-product search in numpy (the reference implementation).

    Scores all vectors with a chunked matrix product (at most ``chunk_elements`` scores in
    memory at once) and selects the top ``k`` with ``argpartition``. Equal scores are
    ordered by lower id.

    Parameters
    ----------
    dim: vector length.
    chunk_elements: bound on the transient ``queries x vectors`` score block.
    """

    def __init__(self, dim: int, chunk_elements: int = 1 << 24) -> None:
        if dim < 1:
            raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
        self._dim = dim
        self.chunk_elements = chunk_elements
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._size = 0

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return f"ExactIndex(dim={self._dim}, size={self._size})"

    def add(self, vectors: np.ndarray) -> None:
        """Append float32 ``(n, dim)`` vectors (ids continue from ``len(self)``)."""
        x = _as_matrix(vectors, self._dim, "vectors")
        needed = self._size + len(x)
        if needed > len(self._vectors):
            grown = np.zeros((max(needed, 2 * len(self._vectors)), self._dim), dtype=np.float32)
            grown[: self._size] = self._vectors[: self._size]
            self._vectors = grown
        self._vectors[self._size : needed] = x
        self._size = needed

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`VectorIndex.search`."""
        q = _as_matrix(queries, self._dim, "queries")
        k = _check_k(k)
        n = self._size
        excl = _as_exclusions(exclude, len(q), n)
        scores, ids = _empty_result(len(q), k)
        if n == 0 or k == 0 or len(q) == 0:
            return scores, ids
        kk = min(k, n)
        vectors = self._vectors[:n]
        step = max(1, self.chunk_elements // n)
        for start in range(0, len(q), step):
            stop = min(start + step, len(q))
            block = q[start:stop] @ vectors.T
            if excl is not None:
                for row, banned in enumerate(excl[start:stop]):
                    block[row, banned] = -np.inf
            if kk < n:
                top = np.argpartition(block, n - kk, axis=1)[:, n - kk :]
            else:
                top = np.broadcast_to(np.arange(n), block.shape)
            top_scores = np.take_along_axis(block, top, axis=1)
            order = np.lexsort((top, -top_scores), axis=1)
            scores[start:stop, :kk] = np.take_along_axis(top_scores, order, axis=1)
            ids[start:stop, :kk] = np.take_along_axis(top, order, axis=1)
        # excluded ids scored -inf; they only surface when fewer than k others remain
        ids[np.isneginf(scores)] = -1
        return scores, ids


# ---------------------------------------------------------------------- faiss
class FaissIndex:
    """Adapter around faiss-cpu: exact ``IndexFlatIP`` or approximate ``IndexHNSWFlat``.

    Exclusion is done by over-fetching ``k + len(exclude[i])`` results and filtering
    (queries are grouped by fetch size, so one long exclusion list does not slow the
    others). HNSW may return fewer than ``k`` results for a query; the rest is padded.

    Parameters
    ----------
    dim: vector length.
    kind: ``"flat"`` (exact) or ``"hnsw"`` (approximate).
    hnsw_m: HNSW graph degree.
    ef_search: HNSW candidate list length at search time (higher: better recall, slower).
    ef_construction: HNSW candidate list length while adding.
    threads: faiss OpenMP threads; ``None`` means the number of CPU cores. faiss keeps this
        setting per process, so the last index created wins.
    """

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        hnsw_m: int = 32,
        ef_search: int = 128,
        ef_construction: int = 40,
        threads: int | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
        if kind not in ("flat", "hnsw"):
            raise ConfigError(f"FaissIndex kind: expected 'flat' or 'hnsw', got {kind!r}")
        try:
            import faiss
        except ImportError as exc:
            raise ImportError(
                "FaissIndex needs the package 'faiss-cpu': pip install faiss-cpu; "
                'or use index = "exact"'
            ) from exc
        faiss.omp_set_num_threads(threads if threads is not None else default_threads())
        self.kind = kind
        self._dim = dim
        self._index: Any
        if kind == "flat":
            self._index = faiss.IndexFlatIP(dim)
        else:
            self._index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efSearch = ef_search
            self._index.hnsw.efConstruction = ef_construction

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        return f"FaissIndex(dim={self._dim}, kind={self.kind!r}, size={len(self)})"

    def add(self, vectors: np.ndarray) -> None:
        """Append float32 ``(n, dim)`` vectors (ids continue from ``len(self)``)."""
        x = _as_matrix(vectors, self._dim, "vectors")
        if len(x):
            self._index.add(x)

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`VectorIndex.search`."""
        q = _as_matrix(queries, self._dim, "queries")
        k = _check_k(k)
        n = len(self)
        excl = _as_exclusions(exclude, len(q), n)
        scores, ids = _empty_result(len(q), k)
        if n == 0 or k == 0 or len(q) == 0:
            return scores, ids
        if excl is None:
            fetch = min(k, n)
            found_scores, found_ids = self._index.search(q, fetch)
            scores[:, :fetch] = found_scores
            ids[:, :fetch] = found_ids
        else:
            lengths = np.array([len(banned) for banned in excl])
            # round fetch sizes up to powers of two: few faiss calls, bounded over-fetch
            wanted = k + lengths
            fetch_sizes = np.minimum(n, 1 << np.ceil(np.log2(wanted)).astype(np.int64))
            for fetch in np.unique(fetch_sizes):
                rows = np.flatnonzero(fetch_sizes == fetch)
                found_scores, found_ids = self._index.search(q[rows], int(fetch))
                # one isin over (row, id) pairs encoded as row * n + id, not one per query
                offsets = np.arange(len(rows), dtype=np.int64) * n
                banned = np.concatenate([excl[row] + offset for row, offset in zip(rows, offsets)])
                keep = found_ids >= 0
                keep &= ~np.isin(found_ids + offsets[:, None], banned)
                rank = np.cumsum(keep, axis=1) - 1
                keep &= rank < k
                hit_rows, hit_cols = np.nonzero(keep)
                target = (rows[hit_rows], rank[hit_rows, hit_cols])
                scores[target] = found_scores[hit_rows, hit_cols]
                ids[target] = found_ids[hit_rows, hit_cols]
        # faiss pads with id -1 and score -FLT_MAX; our padding is -inf
        missing = ids < 0
        scores[missing] = -np.inf
        ids[missing] = -1
        return scores, ids


# ---------------------------------------------------------------------- auto
class AutoIndex:
    """Exact search for small collections, HNSW for large ones, decided at the first add.

    The first non-empty :meth:`add` picks :class:`ExactIndex` when it brings fewer than
    ``threshold`` vectors and ``FaissIndex(kind="hnsw")`` otherwise; later adds go to the
    same index. (At 5,000 x 512, 1,000 queries, faiss flat took ~40 ms and numpy ~50 ms,
    equal once exclusions are involved: below the threshold faiss buys nothing.)
    """

    def __init__(self, dim: int, threshold: int = AUTO_EXACT_BELOW) -> None:
        if dim < 1:
            raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
        self._dim = dim
        self.threshold = threshold
        self._inner: VectorIndex | None = None

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def inner(self) -> VectorIndex | None:
        """The index chosen at the first add (``None`` before)."""
        return self._inner

    def __len__(self) -> int:
        return len(self._inner) if self._inner is not None else 0

    def __repr__(self) -> str:
        return f"AutoIndex(dim={self._dim}, threshold={self.threshold}, inner={self._inner!r})"

    def add(self, vectors: np.ndarray) -> None:
        """Append float32 ``(n, dim)`` vectors (ids continue from ``len(self)``)."""
        if self._inner is None:
            x = _as_matrix(vectors, self._dim, "vectors")
            if len(x) == 0:
                return
            if len(x) < self.threshold:
                self._inner = ExactIndex(self._dim)
            else:
                self._inner = FaissIndex(self._dim, kind="hnsw")
            self._inner.add(x)
        else:
            self._inner.add(vectors)

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`VectorIndex.search`."""
        inner = self._inner if self._inner is not None else ExactIndex(self._dim)
        return inner.search(queries, k, exclude)


def make_index(kind: str, dim: int) -> VectorIndex:
    """Build an empty index.

    Parameters
    ----------
    kind: ``"exact"`` (numpy), ``"faiss"`` (faiss flat, exact), ``"hnsw"`` (faiss HNSW,
        approximate) or ``"auto"`` (:class:`AutoIndex`: exact below
        :data:`AUTO_EXACT_BELOW` vectors, HNSW from there on).
    dim: vector length.

    Raises
    ------
    ConfigError: for an unknown kind (the message lists the valid ones).
    """
    if kind == "exact":
        return ExactIndex(dim)
    if kind == "faiss":
        return FaissIndex(dim, kind="flat")
    if kind == "hnsw":
        return FaissIndex(dim, kind="hnsw")
    if kind == "auto":
        return AutoIndex(dim)
    raise ConfigError(f"index: unknown kind {kind!r}; expected one of: {', '.join(INDEX_KINDS)}")
