"""Hybrid product search over a fitted ``Recommender``: BM25 + text vectors, fused, personalised.

A batch of queries goes through:

1. **lexical**: BM25 over each product's tokens (title counted ``title_boost`` times, then
   brand, category, tags, description), English and Chinese tokenised (see ``Tokenizer``);
2. **semantic**: the query's text vector (the model's encoder) against the products' text
   vectors (the model's own, ``Recommender.text_vectors_``);
3. **fusion** (``mode="hybrid"``): reciprocal rank fusion of the two candidate lists;
4. **personalisation** (when a user history is given and names a known product): the top
   ``rerank_depth`` results are ranked again by the recommender's blended score for that
   history (``Recommender.score_items``), and that ranking joins the fusion with weight
   ``personal_weight``.

The index follows the model: when products are added (``Recommender.add_items``) or the
catalog object is replaced, the next search tokenises only the new texts, rebuilds the BM25
matrix and appends the new vectors to the vector index.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from coldbrew.errors import ConfigError, DataError
from coldbrew.requests import HistoryEvent, Request
from coldbrew.search._tokenize import CHINESE_MODES, Tokenizer
from coldbrew.search.hybrid import rank_contributions, reciprocal_rank_fusion
from coldbrew.search.lexical import LexicalIndex
from coldbrew.search.semantic import SemanticIndex

__all__ = ["SearchConfig", "SearchHit", "SearchIndex", "MODES"]

#: Values accepted for ``SearchIndex.search(mode=...)``.
MODES = ("hybrid", "lexical", "semantic")


@dataclass(frozen=True)
class SearchConfig:
    """How queries are matched, fused and personalised.

    ``candidates``: results taken from each retriever before fusion. ``rrf_k``: the rank
    offset of reciprocal rank fusion. ``*_weight``: each ranking's weight in the fusion.
    ``rerank_depth``: how many fused results the user's profile re-ranks. ``bm25_k1``,
    ``bm25_b``: BM25 parameters. ``title_boost``: how many times title tokens count.
    ``chinese``: ``"auto"``, ``"jieba"`` or ``"bigram"`` (see ``Tokenizer``). ``index``: the
    vector index kind (see ``coldbrew.retrieval.make_index``).

    The defaults of ``rrf_k``, ``semantic_weight`` and ``personal_weight`` were chosen on a
    small grid over validation queries of UCI Online Retail (``benchmarks/run_search.py
    --grid``, odd invoice numbers; the reported figures use the even ones).
    """

    candidates: int = 100
    rrf_k: float = 10.0
    lexical_weight: float = 1.0
    semantic_weight: float = 0.5
    personal_weight: float = 1.0
    rerank_depth: int = 50
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    title_boost: int = 2
    chinese: str = "auto"
    index: str = "auto"

    def __post_init__(self) -> None:
        for name in ("candidates", "rerank_depth", "title_boost"):
            if getattr(self, name) < 1:
                raise ConfigError(f"search: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("rrf_k", "lexical_weight", "semantic_weight", "personal_weight", "bm25_k1"):
            if getattr(self, name) < 0:
                raise ConfigError(f"search: {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.bm25_b <= 1:
            raise ConfigError(f"search: bm25_b must be between 0 and 1, got {self.bm25_b}")
        if self.chinese not in CHINESE_MODES:
            raise ConfigError(f"search: chinese must be one of {', '.join(CHINESE_MODES)}, got {self.chinese!r}")


def _drop(scores: np.ndarray, ids: np.ndarray, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove excluded items (bool ``(n_items,)``) from ranked rows, keeping the others' order."""
    bad = (ids >= 0) & exclude[np.clip(ids, 0, None)]
    if not bad.any():
        return scores, ids
    ids = np.where(bad, -1, ids)
    order = np.argsort(ids < 0, axis=1, kind="stable")  # kept items first, in their order
    ids = np.take_along_axis(ids, order, axis=1)
    scores = np.where(ids >= 0, np.take_along_axis(scores, order, axis=1), 0.0).astype(np.float32)
    return scores, ids


class SearchHit(NamedTuple):
    """One search result: the product, its score in this list and why it was found."""

    item_id: str
    score: float
    reason: str


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


class SearchIndex:
    """Hybrid search over the products of a fitted ``Recommender``.

    Build with :meth:`build`; :meth:`search` answers a batch of queries. Thread-safe: one
    lock guards syncing with the model and searching.
    """

    def __init__(self, model, config: SearchConfig | None = None) -> None:
        model._check_fitted()
        self.model = model
        self.config = config or SearchConfig()
        self.tokenizer = Tokenizer(self.config.chinese)
        self._lexical = LexicalIndex(self.config.bm25_k1, self.config.bm25_b)
        self._semantic = SemanticIndex(model.text_vectors_.shape[1], self.config.index)
        self._catalog = None
        self._texts: list[str] = []
        self._lock = threading.RLock()

    @classmethod
    def build(cls, model, config: SearchConfig | None = None) -> SearchIndex:
        """Index every product of a fitted ``Recommender``."""
        index = cls(model, config)
        index.refresh()
        return index

    def __len__(self) -> int:
        return len(self._lexical)

    def __repr__(self) -> str:
        return f"SearchIndex(items={len(self)}, tokenizer={self.tokenizer!r})"

    # ------------------------------------------------------------------ keeping up with the model
    def refresh(self, force: bool = False) -> bool:
        """Bring the index up to date with the model's catalog; returns True if anything changed.

        A replaced catalog object (``add_items``) is compared text by text: appended products
        are tokenised alone, changed ones re-tokenised, and the BM25 matrix rebuilt (in the
        background above 20,000 products, see ``LexicalIndex``). Call with ``force=True`` after
        changing the catalog or text vectors *in place*.
        """
        with self._lock:
            model = self.model
            catalog = model.catalog_
            changed = False
            if force or catalog is not self._catalog:
                texts = catalog.texts()
                n = len(self._texts)
                if len(texts) < n:  # fewer products than before: a different catalog
                    self._lexical = LexicalIndex(self.config.bm25_k1, self.config.bm25_b)
                    self._texts, n = [], 0
                edited = [i for i in range(n) if texts[i] != self._texts[i]]
                if edited:
                    titles = [catalog.titles[i] for i in edited]
                    self._lexical.replace(edited, self._documents(titles, [texts[i] for i in edited]))
                if len(texts) > n:
                    self._lexical.add(self._documents(catalog.titles[n:], texts[n:]))
                changed = bool(edited) or len(texts) > n
                self._texts = texts
                self._catalog = catalog
            changed = self._semantic.sync(model.text_vectors_, force) or changed
            if len(self._semantic) != len(self._lexical):
                raise DataError(
                    f"model: {len(self._lexical)} catalog rows but {len(self._semantic)} text vectors"
                )
            return changed

    def _documents(self, titles: Sequence[str], texts: Sequence[str]) -> list[list[str]]:
        boost = self.config.title_boost - 1
        return [
            self.tokenizer.tokenize(str(title)) * boost + self.tokenizer.tokenize(text)
            for title, text in zip(titles, texts)
        ]

    # ------------------------------------------------------------------ searching
    def search(
        self,
        queries: Sequence[str],
        k: int = 10,
        mode: str = "hybrid",
        user_histories: Sequence[Sequence[HistoryEvent] | Request | None] | None = None,
        exclude: np.ndarray | None = None,
    ) -> list[list[SearchHit]]:
        """Up to ``k`` products per query, best first, each ``(item_id, score, reason)``.

        Parameters
        ----------
        queries: the search texts (any language the tokenizer and encoder read).
        k: list length.
        mode: ``"hybrid"`` (BM25 and text vectors fused), ``"lexical"`` or ``"semantic"``.
        user_histories: optional, one history per query (``None`` or empty for anonymous
            searches); a history with a known product re-ranks that query's results. An
            entry may also be a ``Request`` (its history and its text are the profile).
        exclude: optional bool ``(n_items,)``: items never returned (deleted, out of stock).

        Scores: BM25 (lexical) or cosine (semantic) for a single mode without
        personalisation, otherwise the fused reciprocal-rank score.
        """
        ids, scores, reasons = self.search_indices(queries, k, mode, user_histories, exclude)
        item_ids = self.model.item_map_
        out = []
        for q in range(len(queries)):
            keep = ids[q] >= 0
            raw = item_ids.ids(ids[q][keep]) if keep.any() else []
            out.append([SearchHit(str(i), float(s), r) for i, s, r in zip(raw, scores[q][keep], reasons[q])])
        return out

    def describe(self, hits: Sequence[SearchHit]) -> list[dict]:
        """Hits as JSON-ready dicts: ``{item_id, title, category, price, score, reason}``."""
        model = self.model
        positions = model.item_map_.lookup([h.item_id for h in hits]) if hits else []
        out = []
        for hit, i in zip(hits, positions):
            price = float(model.catalog_.prices[i])
            out.append({
                "item_id": hit.item_id,
                "title": str(model.catalog_.titles[i]),
                "category": str(model.catalog_.categories[i]),
                "price": price if np.isfinite(price) else None,
                "score": round(hit.score, 6),
                "reason": hit.reason,
            })
        return out

    def search_indices(
        self,
        queries: Sequence[str],
        k: int = 10,
        mode: str = "hybrid",
        user_histories: Sequence[Sequence[HistoryEvent] | Request | None] | None = None,
        exclude: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """As :meth:`search`, in index space.

        Returns
        -------
        ``(ids, scores, reasons)``: int64 ``(q, k)`` item indices padded with ``-1``, float32
        ``(q, k)`` scores, and one reason per returned item for each query.
        """
        queries = self._check(queries, k, mode, user_histories)
        cfg = self.config
        with self._lock:
            self.refresh()
            depth = max(cfg.candidates, k, cfg.rerank_depth)
            terms = [self.tokenizer.terms(q) for q in queries]
            lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            if mode in ("hybrid", "lexical"):
                tokens = [[t for _, ts in words for t in ts] for words in terms]
                lists["lexical"] = self._lexical.search(tokens, depth)
            if mode in ("hybrid", "semantic"):
                vectors = self.model.query_vectors(queries)
                lists["semantic"] = self._semantic.search(vectors, depth)
            if exclude is not None:
                # a mask made before products were added leaves the new ones allowed
                mask = np.zeros(len(self), dtype=bool)
                given = np.asarray(exclude, dtype=bool)[: len(self)]
                mask[: len(given)] = given
                lists = {name: _drop(*found, mask) for name, found in lists.items()}
            weights = {"lexical": cfg.lexical_weight, "semantic": cfg.semantic_weight}
            if mode == "hybrid":
                scores, ids = reciprocal_rank_fusion(
                    [lists[m][1] for m in lists], depth, [weights[m] for m in lists], cfg.rrf_k
                )
            else:
                scores, ids = lists[mode]
            suited = np.zeros(ids.shape, dtype=bool)
            if user_histories is not None:
                scores, ids, suited = self._personalise(scores, ids, user_histories, mode != "hybrid")
            ids, scores, suited = ids[:, :k], scores[:, :k], suited[:, :k]
            lexical_ids = lists["lexical"][1] if "lexical" in lists else None
            reasons = [
                self._reasons(queries[q], terms[q], ids[q], lexical_ids[q] if lexical_ids is not None else None, suited[q])
                for q in range(len(queries))
            ]
        return ids, scores.astype(np.float32), reasons

    def _check(self, queries, k, mode, user_histories) -> list[str]:
        if isinstance(queries, str):
            raise DataError("queries: expected a list of strings; a single query is a batch of one: [query]")
        queries = list(queries)
        for q, text in enumerate(queries):
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"queries[{q}]: expected a non-empty search text, got {text!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DataError(f"k: expected a positive integer, got {k!r}")
        if mode not in MODES:
            raise DataError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if user_histories is not None and len(user_histories) != len(queries):
            raise DataError(
                f"user_histories: expected one history per query ({len(queries)}), got {len(user_histories)}"
            )
        return queries

    def _personalise(
        self, scores: np.ndarray, ids: np.ndarray, histories, single: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Re-rank the top ``rerank_depth`` of each row whose history names a known product.

        The profile's ranking of those items joins the row's fused (or, for one retriever,
        rank) scores with ``personal_weight``, as a further list of the rank fusion.

        Returns the new ``(scores, ids)`` and a bool matrix of the same shape marking the items
        that are among the five the profile likes best in their row's pool.
        """
        cfg, model = self.config, self.model
        requests = [
            h if isinstance(h, Request) else Request(f"search:{q}", "", history=tuple(h or ()))
            for q, h in enumerate(histories)
        ]
        rows = [
            q for q, r in enumerate(requests)
            if any(e.item_id in model.item_map_ for e in r.history) or (r.text and r.text.strip())
        ]
        suited = np.zeros(ids.shape, dtype=bool)
        if not rows:
            return scores, ids, suited
        depth = cfg.rerank_depth
        scores = scores.astype(np.float64).copy()
        if single:  # BM25 or cosine scores become rank scores, the scale the profile joins
            scores[rows] = rank_contributions(ids[rows], 1.0, cfg.rrf_k)
        pool = ids[rows, :depth]
        taste = model.score_items([requests[q] for q in rows], pool)
        # Rank within the pool by the recommender's score; padding (-inf) sorts last.
        order = np.argsort(-taste, axis=1, kind="stable")
        personal_rank = np.empty_like(order)
        np.put_along_axis(personal_rank, order, np.arange(pool.shape[1])[None, :], axis=1)
        base = scores[rows, :depth]
        gain = np.where(pool >= 0, cfg.personal_weight / (cfg.rrf_k + personal_rank + 1.0), 0.0)
        fused = np.where(pool >= 0, base + gain, -np.inf)
        new_order = np.argsort(-fused, axis=1, kind="stable")
        ids = ids.copy()
        scores[rows, :depth] = np.where(np.isfinite(np.take_along_axis(fused, new_order, axis=1)),
                                        np.take_along_axis(fused, new_order, axis=1), 0.0)
        ids[rows, :depth] = np.take_along_axis(pool, new_order, axis=1)
        liked = (personal_rank < 5) & (pool >= 0) & np.isfinite(taste)
        suited[rows, :depth] = np.take_along_axis(liked, new_order, axis=1)
        return scores, ids, suited

    def _reasons(self, query: str, terms, ids: np.ndarray, lexical_ids, suited: np.ndarray) -> list[str]:
        out = []
        lexical = set(lexical_ids[lexical_ids >= 0].tolist()) if lexical_ids is not None else set()
        for i, fits in zip(ids[ids >= 0], suited[ids >= 0]):
            reason = ""
            if int(i) in lexical:
                doc = set(self._lexical.tokens(int(i)))
                words = list(dict.fromkeys(w for w, tokens in terms if any(t in doc for t in tokens)))
                # jieba's search mode yields 婴儿 and 婴儿车: name the longer Chinese word only.
                words = [w for w in words if w.isascii() or not any(w != o and w in o for o in words)]
                if words:
                    joiner = "" if all(not w.isascii() for w in words) else " "
                    reason = f"matches '{_clip(joiner.join(words), 40)}'"
            if not reason:
                reason = f"similar in meaning to '{_clip(query, 40)}'"
            if fits:
                reason += "; suits your shopping history"
            out.append(reason)
        return out
