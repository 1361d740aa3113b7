"""Reference recommenders to measure coldbrew against.

Each implements :class:`coldbrew.evaluation.protocol.Recommender`: ``fit(catalog, events)``,
``add_items(catalog)``, ``recommend(requests, k)``. Shared rules: a request's ``candidates``
(when given) are the only items ranked; items in its ``history`` or ``exclude`` are never
returned; ties are broken by item order (fit catalog first, then added items in order);
items a model cannot score (score ``-inf``) come last. Events count through their strength
under the default event weights without time decay (purchases positive, cancels zero,
ratings scaled above 2.5).

Size (about 530 lines): five baselines, each under 120 lines, on one base class that
holds the shared rules above.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, Self

import numpy as np
import scipy.sparse as sp

from coldbrew.config import WeightingConfig, default_threads
from coldbrew.data import Catalog, Events, IdMap, event_strengths, interaction_matrix
from coldbrew.errors import NotFittedError, UnknownIdError
from coldbrew.requests import Recommendation, Request

__all__ = [
    "ALSRecommender",
    "ItemKNNRecommender",
    "LightFMRecommender",
    "PopularityRecommender",
    "TextSimilarityRecommender",
]

_BATCH = 256


def _no_decay() -> WeightingConfig:
    return WeightingConfig(half_life_days=None)


def _strengths(events: np.ndarray, values: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Strength of each event (float32 ``(n,)``), default weights, no time decay."""
    return event_strengths(events, values, timestamps, _no_decay())


def _top_k(scores: np.ndarray, eligible: np.ndarray, k: int) -> np.ndarray:
    """Positions in ``eligible`` of the k best scores, best first; ties by lower index.

    ``scores`` float64 ``(n_eligible,)`` aligned with ``eligible`` (int64, ascending).
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n > k:
        part = np.argpartition(-scores, k - 1)[:k]
        threshold = scores[part].min()
        pool = np.flatnonzero(scores >= threshold)  # keep every tie at the boundary
    else:
        pool = np.arange(n)
    order = np.lexsort((eligible[pool], -scores[pool]))
    return pool[order[:k]]


class _BaseRecommender(ABC):
    """Item bookkeeping, history encoding and the ranking loop shared by the baselines.

    Subclasses implement ``_fit(catalog, events)``, ``_add(catalog)`` (called after the new
    IDs are in ``items_``) and ``_score(requests, history)`` returning float ``(b, n_items)``.
    """

    reason = "baseline"

    def fit(self, catalog: Catalog, events: Events) -> Self:
        """Learn from ``events`` on the items of ``catalog``; events on other items are ignored.

        Returns ``self``.
        """
        if len(catalog) == 0:
            raise ValueError(f"{type(self).__name__}.fit: the catalog is empty")
        self.items_ = IdMap((str(i) for i in catalog.item_ids), kind="item")
        self.n_fit_items_ = len(self.items_)
        self._fit(catalog, events)
        return self

    def add_items(self, catalog: Catalog) -> None:
        """Make the catalog's items recommendable; items already known are skipped."""
        self._check_fitted()
        ids = [str(i) for i in catalog.item_ids]
        fresh = np.flatnonzero(np.asarray([i not in self.items_ for i in ids], dtype=bool))
        fresh = fresh[~_first_duplicates(ids, fresh)]
        if len(fresh) == 0:
            return
        new = catalog.subset(fresh)
        self.items_.add(str(i) for i in new.item_ids)
        self._add(new)

    def recommend(self, requests: Sequence[Request], k: int) -> list[Recommendation]:
        """Up to ``k`` items per request (fewer when fewer are eligible), best first."""
        self._check_fitted()
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        out: list[Recommendation] = []
        for start in range(0, len(requests), _BATCH):
            batch = list(requests[start : start + _BATCH])
            history, seen = self._history(batch)
            scores = np.asarray(self._score(batch, history), dtype=np.float64)
            n = len(self.items_)
            for row, request in enumerate(batch):
                allowed = self._allowed(request, seen[row], n)
                row_scores = np.nan_to_num(scores[row, allowed], nan=-np.inf, posinf=np.inf)
                top = allowed[_top_k(row_scores, allowed, k)]
                out.append(
                    Recommendation(
                        request_id=request.request_id,
                        user_id=request.user_id,
                        items=self.items_.ids(top),
                        scores=[float(s) for s in scores[row, top]],
                        reasons=[self.reason] * len(top),
                    )
                )
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "items_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")

    def _allowed(self, request: Request, seen: np.ndarray, n: int) -> np.ndarray:
        """Item indices (int64, ascending) the request may receive."""
        if request.candidates is not None:
            idx = self.items_.lookup(request.candidates)
            if (idx < 0).any():
                missing = request.candidates[int(np.flatnonzero(idx < 0)[0])]
                raise UnknownIdError(
                    f"request {request.request_id}: candidate item '{missing}' is not in the"
                    " catalog; add it with add_items() first"
                )
            allowed = np.zeros(n, dtype=bool)
            allowed[idx] = True
        else:
            allowed = np.ones(n, dtype=bool)
        allowed[seen] = False
        if request.exclude:
            ex = self.items_.lookup(request.exclude)
            allowed[ex[ex >= 0]] = False
        return np.flatnonzero(allowed)

    def _history(self, requests: Sequence[Request]) -> tuple[sp.csr_matrix, list[np.ndarray]]:
        """Strength matrix float32 ``(b, n_items)`` of the requests' histories, and the
        indices of every known item in each history (whatever its strength)."""
        rows: list[int] = []
        items: list[str] = []
        kinds: list[str] = []
        values: list[float] = []
        times: list[int] = []
        for r, request in enumerate(requests):
            for ev in request.history:
                rows.append(r)
                items.append(ev.item_id)
                kinds.append(ev.event)
                values.append(np.nan if ev.value is None else ev.value)
                times.append(ev.timestamp)
        cols = self.items_.lookup(items)
        row_arr = np.asarray(rows, dtype=np.int64)
        known = cols >= 0
        strengths = _strengths(
            np.asarray(kinds, dtype=object), np.asarray(values, dtype=np.float64),
            np.asarray(times, dtype=np.int64),
        )
        matrix = interaction_matrix(
            row_arr[known], cols[known], strengths[known], (len(requests), len(self.items_))
        )
        bounds = np.searchsorted(row_arr, np.arange(len(requests) + 1))
        seen = [np.unique(cols[lo:hi][known[lo:hi]]) for lo, hi in zip(bounds[:-1], bounds[1:])]
        return matrix, seen

    # Hooks for the subclasses.
    @abstractmethod
    def _fit(self, catalog: Catalog, events: Events) -> None:
        """Learn from the train events (the catalog's IDs are already in ``items_``)."""

    @abstractmethod
    def _add(self, catalog: Catalog) -> None:
        """Extend the model to items added after fit (their IDs are already in ``items_``)."""

    @abstractmethod
    def _score(self, requests: Sequence[Request], history: sp.csr_matrix) -> np.ndarray:
        """Scores (b, n_items) float for a batch of requests."""


def _first_duplicates(ids: list[str], positions: np.ndarray) -> np.ndarray:
    """True for positions whose ID already occurred at an earlier position in the list."""
    seen: set[str] = set()
    out = np.zeros(len(positions), dtype=bool)
    for j, p in enumerate(positions):
        out[j] = ids[p] in seen
        seen.add(ids[p])
    return out


def _train_matrix(
    items: IdMap, n_items: int, events: Events
) -> tuple[sp.csr_matrix, IdMap]:
    """Users x items strength CSR (float32, summed over repeats, zeros dropped) and the
    user IdMap (every user with an event on a known item, in first-seen order)."""
    cols = items.lookup(events.item_ids)
    known = cols >= 0
    users = IdMap((str(u) for u in events.user_ids[known]), kind="user")
    rows = users.lookup(events.user_ids[known])
    strengths = _strengths(
        events.events[known], events.values[known], events.timestamps[known]
    )
    return interaction_matrix(rows, cols[known], strengths, (len(users), n_items)), users


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    out = matrix.copy().astype(np.float32)
    out.data[:] = 1.0
    return out


class PopularityRecommender(_BaseRecommender):
    """Rank by the number of positive train events per item.

    Items added after ``fit`` score 0; ties follow item order.
    """

    reason = "popular"

    def _fit(self, catalog: Catalog, events: Events) -> None:
        cols = self.items_.lookup(events.item_ids)
        positive = (_strengths(events.events, events.values, events.timestamps) > 0) & (cols >= 0)
        self.counts_ = np.bincount(cols[positive], minlength=self.n_fit_items_).astype(np.float64)

    def _add(self, catalog: Catalog) -> None:
        self.counts_ = np.concatenate([self.counts_, np.zeros(len(catalog))])

    def _score(self, requests: Sequence[Request], history: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(requests), len(self.counts_)))


class ItemKNNRecommender(_BaseRecommender):
    """Item-based k-NN: cosine similarity on the binary user x item train matrix.

    Each item keeps its ``neighbors`` most similar items; a user's score for item j is the sum
    of ``sim(h, j)`` over the distinct positive history items ``h`` that have j as a
    neighbour. Items added after ``fit`` score 0.
    """

    reason = "similar to your items"

    def __init__(self, neighbors: int = 100) -> None:
        self.neighbors = neighbors

    def _fit(self, catalog: Catalog, events: Events) -> None:
        if not isinstance(self.neighbors, int) or self.neighbors < 1:
            raise ValueError(f"neighbors must be a positive integer, got {self.neighbors!r}")
        strengths, _ = _train_matrix(self.items_, self.n_fit_items_, events)
        x = _binary(strengths).tocsc()
        n = self.n_fit_items_
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
        norms[norms == 0] = 1.0
        xt = x.T.tocsr()
        keep = min(self.neighbors, max(n - 1, 1))
        block = max(1, min(n, 2**24 // max(n, 1)))  # rows of the dense similarity block
        rows, cols, vals = [], [], []
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            sim = np.asarray((xt[lo:hi] @ x).todense(), dtype=np.float32)
            sim /= norms[lo:hi, None] * norms[None, :]
            sim[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
            top = np.argpartition(-sim, keep - 1, axis=1)[:, :keep] if keep < n else (
                np.tile(np.arange(n), (hi - lo, 1))
            )
            top_vals = np.take_along_axis(sim, top, axis=1)
            rows.append(np.repeat(np.arange(lo, hi), top.shape[1]))
            cols.append(top.ravel())
            vals.append(top_vals.ravel())
        sim_matrix = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        sim_matrix.eliminate_zeros()
        self.similarity_ = sim_matrix.astype(np.float32)

    def _add(self, catalog: Catalog) -> None:
        pass  # new items have no neighbours: they score 0

    def _score(self, requests: Sequence[Request], history: sp.csr_matrix) -> np.ndarray:
        h = _binary(history[:, : self.n_fit_items_])
        scores = np.zeros((len(requests), len(self.items_)), dtype=np.float32)
        scores[:, : self.n_fit_items_] = (h @ self.similarity_).toarray()
        return scores


class ALSRecommender(_BaseRecommender):
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) from the ``implicit`` library.

    Fit on the users x items CSR of event strengths (summed per pair; ``implicit`` multiplies
    by ``alpha`` to get the confidence). Every request's user is folded in from its history
    with ``implicit``'s batched exact least-squares step (``recalculate_user``), the same
    solve ALS training uses, so warm and new users are treated alike; an empty history gives
    a zero vector (all scores 0). Items added after ``fit`` have no factors: score ``-inf``.
    """

    reason = "users like you"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        iterations: int = 15,
        alpha: float = 1.0,
        random_state: int = 0,
        threads: int | None = None,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.iterations = iterations
        self.alpha = alpha
        self.random_state = random_state
        self.threads = threads

    def _fit(self, catalog: Catalog, events: Events) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        strengths, _ = _train_matrix(self.items_, self.n_fit_items_, events)
        # implicit runs its own threads; BLAS threads on top of them only oversubscribe.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.random_state,
                num_threads=self.threads or default_threads(),
            )
            model.fit(strengths, show_progress=False)
        self.model_ = model
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _add(self, catalog: Catalog) -> None:
        pass  # new items have no factors: they score -inf

    def _score(self, requests: Sequence[Request], history: sp.csr_matrix) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        conf = history[:, : self.n_fit_items_].tocsr()
        with threadpool_limits(1, "blas"):
            users = self.model_.recalculate_user(np.arange(len(requests)), conf)
        scores = np.full((len(requests), len(self.items_)), -np.inf, dtype=np.float32)
        scores[:, : self.n_fit_items_] = np.asarray(users, dtype=np.float32) @ self.item_factors_.T
        return scores


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_CATEGORY_SPLIT = re.compile(r"\s*[|>/,;]\s*")


def _item_tokens(title: str, category: str) -> list[str]:
    """Lower-cased title words (2+ characters) and category parts, as feature names."""
    words = [f"word:{w}" for w in _TOKEN.findall(title.lower()) if len(w) > 1]
    cats = [f"category:{c}" for c in _CATEGORY_SPLIT.split(category.lower().strip()) if c]
    return list(dict.fromkeys(words + cats))


class LightFMRecommender(_BaseRecommender):
    """LightFM (Kula 2015) with item features = identity + title words + category parts.

    Item features: one identity feature per fit item plus lower-cased title word tokens and
    category tokens, each row normalised to sum 1 (LightFM's ``Dataset`` default). Items
    added after ``fit`` get only their text tokens (no identity feature is learned for them;
    tokens unseen at fit time are dropped). Users: a user seen in training is scored with its
    learned identity embedding (standard LightFM use); any other user is folded in as the
    mean of the representations of its distinct positive history items (an empty history
    leaves only the item biases). Requires ``lightfm`` (``pip install --no-build-isolation
    rectools-lightfm==1.17.3``: the same code with a setup fixed for current setuptools).
    """

    reason = "matrix factorisation with text features"

    def __init__(
        self,
        no_components: int = 64,
        epochs: int = 30,
        loss: str = "warp",
        learning_rate: float = 0.05,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        random_state: int = 0,
        threads: int | None = None,
    ) -> None:
        self.no_components = no_components
        self.epochs = epochs
        self.loss = loss
        self.learning_rate = learning_rate
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.random_state = random_state
        self.threads = threads

    @staticmethod
    def _import() -> type:
        try:
            from lightfm import LightFM
        except ImportError as exc:
            raise ImportError(
                "LightFMRecommender needs the lightfm package; install it with"
                " `pip install 'coldbrew[baselines]'` or `pip install --no-build-isolation"
                " rectools-lightfm==1.17.3` (LightFM 1.17 with its setup.py fixed for current"
                " setuptools; it imports as `lightfm`)"
            ) from exc
        return LightFM

    def _features(self, catalog: Catalog, identity_offset: int | None) -> sp.csr_matrix:
        """Row-normalised item feature CSR (n, n_features) float32 over the fitted vocabulary."""
        rows, cols = [], []
        for r, (title, category) in enumerate(zip(catalog.titles, catalog.categories)):
            if identity_offset is not None:
                rows.append(r)
                cols.append(identity_offset + r)
            for token in _item_tokens(str(title), str(category)):
                c = self.vocabulary_.get(token)
                if c is not None:
                    rows.append(r)
                    cols.append(c)
        data = np.ones(len(rows), dtype=np.float32)
        matrix = sp.csr_matrix((data, (rows, cols)), shape=(len(catalog), self.n_features_))
        sums = np.asarray(matrix.sum(axis=1)).ravel()
        sums[sums == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / sums) @ matrix, dtype=np.float32)

    def _fit(self, catalog: Catalog, events: Events) -> None:
        light_fm = self._import()
        if self.loss not in ("warp", "bpr", "logistic", "warp-kos"):
            raise ValueError(f"loss must be warp, bpr, logistic or warp-kos, got {self.loss!r}")
        n = self.n_fit_items_
        self.vocabulary_: dict[str, int] = {}
        for title, category in zip(catalog.titles, catalog.categories):
            for token in _item_tokens(str(title), str(category)):
                self.vocabulary_.setdefault(token, n + len(self.vocabulary_))
        self.n_features_ = n + len(self.vocabulary_)
        features = self._features(catalog, identity_offset=0)
        strengths, self.users_ = _train_matrix(self.items_, n, events)
        interactions = _binary(strengths).tocoo()
        model = light_fm(
            no_components=self.no_components,
            loss=self.loss,
            learning_rate=self.learning_rate,
            item_alpha=self.item_alpha,
            user_alpha=self.user_alpha,
            random_state=self.random_state,
        )
        model.fit(
            interactions,
            item_features=features,
            epochs=self.epochs,
            num_threads=self.threads or default_threads(),
        )
        self.model_ = model
        self.user_biases_, self.user_embeddings_ = model.get_user_representations()
        self.item_biases_, self.item_embeddings_ = model.get_item_representations(features)

    def _add(self, catalog: Catalog) -> None:
        biases, embeddings = self.model_.get_item_representations(
            self._features(catalog, identity_offset=None)
        )
        self.item_biases_ = np.concatenate([self.item_biases_, biases])
        self.item_embeddings_ = np.vstack([self.item_embeddings_, embeddings])

    def _score(self, requests: Sequence[Request], history: sp.csr_matrix) -> np.ndarray:
        known = self.users_.lookup(r.user_id for r in requests)
        h = _binary(history)
        counts = np.asarray(h.sum(axis=1)).ravel()
        users = np.asarray(h @ self.item_embeddings_) / np.maximum(counts, 1.0)[:, None]
        users[known >= 0] = self.user_embeddings_[known[known >= 0]]
        return users @ self.item_embeddings_.T + self.item_biases_[None, :]


class TextEncoder(Protocol):
    """Turns texts into L2-normalised vectors: ``encode(list[str]) -> float32 (n, d)``."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


class TextSimilarityRecommender(_BaseRecommender):
    """Content-only: cosine between the mean of the history items' text vectors and each item.

    Item text is :meth:`Catalog.texts` (lower-cased when ``lowercase``: all-caps product names
    embed poorly). The user vector is the mean of the vectors of the distinct positive history
    items; an empty history scores every item 0. Works for items added after ``fit`` alike.
    """

    reason = "similar text"

    def __init__(self, encoder: TextEncoder, lowercase: bool = True, batch_size: int = 1024) -> None:
        self.encoder = encoder
        self.lowercase = lowercase
        self.batch_size = batch_size

    def _encode(self, catalog: Catalog) -> np.ndarray:
        texts = catalog.texts()
        if self.lowercase:
            texts = [t.lower() for t in texts]
        parts = []
        for lo in range(0, len(texts), self.batch_size):
            chunk = texts[lo : lo + self.batch_size]
            vectors = np.asarray(self.encoder.encode(chunk), dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != len(chunk):
                raise ValueError(
                    f"encoder returned shape {vectors.shape} for {len(chunk)} texts;"
                    " expected (n_texts, dim)"
                )
            parts.append(vectors)
        return np.vstack(parts)

    def _fit(self, catalog: Catalog, events: Events) -> None:
        self.item_vectors_ = self._encode(catalog)

    def _add(self, catalog: Catalog) -> None:
        self.item_vectors_ = np.vstack([self.item_vectors_, self._encode(catalog)])

    def _score(self, requests: Sequence[Request], history: sp.csr_matrix) -> np.ndarray:
        users = np.asarray(_binary(history) @ self.item_vectors_)
        norms = np.linalg.norm(users, axis=1, keepdims=True)
        users /= np.where(norms > 0, norms, 1.0)
        return users @ self.item_vectors_.T
