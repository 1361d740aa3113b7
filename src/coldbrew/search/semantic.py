"""Semantic retrieval: query text vectors against the model's item text vectors.

The item vectors are the ones the recommender already holds (``Recommender.text_vectors_``),
so search and recommendations read products the same way. Queries are encoded by
``Recommender.query_vectors`` (the model's encoder, its text adapter if any, no embedding
cache: search queries are not worth keeping).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SemanticIndex"]


def _row_checksums(vectors: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """A uint64 checksum of each row's bits, uint64 ``(n,)``: exact, so any edit shows."""
    bits = vectors.view(np.uint32)
    weights = np.random.default_rng(0).integers(1, 2**31, size=bits.shape[1], dtype=np.uint64) | np.uint64(1)
    out = np.empty(len(bits), dtype=np.uint64)
    for start in range(0, len(bits), chunk):  # integer arithmetic wraps: no rounding at all
        out[start : start + chunk] = (bits[start : start + chunk].astype(np.uint64) * weights).sum(axis=1)
    return out


class SemanticIndex:
    """Inner-product search over unit text vectors, grown by appending.

    Parameters
    ----------
    dim: the text vector width.
    kind: the vector index kind (see ``coldbrew.retrieval.make_index``): ``"auto"`` is exact
        below 50,000 products and faiss HNSW above.
    """

    def __init__(self, dim: int, kind: str = "auto") -> None:
        from coldbrew.retrieval import make_index

        self.kind = kind
        self._index = make_index(kind, dim)
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._source: np.ndarray | None = None
        self._signature = np.zeros(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"SemanticIndex(vectors={len(self)}, dim={self._index.dim}, kind={self.kind!r})"

    @property
    def dim(self) -> int:
        return int(self._index.dim)

    def sync(self, vectors: np.ndarray, force: bool = False) -> bool:
        """Make the index hold exactly ``vectors`` float32 ``(n, dim)``; True if anything changed.

        The same array object as last time is taken as unchanged unless ``force`` (rows
        changed in place). Otherwise rows are compared by a checksum of their bits: when the
        rows already indexed are an unchanged prefix (products were appended), only the new
        rows are added; any other change rebuilds the index.
        """
        if vectors is self._source and not force:
            return False
        array = np.ascontiguousarray(vectors, dtype=np.float32)
        signature = _row_checksums(array)
        n = len(self._signature)
        self._source = vectors
        if len(array) >= n and np.array_equal(signature[:n], self._signature):
            self._signature = signature
            if len(array) > n:
                self._index.add(array[n:])
            self._vectors = array
            return len(array) > n
        from coldbrew.retrieval import make_index

        self._index = make_index(self.kind, array.shape[1])
        if len(array):
            self._index.add(array)
        self._vectors, self._signature = array, signature
        return True

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """Item vectors float32 ``(..., dim)`` for an int array of ids (all >= 0)."""
        return self._vectors[ids]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest items per query vector (float32 ``(q, dim)``).

        Items with no text (zero vectors) and items scoring ``<= 0`` are left out.

        Returns
        -------
        ``(scores, ids)``: float32 ``(q, k)`` and int64 ``(q, k)``, best first, padded with
        ``0`` / ``-1``.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        queries = np.asarray(queries, dtype=np.float32)
        if len(self) == 0 or len(queries) == 0:
            return np.zeros((len(queries), k), np.float32), np.full((len(queries), k), -1, np.int64)
        scores, ids = self._index.search(queries, k)
        keep = (ids >= 0) & np.isfinite(scores) & (scores > 0)
        return np.where(keep, scores, 0.0).astype(np.float32), np.where(keep, ids, -1).astype(np.int64)
