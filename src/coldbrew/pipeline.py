"""The one orchestration: text + behaviour -> candidate scores -> blend -> top-k with reasons.

``Recommender`` is the container of a fitted model's parts and the code that wires them; the
parts themselves live in their own modules, each with one job:

* :mod:`coldbrew.text` encodes item and request text (the adapter and LoRA optional);
* :mod:`coldbrew.parts` fits the parts on one set of events: ALS and LightGCN
  (:mod:`coldbrew.models`), co-occurrence neighbours, popularity, and the text -> CF bridge
  that places items without interactions;
* :mod:`coldbrew.fitting` fits the parts once per set of training events (hold-outs and
  final, in worker processes), :mod:`coldbrew.models.tuning` learns the blend weights and
  :mod:`coldbrew.ranking.stage` the re-ranker, both against the :class:`~coldbrew.scoring.FitHost`
  protocol, never against this module;
* :mod:`coldbrew.scoring` holds the candidate sources' arithmetic and the blend (pure
  functions over a :class:`~coldbrew.scoring.Batch`), :mod:`coldbrew.shelves` the content of
  new-product shelves, :mod:`coldbrew.retrieval.ranked` retrieve-then-rank for large
  catalogs, :mod:`coldbrew.reasons` the reason written beside each item.

The four candidate sources of a request (each standardised over its allowed items, then
mixed with weights that move from the *cold* to the *warm* set as the history grows,
``warmth = n / (n + warmth_half)``):

* **cf**: the user's ALS (+ LightGCN) vector, folded in from the request history, dotted
  with item vectors; items without interactions use vectors predicted by the bridge.
* **cooccurrence**: item-to-item cosine neighbours of the history items (baskets).
* **content**: the user's text profile (decayed, event-weighted mean of the history items'
  text vectors plus the request's own words) against item text vectors.
* **popularity**: recent popularity; for items without interactions, the bridge's estimate.

Size (about 510 lines): the public methods of ``Recommender`` (fit, add_items, recommend,
similar, onboard, score_items, query_vectors) and the per-batch inputs every scoring path
shares (``batch``, the user profiles, ``sources``) stay together; everything else is a part
module above.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from coldbrew import scoring
from coldbrew.config import BlendConfig, FitConfig
from coldbrew.data.catalog import Catalog, concat_catalogs
from coldbrew.data.events import Events
from coldbrew.data.weighting import event_strengths, interaction_matrix
from coldbrew.errors import DataError, NotFittedError
from coldbrew.models.als import ALSModel, confidence
from coldbrew.parts import fill_cold_items, fit_parts
from coldbrew.reasons import reasons
from coldbrew.requests import HistoryEvent, Recommendation, Request
from coldbrew.retrieval.ranked import (
    moments,
    popular,
    recommend_retrieved,
    retrieval_indexes,
    score_given_items,
)
from coldbrew.scoring import SOURCES, Batch
from coldbrew.shelves import shelf_content

__all__ = ["Recommender", "SOURCES"]

_CHUNK = 512


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # inspecting the loaded libraries takes a while: once


def _blas_threads(n: int):
    """A context manager capping BLAS threads at ``n`` for the whole process while it is open."""
    return _threadpools().limit(limits=n, user_api="blas")


class Recommender:
    """Cold-start-aware recommender over a product catalog and an event log.

    Parameters
    ----------
    config: the typed configuration (columns, weighting, encoder, ALS, bridge, blend).
    encoder: a ``TextEncoder``; default: built from ``config.encoder``.
    """

    def __init__(self, config: FitConfig | None = None, encoder=None) -> None:
        self.config = config or FitConfig()
        self._encoder = encoder
        self._cache = None

    # ------------------------------------------------------------------ encoding
    @property
    def encoder(self):
        if self._encoder is None:
            from coldbrew.text import make_encoder

            self._encoder = make_encoder(self.config.encoder)
        return self._encoder

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Text vectors (n, d) float32 via the embedding cache (only new texts are encoded)."""
        if self._cache is None:
            from coldbrew.text import EmbeddingCache

            self._cache = EmbeddingCache()
        return self._cache.encode(self.encoder, list(texts))

    # ------------------------------------------------------------------ fitting
    def fit(self, catalog: Catalog, events: Events, progress: bool | None = None) -> Recommender:
        """Fit every part on a catalog and its events. Returns ``self``.

        Events on items missing from the catalog are dropped (counted in
        ``fit_report_["unknown_item_events"]``); exact duplicate events count once.
        """
        if len(catalog) == 0:
            raise DataError("catalog is empty: nothing to recommend")
        from coldbrew.timing import StageTimer

        self._progress = progress
        self._timer = timer = StageTimer(progress)
        from coldbrew.fitting import PartsStore, prefit

        self._parts_store = PartsStore()  # parts fitted on a set of training events, fitted once
        lora = None
        if self.config.lora.enabled:
            with timer.stage("lora"):
                lora = self._fit_lora(catalog, events)
        with timer.stage("encode"):
            text_vectors = self.encode(catalog.texts())
        self.tuning_: dict[str, dict[str, float]] = {}
        self._graph_cache: dict[str, object] = {}  # LightGCN shared by tuning candidates with one graph
        # Per-epoch curves of trained components: {name: {"epoch": [...], "loss": [...], ...}}.
        self.training_curves_: dict[str, dict[str, list[float]]] = {}
        if lora is not None:
            self.training_curves_["lora"] = lora.curve
        adapter = None  # the text adapter, trained during tuning when both are on
        prefit(self, catalog, events, text_vectors, self._parts_store)
        if self.config.blend.tune:
            from coldbrew.models.tuning import tune

            with timer.stage("tune"):
                result = tune(self, catalog, events, text_vectors)
            if result is not None:
                self.config, self.tuning_ = result.config, result.scores
                adapter = result.adapter
        stage, ranker_report, ranker_curves = None, None, {}
        self._tuned_adapter = adapter  # the ranker's hold-out fits reuse it (one adapter per fit)
        if self.config.ranker.kind != "none":  # trained on a hold-out, like the tuning above
            from coldbrew.ranking.stage import train_stage

            with timer.stage("ranker"):
                stage, ranker_report, ranker_curves = train_stage(self, catalog, events, text_vectors)
        final = self._parts_store.get(self.config, events) if adapter is None else None
        if final is not None:
            self._adopt_parts(final)
        else:
            with timer.stage("parts"):
                self._fit_parts(catalog, events, text_vectors, adapter=adapter)
        del self._parts_store
        self.reranker_ = stage
        if stage is not None:
            with timer.stage("ranker item statistics"):
                stage.item_counts = stage.count_items(self, events)
                stage.item_habits = stage.habits_of(self, events)
        if ranker_report is not None:
            self.fit_report_["ranker"] = ranker_report
        if lora is not None:
            self.fit_report_["lora"] = {
                "kept": lora.encoder is not None, "pairs": lora.pairs, "best_epoch": lora.best_epoch,
                "val_ndcg_base": lora.curve["val_ndcg"][0],
                "val_ndcg": lora.curve["val_ndcg"][lora.curve["epoch"].index(lora.best_epoch)],
                "seconds": lora.curve["seconds"][-1],
            }
        if ranker_curves:
            self.training_curves_["ranker"] = ranker_curves
        self.fit_report_["seconds"] = timer.report()
        if timer.show:
            import sys

            print(timer.summary(), file=sys.stderr, flush=True)
        del self._timer
        return self

    @property
    def progress(self) -> bool | None:
        """Whether this fit shows progress (``None``: only on a terminal)."""
        return getattr(self, "_progress", None)

    @property
    def tuned_adapter(self):
        """The text adapter tuning trained during this fit (``None``: none)."""
        return getattr(self, "_tuned_adapter", None)

    def fitted_on(self, config: FitConfig, catalog: Catalog, train: Events, text_vectors: np.ndarray,
                  adapter=None, name: str = "parts") -> Recommender:
        """A recommender with ``config`` fitted on ``train`` (a hold-out's events), sharing this
        one's encoder and embedding cache: the one this fit already fitted up front when there
        is one (:mod:`coldbrew.fitting`), else fitted now (timed as stage ``name``) and kept
        for the rest of the fit."""
        from coldbrew.timing import stage_of

        store = getattr(self, "_parts_store", None)
        inner = store.get(config, train) if store is not None and adapter is None else None
        if inner is not None:
            return inner
        inner = Recommender(config, encoder=self.encoder)
        inner._cache = self._cache
        inner._progress = False
        inner._adapter_progress = self.progress
        inner._graph_cache = getattr(self, "_graph_cache", None)  # LightGCN: shared when the graph is the same
        with stage_of(self, name):
            inner._fit_parts(catalog, train, text_vectors, adapter=adapter)
        if store is not None and getattr(inner, "adapter_", None) is None:
            store.put(config, train, inner)
        return inner

    def _adopt_parts(self, fitted: Recommender) -> None:
        """Take the fitted parts of ``fitted`` (same config, same events) as this model's own."""
        keep = {"config", "_encoder", "_cache", "_progress", "_timer", "_parts_store", "_graph_cache",
                "tuning_", "training_curves_", "_tuned_adapter"}
        self.__dict__.update({k: v for k, v in fitted.__dict__.items() if k not in keep})
        self.training_curves_.update(getattr(fitted, "training_curves_", {}))

    def _fit_lora(self, catalog: Catalog, events: Events):
        """Fine-tune the torch encoder with LoRA (``[lora]``, :func:`coldbrew.text.lora.fit_lora`).

        Returns the :class:`~coldbrew.text.lora.LoraResult` (``None``: too few pairs to train
        on); when an epoch beat the base encoder, the fine-tuned encoder replaces ``self.encoder``.
        """
        from coldbrew.errors import ConfigError
        from coldbrew.text.lora import MiniLMEncoder, fit_lora

        encoder = self.encoder
        if not isinstance(encoder, MiniLMEncoder):
            raise ConfigError(f"lora.enabled: LoRA fine-tunes the 'minilm-l6-v2' encoder, not {encoder.name!r}")
        result = fit_lora(encoder, self.config, catalog, events, progress=self._progress)
        if result is not None and result.encoder is not None:
            self._encoder = result.encoder
        elif encoder.has_lora:  # refitting a fine-tuned model, and no LoRA won this time
            self._encoder = encoder.with_lora_files(None)
        return result

    def _fit_parts(self, catalog: Catalog, events: Events, text_vectors: np.ndarray, adapter=None) -> None:
        """Fit every part on ``events`` (:func:`coldbrew.parts.fit_parts`)."""
        fit_parts(self, catalog, events, text_vectors, adapter=adapter)

    def _fill_cold_items(self, positions: np.ndarray, vectors: np.ndarray | None = None,
                         appended_from: int | None = None) -> None:
        """Bridged CF factors and popularity for items without interactions (:func:`coldbrew.parts.fill_cold_items`)."""
        fill_cold_items(self, positions, vectors, appended_from=appended_from)

    def _adapt(self, vectors: np.ndarray) -> np.ndarray:
        """Encoder vectors (n, d) -> the vectors the model scores with (adapted if it has an adapter)."""
        adapter = getattr(self, "adapter_", None)
        return vectors if adapter is None else adapter.transform(vectors)

    def _user_factors(self, strengths: sp.csr_matrix) -> np.ndarray:
        """CF user vectors (n, f) folded in from request histories (n, n_items) of strengths."""
        if getattr(self, "item_sources_", None) is not None:
            from coldbrew.models.lightgcn import edge_weights, fold_in

            graph = fold_in(self.item_sources_, edge_weights(strengths, self.config.graph.weighted))
            if self.config.graph.combine == "replace":
                return graph
            als = self._fold.fold_in(confidence(strengths, self.config.als.alpha))
            return np.hstack([als * self.cf_scales_[0], graph * self.cf_scales_[1]]).astype(np.float32)
        return self._fold.fold_in(confidence(strengths, self.config.als.alpha))

    def _refresh(self, unchanged_below: int | None = None) -> None:
        """Reset what is derived from the item arrays after they changed.

        ``unchanged_below``: rows before it are as they were (``add_items`` appends): the
        running sums behind :meth:`_moments` and the popular list are extended, not redone.
        """
        # With LightGCN side by side ("concat"), ALS owns the first als.factors columns.
        als_items = self.item_factors_[:, : self.config.als.factors]
        self._fold = ALSModel.from_factors(self.config.als, als_items, np.zeros((0, als_items.shape[1])))
        old = getattr(self, "_stats", {}) if unchanged_below is not None else {}
        # name -> (rows covered, ...): each entry is valid for its first rows-covered items
        self._stats: dict[str, tuple] = {key: v for key, v in old.items()
                                         if key in ("cf", "content", "popular") and v[0] <= unchanged_below}
        n = len(self.item_map_)
        old_n = self.cooccurrence_.shape[0]
        if old_n < n:  # appended items have no neighbours: empty rows, the arrays are shared
            c = self.cooccurrence_.tocsr()
            indptr = np.concatenate([c.indptr, np.full(n - old_n, c.indptr[-1], dtype=c.indptr.dtype)])
            self.cooccurrence_ = sp.csr_matrix((c.data, c.indices, indptr), shape=(n, n), copy=False)

    # ------------------------------------------------------------------ new items
    def add_items(self, catalog: Catalog) -> int:
        """Add products unknown at fit time (text only); no retraining. Returns how many.

        Items whose ID is already in the model are left unchanged (not counted).
        """
        self._check_fitted()
        new = np.array([i not in self.item_map_ for i in catalog.item_ids], dtype=bool)
        if not new.any():
            return 0
        added = catalog.subset(np.flatnonzero(new))
        vectors = self.encode(added.texts())
        start = len(self.item_map_)
        self.item_map_.add(added.item_ids)
        self.catalog_ = concat_catalogs(self.catalog_, added)
        self.text_vectors_ = np.vstack([self.text_vectors_, self._adapt(vectors)]).astype(np.float32)
        f = self.item_factors_.shape[1]
        self.item_factors_ = np.vstack([self.item_factors_, np.zeros((len(added), f), np.float32)])
        if getattr(self, "item_sources_", None) is not None:
            g = self.item_sources_.shape[1]
            self.item_sources_ = np.vstack([self.item_sources_, np.zeros((len(added), g), np.float32)])
        self.popularity_ = np.concatenate([self.popularity_, np.zeros(len(added), np.float32)])
        self.item_warm_ = np.concatenate([self.item_warm_, np.zeros(len(added), bool)])
        adapter = getattr(self, "adapter_", None)
        raw_for_bridge = adapter is not None and not self.config.adapter.adapt_bridge
        self._fill_cold_items(np.arange(start, start + len(added)), vectors if raw_for_bridge else None,
                              appended_from=start)
        return len(added)

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "item_map_"):
            raise NotFittedError("the recommender is not fitted: call fit() or load a model directory")

    def batch(self, requests: Sequence[Request], dense: bool = True) -> Batch:
        """Index-space inputs of a chunk; ``dense=False`` skips the (n, n_items) allowed mask."""
        n, n_items = len(requests), len(self.item_map_)
        allowed = np.ones((n, n_items) if dense else (n, 0), dtype=bool)
        now = np.full(n, self.now_, dtype=np.int64)
        last_seen = np.full(n, -1, dtype=np.int64)
        if dense:
            for r, req in enumerate(requests):
                if req.candidates is not None:
                    allowed[r] = False
                    cand = self.item_map_.lookup(req.candidates)
                    allowed[r, cand[cand >= 0]] = True
                if req.exclude:
                    ex = self.item_map_.lookup(req.exclude)
                    allowed[r, ex[ex >= 0]] = False
        # Every request's history as flat arrays, in request and history order.
        lengths = np.fromiter((len(req.history) for req in requests), dtype=np.int64, count=n)
        events = [h for req in requests for h in req.history]
        row_of = np.repeat(np.arange(n, dtype=np.int64), lengths)
        idx = self.item_map_.lookup([h.item_id for h in events])
        ts = np.fromiter((h.timestamp for h in events), dtype=np.int64, count=len(events))
        if len(events):
            np.maximum.at(last_seen, row_of, ts)
            with_history = lengths > 0
            now[with_history] = np.maximum(self.now_, last_seen[with_history])
        ok = idx >= 0
        rows_a, cols_a = row_of[ok], idx[ok]
        if dense:
            allowed[rows_a, cols_a] = False
        if len(rows_a):
            kept = np.flatnonzero(ok)
            kinds = np.array([events[j].event for j in kept], dtype=object)
            values = np.fromiter((np.nan if events[j].value is None else events[j].value for j in kept),
                                 dtype=np.float64, count=len(kept))
            # Each request decays its own history from its own "now".
            shifted = ts[ok] + (self.now_ - now[rows_a])
            strengths = event_strengths(kinds, values, shifted, self.config.weighting, self.now_)
        else:
            strengths = np.zeros(0, np.float32)
        matrix = interaction_matrix(rows_a, cols_a, strengths, (n, n_items))
        n_history = np.diff(matrix.indptr)
        texts = [req.text for req in requests]
        has_text = np.array([bool(t and t.strip()) for t in texts], dtype=bool)
        text_vectors = np.zeros((n, self.text_vectors_.shape[1]), dtype=np.float32)
        if has_text.any():
            text_vectors[has_text] = self._adapt(self.encode([t for t in texts if t and t.strip()]))
        return Batch(matrix, n_history, text_vectors, has_text, allowed, last_seen)

    def _profiles(self, batch: Batch) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
        """User CF factors (n, f), damped history (n, n_items) CSR, text profiles (n, d)."""
        strengths = batch.strengths
        damped = strengths.copy()
        damped.data = np.log1p(damped.data)
        user_factors = self._user_factors(strengths)
        profile = np.asarray(damped @ self.text_vectors_, dtype=np.float32)
        profile = scoring.normalise(scoring.normalise(profile) + batch.text_vectors)
        return user_factors, damped, profile

    def sources(self, batch: Batch, nearest: bool | None = None) -> dict[str, np.ndarray]:
        """Raw source scores, each (n, n_items) float32. ``nearest``: whether shelves read the
        nearest-history-item content (``None``: ``blend.new_item_nearest``)."""
        user_factors, damped, profile = self._profiles(batch)
        cf = scoring.item_scores(user_factors, self.item_factors_)
        cooc = np.asarray((damped @ self.cooccurrence_).todense(), dtype=np.float32)
        content = scoring.item_scores(profile, self.text_vectors_)
        shelf = scoring.shelf_rows(batch, self.item_warm_)
        new_items = shelf_content(self, batch, profile, shelf, content, nearest)
        if new_items is not None:
            rows = np.flatnonzero(shelf)
            content[np.ix_(rows, np.flatnonzero(new_items[0] >= 0))] = new_items[1][rows]
        pop = np.broadcast_to(self.popularity_, cf.shape)
        return {"content": content, "cooccurrence": cooc, "cf": cf, "popularity": pop}

    # ------------------------------------------------------------------ large catalogs
    # ------------------------------------------------------------------ large catalogs
    def _retrieval_indexes(self) -> dict[str, object]:
        """The "cf" and "content" indexes when the catalog is above ``dense_limit`` (what a
        model directory saves; :func:`coldbrew.retrieval.ranked.retrieval_indexes`)."""
        return retrieval_indexes(self)

    def _moments(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return moments(self, name)

    def _popular(self, m: int) -> np.ndarray:
        return popular(self, m)

    def blend(self, sources: dict[str, np.ndarray], batch: Batch, blend: BlendConfig | None = None) -> np.ndarray:
        """Blended scores (n, n_items) float32, -inf on disallowed items (:func:`coldbrew.scoring.blend`)."""
        return scoring.blend(sources, batch, blend or self.config.blend, self.item_warm_)

    def recommend(self, requests: Sequence[Request], k: int = 10, _mode: str = "user") -> list[Recommendation]:
        """Top-k items with scores and reasons for each request, in request order.

        Requests are scored in chunks of 512; more than one chunk is spread over
        ``[compute] recommend_threads`` threads (the answers do not depend on it).
        """
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        chunks = [requests[start : start + _CHUNK] for start in range(0, len(requests), _CHUNK)]
        if len(self.item_map_) > self.config.retrieval.dense_limit:
            return [rec for chunk in chunks for rec in recommend_retrieved(self, chunk, k, _mode)]
        if len(chunks) == 1:
            return self._recommend_dense(chunks[0], k, _mode)
        threads = min(len(chunks), self.config.compute.resolved_recommend_threads())
        # numpy and BLAS release the interpreter, so chunks scored side by side use the cores;
        # one BLAS thread each (the default of one per core, per chunk, only oversubscribes).
        # One BLAS thread on the serial path too: a product's rounding depends on BLAS's
        # thread count, and the answers must not depend on ``recommend_threads``.
        with _blas_threads(1):
            if threads <= 1:
                return [rec for chunk in chunks for rec in self._recommend_dense(chunk, k, _mode)]
            with ThreadPoolExecutor(threads, thread_name_prefix="coldbrew-recommend") as pool:
                done = list(pool.map(lambda chunk: self._recommend_dense(chunk, k, _mode), chunks))
        return [rec for part in done for rec in part]

    def _recommend_dense(self, chunk: Sequence[Request], k: int, mode: str) -> list[Recommendation]:
        """One chunk scored against the whole catalog (dense (n, n_items) arrays)."""
        batch = self.batch(chunk)
        sources = self.sources(batch)
        total = self.blend(sources, batch)
        if getattr(self, "reranker_", None) is not None and mode != "similar":
            total = self.reranker_.rerank(self, chunk, batch, sources, total, k)
        top = scoring.top_k(total, k)
        values = np.take_along_axis(total, top, axis=1)
        shown = np.isfinite(values)
        parts = scoring.source_parts(sources, batch, top, self.config.blend, self.item_warm_)
        ids = self.item_map_.ids(top.ravel())
        width = top.shape[1]
        out = []
        for r, req in enumerate(chunk):
            keep = shown[r]
            if keep.all():
                items, row_ids, row_parts, row_values = top[r], ids[r * width : (r + 1) * width], parts[r], values[r]
            else:
                items, row_parts, row_values = top[r][keep], parts[r][:, keep], values[r][keep]
                row_ids = [i for i, kept in zip(ids[r * width : (r + 1) * width], keep) if kept]
            out.append(Recommendation(
                request_id=req.request_id,
                user_id=req.user_id,
                items=row_ids,
                scores=row_values.tolist(),
                reasons=reasons(self, req, batch, r, items, row_parts, mode),
            ))
        return out

    # ------------------------------------------------------------------ reasons
    # ------------------------------------------------------------------ single queries
    def similar(self, item_id: str, k: int = 10) -> Recommendation:
        """Items most similar to one item: its CF neighbours blended with text neighbours."""
        self._check_fitted()
        self.item_map_.index(item_id)  # raises UnknownIdError naming the item
        req = Request(request_id=f"similar:{item_id}", user_id="",
                      history=(HistoryEvent(item_id, self.now_, "view"),))
        return self.recommend([req], k, _mode="similar")[0]

    def onboard(self, text: str, k: int = 10) -> Recommendation:
        """Recommendations for a brand-new user from their own words (any bundled language)."""
        self._check_fitted()
        if not text or not text.strip():
            raise DataError("onboarding text is empty: describe the user's interests in a few words")
        req = Request(request_id="onboard", user_id="", text=text)
        return self.recommend([req], k)[0]

    # ------------------------------------------------------------------ scoring given items
    def score_items(self, requests: Sequence[Request], items: np.ndarray) -> np.ndarray:
        """The blended recommendation score of given items per request (to re-rank other lists).

        ``items`` int64 ``(n, m)`` item indices per request (``-1`` = no item). Unlike
        ``recommend``, history items are scored too. Returns float32 ``(n, m)``, ``-inf``
        where ``items`` is -1 (:func:`coldbrew.retrieval.ranked.score_given_items`).
        """
        return score_given_items(self, requests, items)

    def query_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Text vectors (n, d) float32 of free texts in the space of ``text_vectors_``.

        Encoded without the embedding cache (queries are not worth keeping) and passed through
        the text adapter when the model has one, so they compare with the item vectors.
        """
        return self._adapt(np.asarray(self.encoder.encode(list(texts)), dtype=np.float32))
