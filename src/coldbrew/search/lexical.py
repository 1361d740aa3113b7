"""Lexical retrieval: BM25 over the products' tokens, via ``bm25s``.

``bm25s`` has no incremental insert, so adding products rebuilds the BM25 matrix from the
token lists kept here (only the new texts are tokenised). That takes ~0.15 s for the 4,335
products of UCI Online Retail but grows to seconds for 100,000 (bm25s builds document by
document in Python; ~17 s for 100,000 ten-word documents measured on a busy 2-core machine).
So above ``background_above`` documents, appended documents are indexed by a rebuild in a
background thread while searches keep using the previous matrix (the new products are found
by the semantic retriever meanwhile); smaller indexes rebuild before the next search.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

__all__ = ["LexicalIndex"]


def _bm25s():
    try:
        import bm25s
    except ImportError:
        raise ImportError("BM25 search needs bm25s: pip install 'coldbrew[search]'") from None
    return bm25s


class LexicalIndex:
    """BM25 (Lucene variant) over token lists, with dense integer document ids ``0..n-1``.

    Parameters
    ----------
    k1, b: the BM25 term-frequency saturation and length normalisation.
    background_above: indexes with more documents than this rebuild in a background thread
        after ``add`` (searches use the previous matrix until it is done).
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75, background_above: int = 20_000) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1 = k1
        self.b = b
        self.background_above = background_above
        self._documents: list[list[str]] = []
        self._version = 0  # bumped by every add/replace
        self._retriever = None
        self._built_version = 0
        self._rebuild: threading.Thread | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._documents)

    def __repr__(self) -> str:
        return f"LexicalIndex(documents={len(self)}, k1={self.k1}, b={self.b})"

    def add(self, documents: Sequence[Sequence[str]]) -> None:
        """Append token lists; they get ids ``len(self) .. len(self) + n - 1``."""
        self._documents.extend(list(doc) for doc in documents)
        self._version += 1

    def replace(self, positions: Sequence[int], documents: Sequence[Sequence[str]]) -> None:
        """Give existing documents new token lists (a product's text changed)."""
        for position, doc in zip(positions, documents):
            self._documents[int(position)] = list(doc)
        self._version += 1

    @property
    def current(self) -> bool:
        """Whether the BM25 matrix searched now reflects every add and replace."""
        return self._built_version == self._version

    def _index(self, documents: list[list[str]], version: int) -> None:
        retriever = _bm25s().BM25(k1=self.k1, b=self.b, method="lucene")
        retriever.index(documents, show_progress=False)
        self._retriever, self._built_version = retriever, version

    def _background(self, documents: list[list[str]], version: int) -> None:
        try:
            self._index(documents, version)
        finally:
            with self._lock:
                self._rebuild = None

    def _built(self):
        if self.current or not self._documents:
            return self._retriever
        if self._retriever is None or len(self._documents) <= self.background_above:
            self.wait()
            return self._retriever
        with self._lock:
            if self._rebuild is None:
                self._rebuild = threading.Thread(
                    target=self._background, args=(list(self._documents), self._version),
                    name="coldbrew-bm25", daemon=True,
                )
                self._rebuild.start()
        return self._retriever

    def wait(self) -> None:
        """Block until the BM25 matrix reflects every document (joins a background rebuild)."""
        thread = self._rebuild
        if thread is not None:
            thread.join()
        if not self.current and self._documents:
            self._index(list(self._documents), self._version)

    def tokens(self, doc: int) -> list[str]:
        """The token list of one document."""
        return self._documents[doc]

    def search(self, queries: Sequence[Sequence[str]], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents per tokenised query by BM25 score.

        Documents sharing no token with the query are never returned. For a moment after
        ``add``/``replace`` on a large index, the previous matrix answers (see module doc).

        Returns
        -------
        ``(scores, ids)``: float32 ``(q, k)`` and int64 ``(q, k)``, best first (ties by lower
        id), padded with ``0`` / ``-1``.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        scores = np.zeros((len(queries), k), dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        retriever = self._built()
        if retriever is None:
            return scores, ids
        vocab = retriever.vocab_dict
        for q, tokens in enumerate(queries):
            token_ids = [vocab[t] for t in dict.fromkeys(tokens) if t and t in vocab]
            if not token_ids:
                continue
            row = np.asarray(retriever.get_scores_from_ids(token_ids), dtype=np.float32)
            hits = np.flatnonzero(row > 0)
            if len(hits) > k:
                hits = hits[np.argpartition(-row[hits], k - 1)[:k]]
            hits = hits[np.lexsort((hits, -row[hits]))]
            scores[q, : len(hits)] = row[hits]
            ids[q, : len(hits)] = hits
        return scores, ids
