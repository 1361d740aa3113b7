"""Vector indexes: the ``VectorIndex`` protocol, an exact numpy index and faiss adapters.

One file (about 800 lines): the three indexes share the validation helpers (one search
prologue, :func:`_search_inputs`) and the exclusion and tie-breaking contract, and each is tested against ``ExactIndex`` here; a split into
``exact.py`` / ``faiss.py`` is the next step if it grows further.

All indexes score by inner product (cosine for the unit-norm vectors that encoders
produce). Ids are dense integers assigned ``0, 1, ...`` in order of addition. A search
returns ``(scores, ids)``, best first, padded with ``-inf`` / ``-1`` when fewer than ``k``
results exist.

Which index for which size (measured on 2 cores, hashing-encoder vectors of synthetic titles
in 400 categories, ``benchmarks/run_retrieval_scale.py``):

* below :data:`AUTO_EXACT_BELOW` vectors: exact numpy search (a few ms per query);
* from there on, vectors of more than 128 dimensions (text): faiss IVF (``ivf``), about
  ``sqrt(n)`` lists, ``nprobe = 32``; when the owner lends its full-precision vectors
  (the recommender does), 4-bit fast-scan PQ codes whose candidates are re-scored exactly
  (``IVF{nlist},PQ{d/2}x4fs``, refine 8: 1M x 512 text vectors take 140 MB, 2 ms a query,
  0.991 of the exact top 20 among 256 returned), otherwise 8-bit scalar codes
  (``IVF{nlist},SQ8``: 523 MB, ~22 ms, 0.993); shorter ones (CF factors): exact search in
  order of decreasing norm (``norm``, :class:`NormOrderedIndex`: 1M x 64 take 256 MB, a
  median 0.5 ms a query instead of 23 ms for a full scan; IVF over ALS factors found only
  0.59 of the exact top 20 at 100k). HNSW over floats (``hnsw``) costs
  2.3 GB per 1M 512-d vectors and many minutes to build on 2 cores; HNSW over SQ8 codes
  reached only 0.74 recall@20 at 100k on the same vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from coldbrew.config import default_threads
from coldbrew.errors import ConfigError

__all__ = [
    "VectorIndex",
    "ExactIndex",
    "NormOrderedIndex",
    "FaissIndex",
    "AutoIndex",
    "make_index",
    "INDEX_KINDS",
    "AUTO_EXACT_BELOW",
    "DEFAULT_NPROBE",
    "ivf_lists",
    "save_index",
    "load_index",
]

#: Values accepted by :func:`make_index`.
INDEX_KINDS: tuple[str, ...] = ("auto", "exact", "norm", "faiss", "hnsw", "ivf")

#: ``"auto"`` searches exactly below this many vectors and with faiss IVF from here on.
AUTO_EXACT_BELOW = 50_000

#: IVF lists scanned per query (of about ``sqrt(n)``): recall@20 >= 0.97 at 100k and 1M.
DEFAULT_NPROBE = 32

#: Vectors longer than this are stored in IVF lists as 8-bit codes (``SQ8``), shorter as floats.
_IVF_FLOAT_DIM = 128

#: How IVF lists may store vectors (see :class:`FaissIndex`).
_CODECS = ("flat", "sq8", "pq4")

#: ``"pq4"`` candidates fetched per result when re-scored with full-precision vectors.
DEFAULT_REFINE = 8

#: A first batch smaller than this cannot train ``"pq4"`` codes well: it gets ``"sq8"`` (or floats).
_PQ_MIN_TRAIN = 1024


def ivf_lists(n: int) -> int:
    """IVF lists for ``n`` training vectors: about ``sqrt(n)``, with >= 39 vectors per list.

    ``sqrt(n)`` (1,000 at 1M) rather than the ``4 sqrt(n)`` of the faiss guidelines: on 2
    cores it trains in 5 s instead of 18 s and adds 1M vectors in 13 s instead of 30 s, at
    the same recall with ``nprobe`` 32 (0.978 against 0.975 recall@20 at 1M x 512).
    """
    return max(1, min(int(round(float(np.sqrt(max(n, 0))))), n // 39))


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


def _search_inputs(queries, dim: int, k, exclude, n: int):
    """What every ``search`` starts with: validated ``(queries, k, exclusions)`` and the
    padded empty result ``(scores, ids)`` it fills."""
    q = _as_matrix(queries, dim, "queries")
    k = _check_k(k)
    excl = _as_exclusions(exclude, len(q), n)
    scores, ids = _empty_result(len(q), k)
    return q, k, excl, scores, ids


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
    ordered by lower id (also at the ``k``-th place: of tied candidates, the lowest ids).

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
        n = self._size
        q, k, excl, scores, ids = _search_inputs(queries, self._dim, k, exclude, n)
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
            top_scores = np.take_along_axis(top_scores, order, axis=1)
            top = np.take_along_axis(top, order, axis=1)
            if kk < n:  # ties of the k-th score: argpartition kept any of them, keep the lowest ids
                tied = np.flatnonzero((block >= top_scores[:, -1:]).sum(axis=1) > kk)
                for row in tied:
                    top_scores[row], top[row] = _top_by_score(block[row], np.arange(n), kk)
            scores[start:stop, :kk] = top_scores
            ids[start:stop, :kk] = top
        # excluded ids scored -inf; they only surface when fewer than k others remain
        ids[np.isneginf(scores)] = -1
        return scores, ids


class NormOrderedIndex:
    """Exact inner-product search that scans vectors in order of decreasing norm and stops early.

    A vector ``v`` cannot score more than ``|q| |v|`` against a query ``q`` (Cauchy-Schwarz).
    The vectors are kept sorted by decreasing norm, in blocks; a query scans blocks until
    its ``k``-th best score so far is larger than ``|q|`` times the largest norm left, and
    the rest is skipped: the answer is the exact one (the same ids and scores as
    :class:`ExactIndex`, ties ordered by lower id), only cheaper. What it saves depends on
    how unequal the norms are. ALS item factors are very unequal (a popular item's vector is
    long, one bought twice is short): over the 1M x 64 factors of the synthetic Zipf shop a
    request scanned a median of 33k vectors, 0.5 ms instead of the 23 ms of a full exact
    scan (``benchmarks/run_retrieval_scale.py``). Vectors of equal norms (unit text
    vectors) gain nothing: for them the worst case is a full scan, as exact search.

    Vectors added after the last sort go to a tail that every query scans in full; the tail
    is merged into the sorted part once it exceeds ``1/16`` of it (at least ``4 * block``
    vectors), so appending costs an amortised sort.

    Parameters
    ----------
    dim: vector length.
    block: vectors scored per step (the first step of a query takes ``block``, then each
        step doubles, up to ``16 * block``).
    """

    def __init__(self, dim: int, block: int = 4096) -> None:
        if dim < 1:
            raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
        if block < 1:
            raise ValueError(f"block: expected an integer >= 1, got {block!r}")
        self._dim = dim
        self.block = int(block)
        self._vectors = np.zeros((0, dim), dtype=np.float32)  # sorted by decreasing norm
        self._ids = np.zeros(0, dtype=np.int64)
        self._norms = np.zeros(0, dtype=np.float64)
        self._tail = ExactIndex(dim)  # ids from len(self._ids) on, in order of addition
        self.scanned = 0  # vectors scored by searches so far (the sorted part; a statistic)

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return len(self._ids) + len(self._tail)

    def __repr__(self) -> str:
        return f"NormOrderedIndex(dim={self._dim}, size={len(self)})"

    def add(self, vectors: np.ndarray) -> None:
        """Append float32 ``(n, dim)`` vectors (ids continue from ``len(self)``)."""
        x = _as_matrix(vectors, self._dim, "vectors")
        if not len(x):
            return
        self._tail.add(x)
        if len(self._tail) > max(4 * self.block, len(self._ids) // 16):
            self._merge()

    def _merge(self) -> None:
        tail = self._tail._vectors[: len(self._tail)]
        vectors = np.concatenate([self._vectors, tail]) if len(self._ids) else tail
        ids = np.concatenate([self._ids, np.arange(len(self._ids), len(self._ids) + len(tail), dtype=np.int64)])
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
        order = np.lexsort((ids, -norms))
        self._vectors = np.ascontiguousarray(vectors[order])
        self._ids, self._norms = ids[order], norms[order]
        self._tail = ExactIndex(self._dim)

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`VectorIndex.search`."""
        n = len(self)
        q, k, excl, scores, ids = _search_inputs(queries, self._dim, k, exclude, n)
        if n == 0 or k == 0 or len(q) == 0:
            return scores, ids
        # excluded ids are filtered at the end: fetch enough that k others remain
        extra = np.zeros(len(q), dtype=np.int64) if excl is None else np.array([len(e) for e in excl])
        fetch = np.minimum(k + extra, n)
        q_norms = np.sqrt(np.einsum("ij,ij->i", q, q, dtype=np.float64))
        best_s = [np.zeros(0, np.float32) for _ in range(len(q))]
        best_i = [np.zeros(0, np.int64) for _ in range(len(q))]
        if len(self._tail):  # the unsorted tail first: every query scans it whole
            t_scores, t_ids = self._tail.search(q, int(min(fetch.max(), len(self._tail))))
            for r in range(len(q)):
                keep = t_ids[r] >= 0
                best_s[r], best_i[r] = t_scores[r, keep], t_ids[r, keep] + len(self._ids)
        zero = np.flatnonzero(q_norms == 0)
        for r in zero:  # every score is 0: the lowest ids, without a scan
            best_i[r] = np.arange(fetch[r], dtype=np.int64)
            best_s[r] = np.zeros(fetch[r], dtype=np.float32)
        active = np.flatnonzero(q_norms > 0)
        start, step, n_sorted = 0, self.block, len(self._ids)
        while len(active) and start < n_sorted:
            # the largest norm left bounds every score left (a hair above: float rounding)
            bound = q_norms[active] * self._norms[start] * (1 + 1e-5) + 1e-12
            kth = np.array([best_s[r][fetch[r] - 1] if len(best_s[r]) >= fetch[r] else -np.inf for r in active])
            active = active[~(kth > bound)]
            if not len(active):
                break
            stop = min(start + step, n_sorted)
            block = q[active] @ self._vectors[start:stop].T
            self.scanned += block.size
            block_ids = self._ids[start:stop]
            for row, r in enumerate(active):
                best_s[r], best_i[r] = _top_by_score(np.concatenate([best_s[r], block[row]]),
                                                     np.concatenate([best_i[r], block_ids]), int(fetch[r]))
            start, step = stop, min(2 * step, 16 * self.block)
        for r in range(len(q)):
            s, i = best_s[r], best_i[r]
            if excl is not None and len(excl[r]):
                keep = ~np.isin(i, excl[r])
                s, i = s[keep], i[keep]
            s, i = s[:k], i[:k]
            scores[r, : len(s)], ids[r, : len(i)] = s, i
        return scores, ids


def _top_by_score(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (score descending, then id ascending) of ``scores`` / ``ids``, sorted."""
    if len(scores) > k:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        keep = scores >= kth  # every tie of the k-th score, cut below by id
        scores, ids = scores[keep], ids[keep]
    order = np.lexsort((ids, -scores))[:k]
    return scores[order], ids[order]


# ---------------------------------------------------------------------- faiss
class FaissIndex:
    """Adapter around faiss-cpu: exact ``IndexFlatIP``, approximate HNSW or IVF.

    Exclusion is done by over-fetching ``k + len(exclude[i])`` results and filtering
    (queries are grouped by fetch size, so one long exclusion list does not slow the
    others). HNSW and IVF may return fewer than ``k`` results for a query; the rest is padded.

    ``"ivf"`` is trained at the first non-empty :meth:`add`, on up to ``64 * nlist`` of its
    vectors (seeded sample). Vectors of different norms (CF factors: popular items are
    longer) are first lifted onto a sphere, ``x -> [x, sqrt(M^2 - |x|^2)]`` with ``M`` the
    largest norm of the first batch, queries ``q -> [q, 0]``: the inner products are
    unchanged, but nearest lists by angle then hold the best inner products (without it,
    IVF over ALS factors found 0.60 of the exact top 20 at 100k; Bachrach et al., 2014).
    Later adds are assigned to the existing lists, without
    retraining, so appending products costs milliseconds. The lists stay the ones learnt on
    the first batch: a catalog that has grown far beyond it (several times its size, or into
    regions of the space the first batch did not cover) should be re-fitted, which rebuilds
    the index.

    The ``"pq4"`` codec (faiss fast-scan product quantisation: one 4-bit code per two
    dimensions, ``dim / 2`` bytes, scanned with SIMD lookup tables) makes an IVF scan about
    ten times cheaper than ``"sq8"`` but its scores are rough. Give it the full-precision
    vectors with :meth:`refine_with` (the caller's own array, not copied) and each search
    fetches ``refine * k`` candidates from the codes and returns the best ``k`` of them by
    exact inner product: at 1M x 512 text vectors, nprobe 32, refine 8, the 256 returned
    held 0.991 of the exact top 20 in 2 ms (``"sq8"``: 0.993 in 22 ms), for 140 MB of codes
    instead of 523 MB. Without :meth:`refine_with` the code scores are returned as they are.

    Parameters
    ----------
    dim: vector length.
    kind: ``"flat"`` (exact), ``"hnsw"`` or ``"ivf"`` (approximate).
    hnsw_m: HNSW graph degree.
    ef_search: HNSW candidate list length at search time (higher: better recall, slower).
    ef_construction: HNSW candidate list length while adding.
    nlist: IVF lists; ``None``: :func:`ivf_lists` of the first batch.
    nprobe: IVF lists scanned per query (higher: better recall, slower).
    codec: how IVF stores vectors: ``"flat"`` (float32, ``4 * dim`` bytes), ``"sq8"``
        (8-bit scalar codes, ``dim`` bytes) or ``"pq4"`` (4-bit fast-scan PQ, about
        ``dim / 2`` bytes, see above); ``None``: ``"sq8"`` above 128 dimensions.
    refine: with ``"pq4"`` and :meth:`refine_with`, candidates fetched per result. A first
        batch of fewer than 1,024 vectors cannot train ``"pq4"`` codes: it is stored with
        the default codec instead.
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
        nlist: int | None = None,
        nprobe: int = DEFAULT_NPROBE,
        codec: str | None = None,
        threads: int | None = None,
        refine: int = DEFAULT_REFINE,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
        if kind not in ("flat", "hnsw", "ivf"):
            raise ConfigError(f"FaissIndex kind: expected 'flat', 'hnsw' or 'ivf', got {kind!r}")
        if codec not in (None, *_CODECS):
            raise ConfigError(f"FaissIndex codec: expected 'flat', 'sq8', 'pq4' or None, got {codec!r}")
        if refine < 1:
            raise ConfigError(f"FaissIndex refine: expected an integer >= 1, got {refine!r}")
        if nprobe < 1 or (nlist is not None and nlist < 1):
            raise ConfigError(f"FaissIndex: nprobe and nlist must be >= 1, got {nprobe!r} and {nlist!r}")
        faiss = _import_faiss()
        faiss.omp_set_num_threads(threads if threads is not None else default_threads())
        self.kind = kind
        self._dim = dim
        self.nlist = nlist
        self.nprobe = nprobe
        self.codec = codec if codec is not None else ("sq8" if dim > _IVF_FLOAT_DIM else "flat")
        self.refine = int(refine)
        self._refine_vectors: np.ndarray | None = None
        self._index: Any = None  # "ivf": created and trained at the first add
        self.max_norm: float | None = None  # "ivf": the M of the lift onto a sphere
        if kind == "flat":
            self._index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            self._index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efSearch = ef_search
            self._index.hnsw.efConstruction = ef_construction

    @classmethod
    def from_faiss(cls, raw: Any, nprobe: int | None = None, max_norm: float | None = None,
                   threads: int | None = None, dim: int | None = None) -> FaissIndex:
        """Wrap a faiss index (e.g. from :func:`load_index`): flat, HNSW-flat or IVF, inner product.

        ``nprobe``: IVF lists scanned per query (``None``: the one stored in ``raw``).
        ``max_norm``: for IVF, the ``M`` of its lift (:attr:`max_norm`); ``raw`` then holds
        vectors of one more dimension. ``dim``: the vectors' own length (required for
        ``"pq4"`` codes, which are padded; default: ``raw``'s, less the lift).
        """
        faiss = _import_faiss()
        if raw.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("faiss index: expected an inner-product index (METRIC_INNER_PRODUCT)")
        if isinstance(raw, faiss.IndexIVFPQFastScan):
            kind, codec = "ivf", "pq4"
            if dim is None:
                raise ValueError("faiss IVF-PQ index: dim (saved beside the file) is required")
        elif isinstance(raw, faiss.IndexIVF):
            kind = "ivf"
            codec = "sq8" if isinstance(raw, faiss.IndexIVFScalarQuantizer) else "flat"
        elif isinstance(raw, faiss.IndexHNSW):
            kind, codec = "hnsw", None
        elif isinstance(raw, faiss.IndexFlat):
            kind, codec = "flat", None
        else:
            raise ValueError(f"faiss index: unsupported type {type(raw).__name__}")
        out = cls.__new__(cls)
        faiss.omp_set_num_threads(threads if threads is not None else default_threads())
        if kind == "ivf" and max_norm is None:
            raise ValueError("faiss IVF index: max_norm (the lift's M, saved beside the file) is required")
        lifted = kind == "ivf"
        out.kind, out._dim, out.codec = kind, int(dim if dim is not None else raw.d - int(lifted)), codec or "flat"
        if out._dim + int(lifted) > int(raw.d):
            raise ValueError(f"faiss index of dim {raw.d} cannot hold vectors of dim {out._dim}")
        out.refine, out._refine_vectors = DEFAULT_REFINE, None
        out.max_norm = float(max_norm) if lifted else None
        out.nlist = int(raw.nlist) if kind == "ivf" else None
        out.nprobe = int(nprobe if nprobe is not None else (raw.nprobe if kind == "ivf" else DEFAULT_NPROBE))
        out._index = raw
        if kind == "ivf":
            raw.nprobe = min(out.nprobe, out.nlist)
        return out

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def faiss_index(self) -> Any:
        """The wrapped faiss index (``None`` for ``"ivf"`` before the first add)."""
        return self._index

    def __len__(self) -> int:
        return int(self._index.ntotal) if self._index is not None else 0

    def __repr__(self) -> str:
        return f"FaissIndex(dim={self._dim}, kind={self.kind!r}, size={len(self)})"

    def refine_with(self, vectors: np.ndarray | None) -> None:
        """Full-precision ``(len(self), dim)`` vectors of the same ids, to re-score ``"pq4"``
        candidates exactly (kept by reference; ``None``: code scores as they are). Other
        codecs ignore it."""
        if vectors is not None and (vectors.ndim != 2 or vectors.shape[1] != self._dim):
            raise ValueError(f"refine_with: expected shape (n, {self._dim}), got {vectors.shape}")
        self._refine_vectors = vectors

    def add(self, vectors: np.ndarray) -> None:
        """Append float32 ``(n, dim)`` vectors (ids continue from ``len(self)``)."""
        x = _as_matrix(vectors, self._dim, "vectors")
        if not len(x):
            return
        if self._index is None and self.kind == "ivf":
            if self.codec == "pq4" and len(x) < _PQ_MIN_TRAIN:  # too few to learn 16 codes per pair
                self.codec = "flat" if self._dim <= _IVF_FLOAT_DIM else "sq8"
            self.max_norm = float(np.linalg.norm(x, axis=1).max()) or 1.0
            self._index = self._train_ivf(self._lift(x))
        self._index.add(self._lift(x) if self.kind == "ivf" else x)

    def _lift(self, x: np.ndarray) -> np.ndarray:
        """``[x, sqrt(M^2 - |x|^2)]`` (0 for vectors longer than ``M``: added after training),
        with zeros up to the stored length (``"pq4"``: a multiple of 4)."""
        extra = np.sqrt(np.maximum(np.float64(self.max_norm) ** 2 - np.einsum("ij,ij->i", x, x, dtype=np.float64), 0.0))
        pad = np.zeros((len(x), self._stored_dim() - self._dim - 1), dtype=np.float32)
        return np.hstack([x, extra.astype(np.float32)[:, None], pad])

    def _stored_dim(self) -> int:
        lifted = self._dim + 1
        return -(-lifted // 4) * 4 if self.codec == "pq4" else lifted

    def _train_ivf(self, x: np.ndarray) -> Any:
        """An IVF index trained on (a seeded sample of) the first batch ``x``."""
        faiss = _import_faiss()
        nlist = min(self.nlist, len(x)) if self.nlist is not None else ivf_lists(len(x))
        codes = {"sq8": "SQ8", "flat": "Flat", "pq4": f"PQ{x.shape[1] // 2}x4fs"}[self.codec]
        index = faiss.index_factory(x.shape[1], f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
        n_train = min(len(x), 64 * nlist)
        sample = x
        if n_train < len(x):
            rows = np.sort(np.random.default_rng(0).choice(len(x), size=n_train, replace=False))
            sample = x[rows]
        if len(sample) < 39 * nlist:  # a tiny first batch: faiss would warn on every fit
            index.cp.min_points_per_centroid = 1
        index.train(sample)
        index.nprobe = min(self.nprobe, nlist)
        self.nlist = nlist
        return index

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`VectorIndex.search`."""
        n = len(self)
        q, k, excl, scores, ids = _search_inputs(queries, self._dim, k, exclude, n)
        if n == 0 or k == 0 or len(q) == 0:
            return scores, ids
        raw_q = q
        if self.kind == "ivf":  # the lift: queries get a 0, inner products are unchanged
            q = np.hstack([q, np.zeros((len(q), self._stored_dim() - self._dim), dtype=np.float32)])
        if excl is None:
            fetch = min(k, n)
            found_scores, found_ids = self._search(q, raw_q, fetch)
            scores[:, :fetch] = found_scores
            ids[:, :fetch] = found_ids
        else:
            lengths = np.array([len(banned) for banned in excl])
            # round fetch sizes up to powers of two: few faiss calls, bounded over-fetch
            wanted = k + lengths
            fetch_sizes = np.minimum(n, 1 << np.ceil(np.log2(wanted)).astype(np.int64))
            for fetch in np.unique(fetch_sizes):
                rows = np.flatnonzero(fetch_sizes == fetch)
                found_scores, found_ids = self._search(q[rows], raw_q[rows], int(fetch))
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

    def _search(self, q: np.ndarray, raw_q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss's top ``k`` of the (lifted) queries ``q``; ``"pq4"`` with full-precision
        vectors: the best ``k`` by exact score of ``refine * k`` candidates."""
        vectors = self._refine_vectors
        if self.codec != "pq4" or vectors is None or self.refine <= 1 or len(vectors) < len(self):
            return self._index.search(q, k)
        fetch = min(len(self), self.refine * k)
        _, cand = self._index.search(q, fetch)
        scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        ids = np.full((len(q), k), -1, dtype=np.int64)
        step = max(1, (1 << 24) // max(1, fetch * self._dim))  # bounded (rows, fetch, dim) gathers
        for start in range(0, len(q), step):
            block = cand[start : start + step]
            exact = np.einsum("nkd,nd->nk", vectors[np.maximum(block, 0)], raw_q[start : start + step])
            exact[block < 0] = -np.inf
            top = np.argsort(-exact, axis=1, kind="stable")[:, :k]
            scores[start : start + step, : top.shape[1]] = np.take_along_axis(exact, top, axis=1)
            ids[start : start + step, : top.shape[1]] = np.take_along_axis(block, top, axis=1)
        ids[np.isneginf(scores)] = -1
        return scores, ids


def _import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "FaissIndex needs the package 'faiss-cpu': pip install faiss-cpu; "
            'or use index = "exact"'
        ) from exc
    return faiss


# ---------------------------------------------------------------------- auto
class AutoIndex:
    """Exact search for small collections, faiss IVF for large ones, decided at the first add.

    The first non-empty :meth:`add` picks :class:`ExactIndex` when it brings fewer than
    ``threshold`` vectors. From there on, vectors of more than 128 dimensions (text) go to
    ``FaissIndex(kind="ivf")`` (lists by size): with 4-bit fast-scan codes re-scored exactly
    when full-precision vectors were given with :meth:`refine_with` before that add, with
    8-bit codes otherwise (see :class:`FaissIndex`). Shorter ones (CF factors) go to the
    exact :class:`NormOrderedIndex` (IVF found only 0.59 of the exact top 20 of ALS factors
    at 100k; a full exact scan of 1M x 64 takes ~23 ms, the norm-ordered one a median
    0.5 ms). Later adds go to the same index. (At 5,000 x 512, 1,000 queries, faiss flat took
    ~40 ms and numpy ~50 ms, equal once exclusions are involved: below the threshold faiss
    buys nothing.)

    Parameters
    ----------
    dim: vector length.
    threshold: the first batch's size from which IVF is used.
    nprobe: IVF lists scanned per query.
    inner: an index already chosen (e.g. loaded from a model directory).
    """

    def __init__(self, dim: int, threshold: int = AUTO_EXACT_BELOW, nprobe: int = DEFAULT_NPROBE,
                 inner: VectorIndex | None = None) -> None:
        if dim < 1:
            raise ValueError(f"dim: expected an integer >= 1, got {dim!r}")
        if inner is not None and inner.dim != dim:
            raise ValueError(f"inner: expected an index of dim {dim}, got {inner.dim}")
        self._dim = dim
        self.threshold = threshold
        self.nprobe = nprobe
        self._inner: VectorIndex | None = inner
        self._refine: np.ndarray | None = None

    def refine_with(self, vectors: np.ndarray | None) -> None:
        """Full-precision vectors of the same ids (see :meth:`FaissIndex.refine_with`)."""
        self._refine = vectors
        if isinstance(self._inner, FaissIndex):
            self._inner.refine_with(vectors)

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
            elif self._dim <= _IVF_FLOAT_DIM:
                self._inner = NormOrderedIndex(self._dim)
            else:
                codec = "pq4" if self._refine is not None else "sq8"
                self._inner = FaissIndex(self._dim, kind="ivf", nprobe=self.nprobe, codec=codec)
                self._inner.refine_with(self._refine)
            self._inner.add(x)
        else:
            self._inner.add(vectors)

    def search(
        self, queries: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`VectorIndex.search`."""
        inner = self._inner if self._inner is not None else ExactIndex(self._dim)
        return inner.search(queries, k, exclude)


def make_index(kind: str, dim: int, *, exact_below: int = AUTO_EXACT_BELOW,
               nprobe: int = DEFAULT_NPROBE) -> VectorIndex:
    """Build an empty index.

    Parameters
    ----------
    kind: ``"exact"`` (numpy), ``"norm"`` (numpy, exact, in order of decreasing norm:
        :class:`NormOrderedIndex`), ``"faiss"`` (faiss flat, exact), ``"hnsw"`` (faiss HNSW,
        approximate), ``"ivf"`` (faiss IVF, approximate, :class:`FaissIndex`) or ``"auto"``
        (:class:`AutoIndex`: exact below ``exact_below`` vectors, IVF from there on).
    dim: vector length.
    exact_below: the ``"auto"`` threshold (default :data:`AUTO_EXACT_BELOW`).
    nprobe: IVF lists scanned per query (``"ivf"`` and ``"auto"``).

    Raises
    ------
    ConfigError: for an unknown kind (the message lists the valid ones) or a bad setting.
    """
    if exact_below < 0:
        raise ConfigError(f"index: exact_below must be >= 0, got {exact_below!r}")
    if nprobe < 1:
        raise ConfigError(f"index: nprobe must be >= 1, got {nprobe!r}")
    if kind == "exact":
        return ExactIndex(dim)
    if kind == "norm":
        return NormOrderedIndex(dim)
    if kind == "faiss":
        return FaissIndex(dim, kind="flat")
    if kind == "hnsw":
        return FaissIndex(dim, kind="hnsw")
    if kind == "ivf":
        return FaissIndex(dim, kind="ivf", nprobe=nprobe)
    if kind == "auto":
        return AutoIndex(dim, threshold=exact_below, nprobe=nprobe)
    raise ConfigError(f"index: unknown kind {kind!r}; expected one of: {', '.join(INDEX_KINDS)}")


# ---------------------------------------------------------------------- files
def _faiss_of(index: VectorIndex) -> FaissIndex | None:
    inner = index.inner if isinstance(index, AutoIndex) else index
    return inner if isinstance(inner, FaissIndex) and inner.faiss_index is not None else None


def save_index(index: VectorIndex, path: str | Path) -> dict[str, Any] | None:
    """Write a faiss-backed index (directly or inside an :class:`AutoIndex`) to ``path``.

    The file is faiss's own binary format (data, no code). Returns what :func:`load_index`
    needs beside the file (JSON-ready: ``{"kind": ..., "max_norm": ...}``), or ``None``,
    writing nothing, for an index that is not worth a file: exact numpy indexes (they are
    the item vectors, re-added in milliseconds) and empty ones.
    """
    inner = _faiss_of(index)
    if inner is None:
        return None
    _import_faiss().write_index(inner.faiss_index, str(path))
    return {"kind": inner.kind, "max_norm": inner.max_norm}


def load_index(path: str | Path, nprobe: int | None = None, max_norm: float | None = None,
               kind: str | None = None, dim: int | None = None) -> FaissIndex:
    """Read an index written by :func:`save_index`, given what it returned (``max_norm``,
    ``kind``: checked against the file; ``dim``: the vectors' length, required for
    ``"pq4"`` codes) and optionally ``nprobe`` (see :meth:`FaissIndex.from_faiss`).

    Raises
    ------
    ValueError: the file is not a faiss inner-product index of a supported kind, or not
        the one described.
    """
    faiss = _import_faiss()
    try:
        raw = faiss.read_index(str(path))
    except RuntimeError as exc:  # faiss reports unreadable files as RuntimeError
        raise ValueError(f"{path}: not a readable faiss index ({str(exc).splitlines()[0]})") from None
    index = FaissIndex.from_faiss(raw, nprobe=nprobe, max_norm=max_norm, dim=dim)
    if kind is not None and index.kind != kind:
        raise ValueError(f"{path}: a faiss {index.kind} index, expected {kind}")
    return index
