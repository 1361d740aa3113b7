"""The one orchestration: text + behaviour -> candidate scores -> blend -> top-k with reasons.

Over 1,000 lines: splitting this class into composed parts is issue #20 (not done yet);
until then it stays one file rather than being cut along arbitrary lines.

``Recommender`` owns the fitted parts (ALS, item co-occurrence, the text->CF bridge, item
text vectors, popularity) and scores a *batch* of requests at a time:

* **cf**: the user's ALS factor, folded in from the request history (no retraining), dotted
  with item factors; items without interactions use factors predicted by the bridge.
* **cooccurrence**: item-to-item cosine neighbours of the history items (baskets).
* **content**: the user's text profile (decayed, event-weighted mean of the history items'
  text vectors plus the request's own words) against item text vectors.
* **popularity**: recent popularity; for items without interactions, the bridge's estimate.

Each source is standardised over the request's candidate items and mixed with weights that
move from the *cold* set to the *warm* set as the user's history grows
(``warmth = n / (n + warmth_half)``). When ``BlendConfig.tune`` is set, ``fit`` learns those
weights on a temporal hold-out of the shop's own data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from coldbrew.config import BlendConfig, FitConfig
from coldbrew.data.catalog import Catalog
from coldbrew.data.events import Events
from coldbrew.data.idmap import IdMap
from coldbrew.data.weighting import event_strengths, interaction_matrix
from coldbrew.errors import DataError, NotFittedError
from coldbrew.models.als import ALSModel, confidence
from coldbrew.models.bridge import TextToCFBridge
from coldbrew.models.cooccurrence import cooccurrence_neighbors
from coldbrew.requests import HistoryEvent, Recommendation, Request

__all__ = ["Recommender", "SOURCES"]

SOURCES = ("content", "cooccurrence", "cf", "popularity")
_CHUNK = 512
_VERBS = {
    "purchase": "bought", "order": "bought", "cart": "added to your cart",
    "add_to_cart": "added to your cart", "rating": "rated", "like": "liked",
    "wishlist": "wished for", "view": "viewed", "click": "viewed",
}


@dataclass
class _Batch:
    """Per-request inputs in index space for one chunk of requests."""

    strengths: sp.csr_matrix  # (n, n_items) decayed, event-weighted history
    n_history: np.ndarray  # (n,) distinct known history items
    text_vectors: np.ndarray  # (n, d) request text (zeros when none)
    has_text: np.ndarray  # (n,) bool
    allowed: np.ndarray  # (n, n_items) bool
    last_seen: np.ndarray  # (n,) int64 newest history timestamp (any item), -1 without history
    # source name -> (its raw scores, their z-scores): the blend and the ranker share them
    _z: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    _count: np.ndarray | None = field(default=None, repr=False)
    _shelf: np.ndarray | None = field(default=None, repr=False)  # (n,) bool, see Recommender._shelf

    def standardised(self, name: str, scores: np.ndarray) -> np.ndarray:
        """``_standardise(scores, allowed)``, computed once per source array of this batch."""
        cached = self._z.get(name)
        if cached is None or cached[0] is not scores:
            if self._count is None:
                self._count = _allowed_count(self.allowed)
            cached = self._z[name] = (scores, _standardise(scores, self.allowed, self._count))
        return cached[1]


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
        from coldbrew.fitting import PartsStore

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
        self._prefit(catalog, events, text_vectors)
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

    def _prefit(self, catalog: Catalog, events: Events, text_vectors: np.ndarray) -> None:
        """Fit the parts of every hold-out fit tuning and the ranker will make, and of the
        final fit, up front and in parallel (:mod:`coldbrew.fitting`); they are independent.

        Skipped with the text adapter on (hold-out fits then reuse the adapter tuning trains)
        and when the hold-outs' part settings are only known after tuning.
        """
        from coldbrew.fitting import PartsJob, fit_parts
        from coldbrew.models.tuning import holdout_jobs, parts_config

        if self.config.adapter.enabled:
            return
        config = parts_config(self.config, events) if self.config.blend.tune else self.config
        if config is None:
            return
        jobs: list[PartsJob] = []
        if self.config.blend.tune:
            jobs += holdout_jobs(self.config, events)
        if self.config.ranker.kind != "none":
            from coldbrew.ranking.stage import period_jobs

            jobs += period_jobs(self.config.ranker, self.config.blend.validation_share, config, events)
        if not jobs:
            return  # nothing to fit on hold-outs: the final fit runs as usual
        jobs.append(PartsJob("final", config, events))
        fit_parts(self, jobs, catalog, text_vectors, self._parts_store)

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
        """Fit every part on ``events``; ``text_vectors`` (n_items, d) are the encoder's own.

        ``adapter``: a fitted :class:`~coldbrew.text.adapter.TextAdapter` to use instead of
        training one (tuning trains it once, on its hold-out's train part, for all its
        candidates and for the final fit).
        """
        cfg = self.config
        self._indexes: dict[str, object] = {}
        self._stats = {}  # a refit starts its derived statistics afresh (see _refresh)
        self._neighbors = None
        self.item_map_ = IdMap(catalog.item_ids, kind="item")
        self.catalog_ = catalog
        self.text_vectors_ = np.ascontiguousarray(text_vectors, dtype=np.float32)
        item_idx = self.item_map_.lookup(events.item_ids)
        known = item_idx >= 0
        self.fit_report_ = {"events": len(events), "unknown_item_events": int((~known).sum())}
        ev = events.take(known)
        item_idx = item_idx[known]
        if len(ev) == 0:
            raise DataError(
                "no events refer to items in the catalog: check that the item_id columns match"
            )
        self.user_map_ = IdMap(kind="user")
        user_idx = self.user_map_.add(ev.user_ids)
        from coldbrew.data.weighting import duplicate_mask

        dup = duplicate_mask(user_idx, item_idx, ev.timestamps, ev.events)
        self.fit_report_["duplicate_events"] = int(dup.sum())
        ev, user_idx, item_idx = ev.take(~dup), user_idx[~dup], item_idx[~dup]
        self.now_ = int(ev.timestamps.max())
        shape = (len(self.user_map_), len(self.item_map_))
        strengths = event_strengths(ev.events, ev.values, ev.timestamps, cfg.weighting, self.now_)
        matrix = interaction_matrix(user_idx, item_idx, strengths, shape)
        bridge_vectors = self._fit_adapter(adapter, user_idx, item_idx, ev.timestamps, strengths > 0)
        self._fit_cf(matrix, user_idx, item_idx, ev.timestamps)
        self.cooccurrence_ = cooccurrence_neighbors(matrix)
        trend = event_strengths(
            ev.events, ev.values, ev.timestamps,
            replace(cfg.weighting, half_life_days=cfg.weighting.trend_half_life_days), self.now_,
        )
        counts = np.bincount(item_idx[trend > 0], weights=trend[trend > 0], minlength=shape[1])
        popularity = np.log1p(counts).astype(np.float32)
        self.item_warm_ = np.asarray((matrix > 0).sum(axis=0)).ravel() > 0
        self.fit_report_["warm_items"] = int(self.item_warm_.sum())
        self.fit_report_["users"] = shape[0]
        # The bridge learns text -> (ALS factors, popularity) on warm items with text.
        has_text = np.any(self.text_vectors_ != 0, axis=1)
        train = self.item_warm_ & has_text
        cf_items = self._cf_item_vectors()
        # With LightGCN the bridge also predicts the fold-in sources of new items.
        sources = [self.graph_.item_sources_] if self.graph_ is not None else []
        targets = np.hstack([cf_items, *sources, popularity[:, None]])
        self.bridge_ = TextToCFBridge(cfg.bridge)
        if train.sum() >= 2:
            self.bridge_.fit(self._bridge_inputs(np.flatnonzero(train), bridge_vectors[train]), targets[train])
        else:  # no text at all: the bridge predicts the mean of the warm items
            self.bridge_.fit(np.zeros((1, self.text_vectors_.shape[1] + max(cfg.bridge.lexical_dim, 0)), np.float32),
                             targets[self.item_warm_][:1] if self.item_warm_.any() else targets[:1])
        self.fit_report_["bridge_ridge"] = self.bridge_.ridge_
        self.item_factors_ = cf_items.copy()
        self.item_sources_ = self.graph_.item_sources_.copy() if self.graph_ is not None else None
        self.popularity_ = popularity
        cold_items = np.flatnonzero(~self.item_warm_)
        self._fill_cold_items(cold_items, bridge_vectors[cold_items])

    def _fit_adapter(self, adapter, user_idx: np.ndarray, item_idx: np.ndarray, timestamps: np.ndarray, positive: np.ndarray) -> np.ndarray:
        """Train (or take) the text adapter and move ``text_vectors_`` into its space.

        Returns the (n_items, d) vectors the bridge should read: the adapted ones, or the
        encoder's own when ``adapter.adapt_bridge`` is false.
        """
        raw = self.text_vectors_
        self.adapter_ = adapter
        if adapter is None and self.config.adapter.enabled:
            from coldbrew.text.adapter import train_adapter

            self.adapter_ = train_adapter(self.config.adapter, raw, user_idx[positive], item_idx[positive],
                                          timestamps[positive], progress=getattr(self, "_adapter_progress", self._progress))
        if self.adapter_ is None:
            return raw
        if getattr(self.adapter_, "curve_", None):
            if not hasattr(self, "training_curves_"):
                self.training_curves_ = {}
            self.training_curves_["adapter"] = self.adapter_.curve_
        self.text_vectors_ = self.adapter_.transform(raw)
        return self.text_vectors_ if self.config.adapter.adapt_bridge else raw

    def _adapt(self, vectors: np.ndarray) -> np.ndarray:
        """Encoder vectors (n, d) -> the vectors the model scores with (adapted if it has an adapter)."""
        adapter = getattr(self, "adapter_", None)
        return vectors if adapter is None else adapter.transform(vectors)

    def _bridge_inputs(self, positions: np.ndarray, vectors: np.ndarray | None = None) -> np.ndarray:
        """What the bridge reads for these items: text vectors (+ hashed tokens if configured).

        ``vectors`` (len(positions), d): the text vectors to read (default: ``text_vectors_``).
        """
        vectors = self.text_vectors_[positions] if vectors is None else vectors
        dim = self.config.bridge.lexical_dim
        if dim <= 0:
            return vectors
        from coldbrew.text import HashingEncoder

        texts = [t.lower() for t in self.catalog_.subset(positions).texts()]  # only these items: add_items stays O(new)
        lexical = HashingEncoder(dim=dim).encode(texts)
        return np.hstack([vectors, lexical]) / np.sqrt(2.0)

    def _fill_cold_items(self, positions: np.ndarray, vectors: np.ndarray | None = None,
                         appended_from: int | None = None) -> None:
        """Give items without interactions bridged CF factors and popularity (``vectors``: see ``_bridge_inputs``).

        ``appended_from``: set by ``add_items`` when only items from this row on are new and
        nothing before it changed (cached catalog statistics are then extended, not redone).
        """
        if len(positions) == 0:
            self._refresh(unchanged_below=appended_from)
            return
        predicted = self.bridge_.predict(self._bridge_inputs(positions, vectors))
        f = self.item_factors_.shape[1]
        self.item_factors_[positions] = predicted[:, :f]
        if getattr(self, "item_sources_", None) is not None:
            self.item_sources_[positions] = predicted[:, f : f + self.item_sources_.shape[1]]
        if self.config.augmentation.pseudo_interactions:
            self._fold_in_pseudo(positions)
        # A product nobody has bought yet is less proven than a best-seller with the same text.
        self.popularity_[positions] = np.minimum(predicted[:, -1], np.median(self.popularity_[self.item_warm_]) if self.item_warm_.any() else 0.0)
        self._refresh(unchanged_below=appended_from)

    def _fit_cf(self, matrix: sp.csr_matrix, user_idx: np.ndarray, item_idx: np.ndarray, timestamps: np.ndarray) -> None:
        """Fit the CF model(s) on the (optionally augmented) interaction strengths.

        Sets ``als_``, ``graph_`` (LightGCN or ``None``) and ``interactions_`` (the binary
        users x items matrix, kept for folding new items in from pseudo users).
        """
        cfg = self.config
        aug = cfg.augmentation
        cf_matrix = matrix
        if aug.generative:
            from coldbrew.models.augmentation import generative_interactions, markov_transitions

            transitions = markov_transitions(user_idx, item_idx, timestamps, matrix.shape[1])
            last = np.full(matrix.shape[0], -1, dtype=np.int64)
            order = np.lexsort((timestamps, user_idx))
            last[user_idx[order]] = item_idx[order]  # the latest assignment wins
            cf_matrix = generative_interactions(
                cf_matrix, transitions, last, aug.generative_max_history, aug.generative_events,
                aug.pseudo_weight, seed=aug.random_state,
            )
        if aug.pseudo_interactions:
            from coldbrew.models.augmentation import pseudo_interactions

            cf_matrix = pseudo_interactions(
                cf_matrix, self.text_vectors_, aug.pseudo_max_events, aug.pseudo_neighbors, aug.pseudo_weight
            )
        self.fit_report_["augmented_entries"] = int(cf_matrix.nnz - matrix.nnz)
        conf = confidence(cf_matrix, cfg.als.alpha)
        if aug.ensemble > 0:
            from coldbrew.models.augmentation import bootstrap_als

            self.als_ = bootstrap_als(conf, cfg.als, aug.ensemble, seed=aug.random_state, progress=self._progress)
        else:
            self.als_ = ALSModel(cfg.als).fit(conf, progress=self._progress)
        self.interactions_ = sp.csr_matrix(matrix > 0, dtype=np.float32)
        self.graph_ = None
        if cfg.graph.enabled:
            from coldbrew.models.lightgcn import LightGCN

            cache = getattr(self, "_graph_cache", None)
            weights = cf_matrix.data.tobytes() if cfg.graph.weighted else b""
            key = (cf_matrix.shape, cf_matrix.indptr.tobytes(), cf_matrix.indices.tobytes(), weights, cfg.graph)
            if cache is not None and cache.get("key") == key:  # tuning candidates share one graph
                self.graph_ = cache["model"]
            else:
                self.graph_ = LightGCN(cfg.graph).fit(cf_matrix, progress=self._progress)
                if cache is not None:
                    cache.update(key=key, model=self.graph_)
            if not hasattr(self, "training_curves_"):
                self.training_curves_ = {}
            self.training_curves_["lightgcn"] = dict(self.graph_.curve_)
            self.cf_scales_ = _score_scales(self.als_, self.graph_)

    def _cf_item_vectors(self) -> np.ndarray:
        """Item vectors (n_items, f) of the cf source: ALS, LightGCN, or both side by side."""
        if self.graph_ is None:
            return self.als_.item_factors_
        if self.config.graph.combine == "replace":
            return self.graph_.item_embeddings_
        return np.hstack([self.als_.item_factors_, self.graph_.item_embeddings_])

    def _fold_in_pseudo(self, positions: np.ndarray) -> None:
        """Mix the bridge's CF factors of cold items with a fold-in from pseudo users.

        The pseudo users of an item are the users of its text-nearest warm items
        (:func:`coldbrew.models.augmentation.pseudo_user_rows`); items that find none keep
        the bridge's estimate.
        """
        from coldbrew.models.augmentation import pseudo_user_rows

        aug = self.config.augmentation
        warm = np.flatnonzero(self.item_warm_[: self.interactions_.shape[1]])
        rows = pseudo_user_rows(
            self.interactions_, self.text_vectors_, positions, warm, aug.pseudo_neighbors, aug.pseudo_weight,
        )
        found = np.diff(rows.indptr) > 0
        if not found.any():
            return
        rows = rows[found]
        users = self.als_.user_factors_
        folded = ALSModel.from_factors(self.config.als, users, np.zeros((0, users.shape[1]))).fold_in(
            confidence(rows, self.config.als.alpha)
        )
        if self.graph_ is not None:
            graph = self.graph_.fold_in_items(rows)
            folded = graph if self.config.graph.combine == "replace" else np.hstack([folded, graph])
        target = positions[found]
        self.item_factors_[target] = 0.5 * self.item_factors_[target] + 0.5 * folded

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
        self.catalog_ = _concat_catalogs(self.catalog_, added)
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

    def _batch(self, requests: Sequence[Request], dense: bool = True) -> _Batch:
        """Index-space inputs of a chunk; ``dense=False`` skips the (n, n_items) allowed mask."""
        n, n_items = len(requests), len(self.item_map_)
        rows, cols, evs, vals, tss = [], [], [], [], []
        allowed = np.ones((n, n_items) if dense else (n, 0), dtype=bool)
        now = np.full(n, self.now_, dtype=np.int64)
        last_seen = np.full(n, -1, dtype=np.int64)
        for r, req in enumerate(requests):
            if req.candidates is not None and dense:
                allowed[r] = False
                cand = self.item_map_.lookup(req.candidates)
                allowed[r, cand[cand >= 0]] = True
            if req.exclude and dense:
                ex = self.item_map_.lookup(req.exclude)
                allowed[r, ex[ex >= 0]] = False
            history = req.history
            if history:
                idx = self.item_map_.lookup([h.item_id for h in history])
                ok = idx >= 0
                if dense:
                    allowed[r, idx[ok]] = False
                ts = np.fromiter((h.timestamp for h in history), dtype=np.int64, count=len(history))
                last_seen[r] = ts.max()
                now[r] = max(self.now_, int(last_seen[r]))
                if ok.any():
                    rows.append(np.full(int(ok.sum()), r, dtype=np.int64))
                    cols.append(idx[ok])
                    evs.append(np.array([h.event for h in history], dtype=object)[ok])
                    vals.append(np.fromiter((np.nan if h.value is None else h.value for h in history),
                                            dtype=np.float64, count=len(history))[ok])
                    tss.append(ts[ok])
        rows_a = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        if len(rows_a):
            # Each request decays its own history from its own "now".
            shifted = np.concatenate(tss) + (self.now_ - now[rows_a])
            strengths = event_strengths(np.concatenate(evs), np.concatenate(vals), shifted, self.config.weighting, self.now_)
        else:
            strengths = np.zeros(0, np.float32)
        cols_a = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        matrix = interaction_matrix(rows_a, cols_a, strengths, (n, n_items))
        n_history = np.diff(matrix.indptr)
        texts = [req.text for req in requests]
        has_text = np.array([bool(t and t.strip()) for t in texts], dtype=bool)
        text_vectors = np.zeros((n, self.text_vectors_.shape[1]), dtype=np.float32)
        if has_text.any():
            text_vectors[has_text] = self._adapt(self.encode([t for t in texts if t and t.strip()]))
        return _Batch(matrix, n_history, text_vectors, has_text, allowed, last_seen)

    def _profiles(self, batch: _Batch) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
        """User CF factors (n, f), damped history (n, n_items) CSR, text profiles (n, d)."""
        strengths = batch.strengths
        damped = strengths.copy()
        damped.data = np.log1p(damped.data)
        user_factors = self._user_factors(strengths)
        profile = np.asarray(damped @ self.text_vectors_, dtype=np.float32)
        profile = _normalise(_normalise(profile) + batch.text_vectors)
        return user_factors, damped, profile

    def _new_item_neighbors(self) -> tuple[np.ndarray, sp.csr_matrix]:
        """Items without interactions (c,) and their nearest products by text (n_items, c) weights.

        Built on first use after a fit or load; items added with ``add_items`` are merged in
        (new columns for them, and each older list takes them as candidates) without a rebuild.
        """
        from coldbrew.models import neighbors as nb

        n = len(self.item_map_)
        cold = np.flatnonzero(~self.item_warm_)
        cache = getattr(self, "_neighbors", None)
        if cache is not None and cache["n"] == n and np.array_equal(cold, cache["cold"]):
            return cold, cache["weights"]
        old = cache["cold"] if cache is not None else np.zeros(0, np.int64)
        grown = (cache is not None and cache["n"] < n and len(cold) >= len(old)
                 and np.array_equal(cold[: len(old)], old) and bool((cold[len(old):] >= cache["n"]).all()))
        if grown:  # only appended items since the lists were built
            ids, sims = nb.merge_neighbors(cache["ids"], cache["sims"], self.text_vectors_, old, np.arange(cache["n"], n))
            new_ids, new_sims = nb.text_neighbors(self.text_vectors_, cold[len(old):])
            ids, sims = np.vstack([ids, new_ids]), np.vstack([sims, new_sims])
        else:
            ids, sims = nb.text_neighbors(self.text_vectors_, cold)
        self._neighbors = {"n": n, "cold": cold, "ids": ids, "sims": sims, "weights": nb.neighbor_matrix(ids, sims, n)}
        return cold, self._neighbors["weights"]

    def _new_item_content(self, batch: _Batch, profile: np.ndarray, shelf: np.ndarray,
                          content: np.ndarray | None = None,
                          nearest: bool | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """Content scores of the items without interactions on shelf rows: ``(slot (n_items,),
        scores (n, c))``.

        ``shelf`` (n,) bool: the rows that may only get new products (:meth:`_shelf`); other
        rows of ``scores`` are not filled and must not be read. ``slot[i]`` is item i's column
        in ``scores`` (-1: an item with interactions). The request's profile cosines of these
        items (taken from ``content`` (n, n_items) when already computed), re-ordered by
        nearest-history-item similarity (:mod:`coldbrew.models.neighbors`); ``None`` when
        ``nearest`` (default ``blend.new_item_nearest``) is off, no row is a shelf, or every
        item has interactions.
        """
        if nearest is None:
            nearest = self.config.blend.new_item_nearest
        if not nearest or not shelf.any() or self.item_warm_.all():  # shelf first: O(n) check last
            return None
        from coldbrew.models import neighbors as nb

        cold, weights = self._new_item_neighbors()
        cold_vectors = self.text_vectors_[cold]
        rows = np.flatnonzero(shelf)
        words = None
        if batch.has_text[rows].any():
            words = np.full((len(rows), len(cold)), np.nan, dtype=np.float32)
            has_text = batch.has_text[rows]
            words[has_text] = batch.text_vectors[rows[has_text]] @ cold_vectors.T
        nearest = nb.nearest_scores(batch.strengths[rows], weights, words)
        target = content[np.ix_(rows, cold)] if content is not None else profile[rows] @ cold_vectors.T
        slot = np.full(len(self.item_map_), -1, dtype=np.int64)
        slot[cold] = np.arange(len(cold))
        scores = np.zeros((len(shelf), len(cold)), dtype=np.float32)
        scores[rows] = nb.match_quantiles(target, nearest)
        return slot, scores

    def _sources(self, batch: _Batch, nearest: bool | None = None) -> dict[str, np.ndarray]:
        """Raw source scores, each (n, n_items) float32. ``nearest``: whether shelves read the
        nearest-history-item content (``None``: ``blend.new_item_nearest``)."""
        user_factors, damped, profile = self._profiles(batch)
        cf = _item_scores(user_factors, self.item_factors_)
        cooc = np.asarray((damped @ self.cooccurrence_).todense(), dtype=np.float32)
        content = _item_scores(profile, self.text_vectors_)
        shelf = self._shelf(batch)
        new_items = self._new_item_content(batch, profile, shelf, content, nearest)
        if new_items is not None:
            rows = np.flatnonzero(shelf)
            content[np.ix_(rows, np.flatnonzero(new_items[0] >= 0))] = new_items[1][rows]
        pop = np.broadcast_to(self.popularity_, cf.shape)
        return {"content": content, "cooccurrence": cooc, "cf": cf, "popularity": pop}

    # ------------------------------------------------------------------ large catalogs
    def _index(self, name: str):
        """ANN index over item CF factors ("cf") or text vectors ("content"), built lazily."""
        from coldbrew.retrieval import make_index

        vectors = self.item_factors_ if name == "cf" else self.text_vectors_
        if not hasattr(self, "_indexes"):  # a loaded model builds its indexes on first use
            self._indexes = {}
        index = self._indexes.get(name)
        if index is None:
            r = self.config.retrieval
            index = make_index(r.index, vectors.shape[1], exact_below=r.exact_below, nprobe=r.nprobe)
            self._indexes[name] = index
        if hasattr(index, "refine_with"):  # approximate codes are re-scored with the item vectors
            index.refine_with(vectors)
        if len(index) < len(vectors):  # new items are appended, so only the tail is added
            index.add(np.ascontiguousarray(vectors[len(index):], dtype=np.float32))
        return index

    def _retrieval_indexes(self) -> dict[str, object]:
        """The "cf" and "content" indexes, built now, when the catalog is above ``dense_limit``
        (``{}`` otherwise: small catalogs are scored densely). What a model directory saves."""
        if len(self.item_map_) <= self.config.retrieval.dense_limit:
            return {}
        return {name: self._index(name) for name in ("cf", "content")}

    def _moments(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Mean (d,) and covariance (d, d) of item vectors: exact per-user score statistics.

        Kept as float64 running sums (count, sum, sum of outer products), so items appended by
        ``add_items`` are folded in at O(new items) instead of a pass over the catalog.
        """
        vectors = self.item_factors_ if name == "cf" else self.text_vectors_
        n, d = vectors.shape
        count, total, outer = self._stats.get(name, (0, np.zeros(d), np.zeros((d, d))))
        if count < n:
            total, outer = total.copy(), outer.copy()
            for start in range(count, n, 65_536):  # bounded float64 copies
                block = vectors[start : min(start + 65_536, n)].astype(np.float64)
                total += block.sum(axis=0)
                outer += block.T @ block
            count = n
            self._stats[name] = (count, total, outer)
        cached = self._stats.get(f"{name}-moments")
        if cached is None or cached[0] != count:
            mean = total / max(count, 1)
            cached = self._stats[f"{name}-moments"] = (count, mean, outer / max(count, 1) - np.outer(mean, mean))
        return cached[1], cached[2]

    def _popular(self, m: int) -> np.ndarray:
        """The ``m`` most popular items, most popular first (ties: lower index), cached."""
        n = len(self.popularity_)
        cached = self._stats.get("popular")
        if cached is not None and cached[1] == m and cached[0] <= n:
            # rows before cached[0] kept their popularity: only the appended ones can enter
            pool = np.concatenate([cached[2], np.arange(cached[0], n)])
            top = pool[np.lexsort((pool, -self.popularity_[pool]))[:m]]
        else:
            top = np.argsort(-self.popularity_, kind="stable")[:m]
        self._stats["popular"] = (n, m, top)
        return top

    def _catalog_stats(self) -> tuple[int, float, float]:
        """(warm items, popularity mean, popularity std), computed once per change of the items."""
        cached = self._stats.get("catalog")
        if cached is None or cached[0] != len(self.popularity_):
            cached = self._stats["catalog"] = (len(self.popularity_), int(self.item_warm_.sum()),
                                               float(self.popularity_.mean()), float(self.popularity_.std()))
        return cached[1:]

    def _recommend_retrieved(self, chunk: Sequence[Request], k: int, mode: str) -> list[Recommendation]:
        """Retrieve-then-rank for catalogs above ``retrieval.dense_limit`` items.

        Each source proposes ``per_source`` candidates (ANN over CF factors, ANN over text
        vectors, co-occurrence neighbours, popular items); the pooled candidates are scored
        exactly as the dense path does, standardised with each user's score mean and
        variance over the whole catalog (computed in closed form, without scoring it).
        """
        m = self.config.retrieval.per_source
        n_items = len(self.item_map_)
        batch = self._batch(chunk, dense=False)
        user_factors, damped, profile = self._profiles(batch)
        cooc = (damped @ self.cooccurrence_).tocsr()
        n_warm, pop_mean, pop_std = self._catalog_stats()
        blocked_all, pools = [], []
        shelf = np.zeros(len(chunk), dtype=bool)  # as _shelf: no item with interactions allowed
        for r, req in enumerate(chunk):
            blocked = self.item_map_.lookup([h.item_id for h in req.history] + list(req.exclude))
            blocked_all.append(np.unique(blocked[blocked >= 0]))
            if req.candidates is not None:
                pool = self.item_map_.lookup(req.candidates)
                pools.append(np.setdiff1d(pool[pool >= 0], blocked_all[r]))
                shelf[r] = not self.item_warm_[pools[r]].any()
            else:
                pools.append(None)
                shelf[r] = int(self.item_warm_[blocked_all[r]].sum()) == n_warm
        new_items = self._new_item_content(batch, profile, shelf)
        # History and excluded items are excluded inside the ANN search so they use no slots.
        _, cf_ids = self._index("cf").search(user_factors, m, exclude=blocked_all)
        _, text_ids = self._index("content").search(profile, m, exclude=blocked_all)
        popular = self._popular(m)
        weights = self._weights(batch.n_history)
        b = self.config.blend
        stats = {}
        for name, queries in (("cf", user_factors), ("content", profile)):
            mean, cov = self._moments(name)
            q = queries.astype(np.float64)
            stats[name] = (q @ mean, np.sqrt(np.maximum(np.einsum("nd,de,ne->n", q, cov, q), 0.0)))
        rerank_users = None
        if getattr(self, "reranker_", None) is not None and mode != "similar":
            rerank_users = self.reranker_.user_table(self, chunk, batch)
        out = []
        for r, req in enumerate(chunk):
            lo, hi = cooc.indptr[r], cooc.indptr[r + 1]
            pool = pools[r]
            if pool is None:
                pool = np.concatenate([cf_ids[r], text_ids[r], cooc.indices[lo:hi], popular])
                pool = np.setdiff1d(pool[pool >= 0], blocked_all[r])
            row_cooc = _sparse_row_at(cooc.indices[lo:hi], cooc.data[lo:hi], pool)
            c_sum, c_sq = cooc.data[lo:hi].sum(), np.square(cooc.data[lo:hi]).sum()
            c_mean = c_sum / n_items
            c_std = np.sqrt(max(c_sq / n_items - c_mean**2, 0.0))
            content = profile[r] @ self.text_vectors_[pool].T
            if new_items is not None and shelf[r]:
                at = new_items[0][pool]
                content[at >= 0] = new_items[1][r, at[at >= 0]]
            raw = {
                "content": (content, *(v[r] for v in stats["content"])),
                "cooccurrence": (row_cooc, c_mean, c_std),
                "cf": (user_factors[r] @ self.item_factors_[pool].T, *(v[r] for v in stats["cf"])),
                "popularity": (self.popularity_[pool], pop_mean, pop_std),
            }
            cold = ~self.item_warm_[pool]
            item_weights = self._item_weights(b, shelf[r : r + 1])[0]
            parts = np.zeros((len(SOURCES), len(pool)), dtype=np.float32)
            zs = np.zeros((len(pool), len(SOURCES)), dtype=np.float32)
            for s_i, name in enumerate(SOURCES):
                values, mean, std = raw[name]
                z = (values - mean) / std if std > 1e-9 else np.zeros(len(pool))
                zs[:, s_i] = z
                parts[s_i] = np.where(cold, item_weights[s_i], weights[r, s_i]) * z
            total = parts.sum(axis=0)
            if rerank_users is not None:
                total = self.reranker_.rerank_pool(self, rerank_users, r, pool, total, zs, batch.text_vectors[r], k)
            order = np.argsort(-total, kind="stable")[:k]
            order = order[np.isfinite(total[order])]
            items = pool[order]
            out.append(Recommendation(
                request_id=req.request_id, user_id=req.user_id,
                items=self.item_map_.ids(items), scores=[float(total[o]) for o in order],
                reasons=self._reasons(req, batch, r, items, parts[:, order], mode),
            ))
        return out

    def _weights(self, n_history: np.ndarray, blend: BlendConfig | None = None) -> np.ndarray:
        """Blend weights (n, len(SOURCES)) interpolated by the user's warmth."""
        b = blend or self.config.blend
        cold = np.array([b.cold_content, b.cold_cooccurrence, b.cold_cf, b.cold_popularity])
        warm = np.array([b.warm_content, b.warm_cooccurrence, b.warm_cf, b.warm_popularity])
        warmth = n_history / (n_history + b.warmth_half)
        return ((1 - warmth)[:, None] * cold + warmth[:, None] * warm).astype(np.float32)

    def _blend(self, sources: dict[str, np.ndarray], batch: _Batch, blend: BlendConfig | None = None) -> np.ndarray:
        """Blended scores (n, n_items) float32, -inf on disallowed items.

        Items without interactions (new products) use the ``new_item_*`` weights (``shelf_*``
        on rows that may only get new products): their CF factors and popularity are the
        bridge's estimates, not observations. The per-source parts behind a score are in
        :meth:`_parts` (computed for the shown items only).
        """
        b = blend or self.config.blend
        weights = self._weights(batch.n_history, b)
        item_weights = self._item_weights(b, self._shelf(batch))
        cold = np.flatnonzero(~self.item_warm_)
        total = np.zeros(batch.allowed.shape, dtype=np.float32)
        cold_total = np.zeros((len(total), len(cold)), dtype=np.float32)
        for s, name in enumerate(SOURCES):
            z = batch.standardised(name, sources[name])
            total += weights[:, s, None] * z
            cold_total += item_weights[:, s, None] * z[:, cold]
        total[:, cold] = cold_total
        total[~batch.allowed] = -np.inf
        return total

    def _shelf(self, batch: _Batch) -> np.ndarray:
        """(n,) bool: the batch's rows that may only get items without interactions (a
        new-arrivals shelf: candidates that are all new products); computed once per batch."""
        if batch._shelf is None:
            batch._shelf = ~batch.allowed[:, self.item_warm_].any(axis=1)
        return batch._shelf

    @staticmethod
    def _item_weights(b: BlendConfig, shelf: np.ndarray) -> np.ndarray:
        """Weights (n, len(SOURCES)) of items without interactions: ``shelf_*`` on rows where
        ``shelf`` (n,) is true (``None`` falls back to ``new_item_*``), ``new_item_*`` where
        new items compete with the rest of the catalog. Co-occurrence is 0: they have none."""
        listed = np.array([b.new_item_content, 0.0, b.new_item_cf, b.new_item_popularity], np.float32)
        shelved = np.array([listed[0] if b.shelf_content is None else b.shelf_content, 0.0,
                            listed[2] if b.shelf_cf is None else b.shelf_cf,
                            listed[3] if b.shelf_popularity is None else b.shelf_popularity], np.float32)
        return np.where(np.asarray(shelf, dtype=bool)[:, None], shelved, listed)

    def _parts(self, sources: dict[str, np.ndarray], batch: _Batch, r: int, items: np.ndarray,
               blend: BlendConfig | None = None) -> np.ndarray:
        """Weighted source scores (len(SOURCES), len(items)) of row ``r``'s ``items``: what
        :meth:`_blend` summed for them."""
        b = blend or self.config.blend
        items = np.asarray(items, dtype=np.int64)
        weights = self._weights(batch.n_history[r : r + 1], b)[0]
        item_weights = self._item_weights(b, self._shelf(batch)[r : r + 1])[0]
        cold = ~self.item_warm_[items]
        parts = np.zeros((len(SOURCES), len(items)), dtype=np.float32)
        for s, name in enumerate(SOURCES):
            parts[s] = np.where(cold, item_weights[s], weights[s]) * batch.standardised(name, sources[name])[r, items]
        return parts

    def recommend(self, requests: Sequence[Request], k: int = 10, _mode: str = "user") -> list[Recommendation]:
        """Top-k items with scores and reasons for each request, in request order."""
        self._check_fitted()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        out: list[Recommendation] = []
        if len(self.item_map_) > self.config.retrieval.dense_limit:
            for start in range(0, len(requests), _CHUNK):
                out += self._recommend_retrieved(requests[start : start + _CHUNK], k, _mode)
            return out
        for start in range(0, len(requests), _CHUNK):
            chunk = requests[start : start + _CHUNK]
            batch = self._batch(chunk)
            sources = self._sources(batch)
            total = self._blend(sources, batch)
            if getattr(self, "reranker_", None) is not None and _mode != "similar":
                total = self.reranker_.rerank(self, chunk, batch, sources, total, k)
            top = _top_k(total, k)
            for r, req in enumerate(chunk):
                items = [i for i in top[r] if np.isfinite(total[r, i])]
                out.append(Recommendation(
                    request_id=req.request_id,
                    user_id=req.user_id,
                    items=self.item_map_.ids(items),
                    scores=[float(total[r, i]) for i in items],
                    reasons=self._reasons(req, batch, r, np.asarray(items, dtype=np.int64),
                                         self._parts(sources, batch, r, items), _mode),
                ))
        return out

    # ------------------------------------------------------------------ reasons
    def _title(self, i: int) -> str:
        title = str(self.catalog_.titles[i]) or str(self.item_map_.ids([i])[0])
        return title if len(title) <= 60 else title[:57] + "..."

    def _reasons(self, req: Request, batch: _Batch, r: int, items: np.ndarray, parts: np.ndarray, mode: str = "user") -> list[str]:
        """One human reason per recommended item: its strongest source, made concrete.

        ``items`` (k,) item indices; ``parts`` (len(SOURCES), k) their weighted source scores.
        The anchor ("because you bought X") is the history item closest to each recommended
        item under that source; all anchors of a request come from one small matrix.
        """
        lo, hi = batch.strengths.indptr[r], batch.strengths.indptr[r + 1]
        hist = batch.strengths.indices[lo:hi]
        items = np.asarray(items, dtype=np.int64)
        # A source with no weight for an item (co-occurrence for a new product) is never its reason.
        sources = [SOURCES[int(s)] for s in np.argmax(np.where(parts != 0, parts, -np.inf), axis=0)] if len(items) else []
        anchors: dict[str, np.ndarray] = {}
        if len(hist):
            needed = set(sources)
            if "cooccurrence" in needed:
                anchors["cooccurrence"] = hist[np.argmax(self.cooccurrence_[hist][:, items].toarray(), axis=0)]
            if "cf" in needed:
                anchors["cf"] = hist[np.argmax(self.item_factors_[hist] @ self.item_factors_[items].T, axis=0)]
            if "content" in needed:
                anchors["content"] = hist[np.argmax(self.text_vectors_[hist] @ self.text_vectors_[items].T, axis=0)]
        last_event = {h.item_id: h.event for h in req.history}
        out = []
        for n, (i, source) in enumerate(zip(items, sources)):
            new_item = not self.item_warm_[i]
            if source == "content" and batch.has_text[r] and (len(hist) == 0 or parts[0, n] > 0):
                words = _matching_words(req.text or "", self._title(i))
                if words:
                    out.append(f"matches '{words}' in your interests")
                else:
                    out.append(f"matches your interests ('{_clip(req.text or '', 40)}')")
                continue
            if source in anchors:
                j = int(anchors[source][n])
                if mode == "similar":
                    out.append({
                        "cooccurrence": "often bought together",
                        "cf": "new arrival for the same shoppers" if new_item else "liked by the same shoppers",
                        "content": "similar product description",
                    }[source])
                    continue
                verb = _VERBS.get(last_event.get(self.item_map_.ids([j])[0], ""), "looked at")
                if source == "cooccurrence":
                    out.append(f"often bought with {self._title(j)}, which you {verb}")
                elif new_item:
                    out.append(f"new arrival like {self._title(j)}, which you {verb}")
                elif source == "content":
                    out.append(f"similar to {self._title(j)}, which you {verb}")
                else:
                    out.append(f"because you {verb} {self._title(j)}")
                continue
            category = str(self.catalog_.categories[i]).split(">")[-1].split("|")[0].strip()
            if new_item:
                out.append(f"new in {category}" if category else "new arrival")
            elif category:
                out.append(f"popular in {category} right now")
            else:
                out.append("popular with shoppers right now")
        return out

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
        ``recommend``, history items are scored too. Each source is standardised over the
        row's items and mixed with the request's warmth weights (``new_item_*`` for items
        without interactions; ``shelf_*``, and the nearest-history-item content, on rows whose
        valid items all lack them). Returns float32 ``(n, m)``, ``-inf`` where ``items`` is -1.
        """
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        if items.ndim != 2 or len(items) != len(requests):
            raise ValueError(f"items: expected shape ({len(requests)}, m), got {items.shape}")
        valid = items >= 0
        safe = np.where(valid, items, 0)
        batch = self._batch(requests, dense=False)
        user_factors, damped, profile = self._profiles(batch)
        cooc = (damped @ self.cooccurrence_).tocsr()
        content = np.einsum("nd,nmd->nm", profile, self.text_vectors_[safe])
        cold = ~self.item_warm_[safe]
        shelf = ~(valid & ~cold).any(axis=1)
        new_items = self._new_item_content(batch, profile, shelf)
        if new_items is not None:
            at = np.where(valid & shelf[:, None], new_items[0][safe], -1)
            rows = np.broadcast_to(np.arange(len(safe))[:, None], safe.shape)
            content[at >= 0] = new_items[1][rows[at >= 0], at[at >= 0]]
        raw = {
            "content": content,
            "cooccurrence": np.vstack([cooc[r].toarray()[0, safe[r]] for r in range(len(safe))]) if len(safe) else safe.astype(np.float32),
            "cf": np.einsum("nf,nmf->nm", user_factors, self.item_factors_[safe]),
            "popularity": self.popularity_[safe],
        }
        b = self.config.blend
        weights = self._weights(batch.n_history)
        item_weights = self._item_weights(b, shelf)
        total = np.zeros(items.shape, dtype=np.float32)
        for s, name in enumerate(SOURCES):
            w = np.where(cold, item_weights[:, s, None], weights[:, s, None])
            total += w * _standardise(raw[name].astype(np.float32), valid)
        total[~valid] = -np.inf
        return total

    def query_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Text vectors (n, d) float32 of free texts in the space of ``text_vectors_``.

        Encoded without the embedding cache (queries are not worth keeping) and passed through
        the text adapter when the model has one, so they compare with the item vectors.
        """
        return self._adapt(np.asarray(self.encoder.encode(list(texts)), dtype=np.float32))


def _concat_catalogs(a: Catalog, b: Catalog) -> Catalog:
    import pandas as pd

    return Catalog(
        item_ids=np.concatenate([a.item_ids, b.item_ids]),
        titles=np.concatenate([a.titles, b.titles]),
        descriptions=np.concatenate([a.descriptions, b.descriptions]),
        categories=np.concatenate([a.categories, b.categories]),
        brands=np.concatenate([a.brands, b.brands]),
        tags=np.concatenate([a.tags, b.tags]),
        prices=np.concatenate([a.prices, b.prices]),
        attributes=pd.concat([a.attributes, b.attributes], ignore_index=True),
    )


def _score_scales(als: ALSModel, graph) -> np.ndarray:
    """(2,) float32: 1 / the spread of ALS and of LightGCN user-item scores (training users)."""
    rng = np.random.default_rng(0)
    users = rng.choice(len(als.user_factors_), size=min(1000, len(als.user_factors_)), replace=False)
    out = []
    for u, v in ((als.user_factors_, als.item_factors_), (graph.user_embeddings_, graph.item_embeddings_)):
        std = float(np.std(u[users] @ v.T))
        out.append(1.0 / std if std > 1e-12 else 1.0)
    return np.asarray(out, dtype=np.float32)


def _sparse_row_at(indices: np.ndarray, data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Values of a sparse row (``indices`` / ``data``, duplicates summed) at columns ``at``:
    O(nnz log nnz), where scipy's ``row[:, at]`` allocates as many entries as the row is wide."""
    out = np.zeros(len(at), dtype=np.float64)
    if not len(indices) or not len(at):
        return out
    cols, inverse = np.unique(indices, return_inverse=True)
    sums = np.bincount(inverse, weights=data, minlength=len(cols))
    pos = np.minimum(np.searchsorted(cols, at), len(cols) - 1)
    hit = cols[pos] == at
    out[hit] = sums[pos[hit]]
    return out


def _item_scores(queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``queries @ items.T`` (n, n_items), C-ordered, computed as ``(items @ queries.T).T``.

    The same products; OpenBLAS picks a much slower kernel for a few query rows against a
    transposed item matrix (4 x 512 against 4,635 x 512: 1.46 ms, against 0.63 ms this way).
    """
    return np.ascontiguousarray((items @ queries.T).T)


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _allowed_count(allowed: np.ndarray) -> np.ndarray:
    """(n, 1) allowed items per row, at least 1: the denominator of :func:`_standardise`."""
    return np.maximum(allowed.sum(axis=1, keepdims=True), 1)


def _standardise(scores: np.ndarray, allowed: np.ndarray, count: np.ndarray | None = None) -> np.ndarray:
    """Z-score each row over its allowed items; constant rows become 0.

    ``count``: :func:`_allowed_count` of ``allowed`` when the caller already has it.
    """
    if count is None:
        count = _allowed_count(allowed)
    masked = np.where(allowed, scores, np.float32(0.0))
    mean = masked.sum(axis=1, keepdims=True, dtype=np.float64) / count
    centred = np.where(allowed, scores - mean.astype(np.float32), np.float32(0.0))
    std = np.sqrt(np.einsum("ij,ij->i", centred, centred)[:, None] / count).astype(np.float32)
    return np.divide(centred, std, out=np.zeros_like(centred), where=std > 1e-6)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best per row, best first (ties broken by lower index)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


_WORD = re.compile(r"[\w']+", re.UNICODE)


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def _matching_words(text: str, title: str) -> str:
    """Words (or, for Chinese, two-character terms) shared by the user's text and a title."""
    title_l = title.lower()
    hits = []
    for word in _WORD.findall(text.lower()):
        if any(_is_cjk(ch) for ch in word):
            j = 0
            while j < len(word) - 1:  # longest shared run of two or more characters
                run = next((word[j:e] for e in range(len(word), j + 1, -1) if word[j:e] in title_l), "")
                if run:
                    hits.append(run)
                j += max(len(run), 1)
        elif len(word) > 2 and word in title_l:
            hits.append(word)
    return " ".join(dict.fromkeys(hits))[:40]


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."
