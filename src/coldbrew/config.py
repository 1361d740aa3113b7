"""Typed, frozen configuration; the only reader of config files.

One file on purpose (about 700 lines): every section's dataclass sits beside the reader that
validates it, so a setting, its default and its error message are found in one place.

A config file is TOML (``.toml``) or JSON (``.json``) with optional sections ``[columns]``,
``[weighting]``, ``[encoder]``, ``[als]``, ``[bridge]``, ``[blend]``, ``[graph]`` and
``[augmentation]``, ``[ranker]``, ``[compute]``.  Unknown sections or
keys are errors (a typo must never be silently ignored).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coldbrew.errors import ConfigError

__all__ = [
    "ColumnsConfig",
    "WeightingConfig",
    "DataConfig",
    "EncoderConfig",
    "AdapterConfig",
    "LoraConfig",
    "ALSConfig",
    "BridgeConfig",
    "BlendConfig",
    "GraphConfig",
    "AugmentationConfig",
    "RankerConfig",
    "FitConfig",
    "RetrievalConfig",
    "ComputeConfig",
    "load_config",
    "default_threads",
]


def default_threads() -> int:
    """Number of CPU cores this process may use (respects affinity masks)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ColumnsConfig:
    """Maps coldbrew's canonical column names to the names used in the user's files.

    Each field holds the source column name, or ``None`` to use the built-in aliases.
    """

    item_id: str | None = None
    title: str | None = None
    description: str | None = None
    category: str | None = None
    brand: str | None = None
    price: str | None = None
    tags: str | None = None
    user_id: str | None = None
    timestamp: str | None = None
    event: str | None = None
    value: str | None = None

    def explicit(self) -> dict[str, str]:
        """Return ``{canonical: source}`` for the fields that were set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


DEFAULT_EVENT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("view", 1.0),
    ("click", 1.0),
    ("like", 2.0),
    ("cart", 3.0),
    ("add_to_cart", 3.0),
    ("wishlist", 2.0),
    ("purchase", 4.0),
    ("order", 4.0),
    ("rating", 1.0),
    ("cancel", 0.0),
    ("return", 0.0),
    ("refund", 0.0),
)


@dataclass(frozen=True)
class DataConfig:
    """Input handling: ``on_bad_rows`` is ``"error"`` (stop at the first bad row, naming it)
    or ``"skip"`` (drop bad rows and count them in the load report)."""

    on_bad_rows: str = "error"

    def __post_init__(self) -> None:
        if self.on_bad_rows not in ("error", "skip"):
            raise ConfigError(
                f"data.on_bad_rows: expected 'error' or 'skip', got {self.on_bad_rows!r}"
            )


@dataclass(frozen=True)
class WeightingConfig:
    """How raw events become interaction strengths.

    ``event_weights``: weight per event type (an event type not listed gets
    ``default_weight``); a weight of 0 drops the event.  For ``rating`` events the weight is
    multiplied by ``max(value - rating_neutral, 0) / (rating_max - rating_neutral)`` so that low
    ratings carry no positive signal.  ``half_life_days`` applies exponential time decay
    relative to the newest event (``None`` = no decay). ``trend_half_life_days`` is the
    (shorter) decay of the popularity source: what sells *now*.
    """

    event_weights: tuple[tuple[str, float], ...] = DEFAULT_EVENT_WEIGHTS
    default_weight: float = 1.0
    rating_neutral: float = 2.5
    rating_max: float = 5.0
    half_life_days: float | None = 90.0
    trend_half_life_days: float = 30.0

    def weight_of(self, event: str) -> float:
        """Weight of one event type (case-insensitive)."""
        return dict(self.event_weights).get(event.lower(), self.default_weight)


@dataclass(frozen=True)
class EncoderConfig:
    """Which text encoder to use and how.

    ``name``: ``"use-multilingual-v3"`` (bundled, default), ``"minilm-l6-v2"`` (English
    all-MiniLM-L6-v2 in torch, from the ``[train]`` extra; the encoder that ``[lora]``
    fine-tunes) or ``"hashing"`` (a tiny dependency-free lexical encoder, for tests and as a
    fallback).
    ``threads``: ``None`` means the number of CPU cores (on a machine whose cores are shared
    with other busy processes, fewer threads can be faster). ``lowercase`` applies to the USE
    encoder (upper-case retail titles encode much better lower-cased); the hashing encoder
    always lower-cases.
    """

    name: str = "use-multilingual-v3"
    threads: int | None = None
    batch_size: int = 256
    lowercase: bool = True

    def __post_init__(self) -> None:
        names = ("use-multilingual-v3", "minilm-l6-v2", "hashing")
        if self.name not in names:
            raise ConfigError(f"encoder.name: unknown encoder {self.name!r}; expected one of: {', '.join(names)}")

    def resolved_threads(self) -> int:
        return self.threads if self.threads is not None else default_threads()


def _check_contrastive(section: str, cfg: Any, positive: tuple[str, ...]) -> None:
    """Checks shared by the contrastive trainers' sections (``[adapter]``, ``[lora]``).

    ``positive``: the section's fields that must be numbers > 0.
    """
    for name in ("rank", "epochs", "history_length", "max_pairs"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{section}.{name}: expected an integer >= 1, got {getattr(cfg, name)!r}")
    if cfg.batch_size < 2:
        raise ConfigError(f"{section}.batch_size: expected an integer >= 2, got {cfg.batch_size!r}")
    if cfg.patience < 0:
        raise ConfigError(f"{section}.patience: expected an integer >= 0, got {cfg.patience!r}")
    for name in positive:
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"{section}.{name}: expected a number > 0, got {getattr(cfg, name)!r}")
    if not 0.0 <= cfg.validation_share < 1.0:
        raise ConfigError(f"{section}.validation_share: expected a number in [0, 1), got {cfg.validation_share!r}")


@dataclass(frozen=True)
class AdapterConfig:
    """The text adapter (:mod:`coldbrew.text.adapter`): the frozen text space, adapted to the shop.

    When ``enabled``, ``fit`` trains a residual low-rank map ``x -> normalise(x + (x A) B)``
    (``rank`` r) over the encoder's item vectors, contrastively (InfoNCE, in-batch negatives,
    ``temperature``) on (user history -> next item) pairs from the training events: history =
    the user's last ``history_length`` events, decayed with ``half_life_days``; at most
    ``max_pairs`` pairs (a random subset, ``seed``). Adam with ``learning_rate`` and L2
    ``weight_decay``, ``batch_size`` pairs per step, at most ``epochs`` epochs; the latest
    ``validation_share`` of the pairs is held out and training stops after ``patience``
    epochs without a better next-item NDCG@20 (the best epoch is kept; the untouched space
    counts as epoch 0). ``logq_correction`` subtracts each in-batch negative's log frequency
    from its logit (in-batch negatives are drawn by popularity; the pipeline ranks the whole
    catalog). Item vectors, request texts and user text profiles then live in the
    adapted space; ``adapt_bridge`` also feeds adapted vectors to the text->CF bridge (false,
    the default: the bridge reads the encoder's own vectors, which measured better). Raw encoder outputs stay in the cache. With
    ``blend.tune`` on, the adapter is trained once, on the tuning hold-out's training part,
    and kept for the final model (the blend is tuned for exactly that space).
    """

    enabled: bool = False
    rank: int = 32
    epochs: int = 12
    learning_rate: float = 0.003
    temperature: float = 0.05
    batch_size: int = 512
    history_length: int = 20
    half_life_days: float = 30.0
    max_pairs: int = 100_000
    validation_share: float = 0.1
    patience: int = 3
    weight_decay: float = 0.0
    logq_correction: bool = True
    adapt_bridge: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _check_contrastive("adapter", self, ("learning_rate", "temperature", "half_life_days"))
        if self.weight_decay < 0:
            raise ConfigError(f"adapter.weight_decay: expected a number >= 0, got {self.weight_decay!r}")


@dataclass(frozen=True)
class LoraConfig:
    """LoRA fine-tuning of the torch text encoder (:mod:`coldbrew.text.lora`; ``[train]`` extra).

    When ``enabled`` (it needs ``[encoder] name = "minilm-l6-v2"``), ``fit`` first trains
    low-rank updates (``rank`` r, scaling ``alpha`` / r) of the attention matrices named in
    ``target_modules`` of the encoder, contrastively on (user history -> next item) pairs of
    the training events (InfoNCE over in-batch negatives with ``temperature`` and the logQ
    correction; history = the user's last ``history_length`` events decayed with
    ``half_life_days``; at most ``max_pairs`` pairs, ``seed``), ``batch_size`` pairs per step,
    AdamW with ``learning_rate``, at most ``epochs`` epochs, keeping the epoch with the best
    next-item NDCG@20 on the latest ``validation_share`` of the pairs (the untouched encoder
    is epoch 0; ``patience`` epochs without gain stop training). The catalog, new products
    and request texts are then encoded by the fine-tuned encoder, whose weights are saved
    with the model. With ``blend.tune`` on, the events of the tuning hold-out are left out
    of this training, so that the blend is not tuned on text that has seen its answers.
    """

    enabled: bool = False
    rank: int = 8
    alpha: float = 16.0
    target_modules: str = "query,value"
    epochs: int = 3
    learning_rate: float = 0.0003
    temperature: float = 0.05
    batch_size: int = 64
    history_length: int = 3
    half_life_days: float = 30.0
    max_pairs: int = 10_000
    validation_share: float = 0.1
    patience: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        _check_contrastive("lora", self, ("alpha", "learning_rate", "temperature", "half_life_days"))
        if not self.modules():
            raise ConfigError(f"lora.target_modules: expected comma-separated module names, got {self.target_modules!r}")

    def modules(self) -> list[str]:
        """``target_modules`` as a list of names."""
        return [name.strip() for name in self.target_modules.split(",") if name.strip()]


@dataclass(frozen=True)
class ALSConfig:
    """Hyper-parameters of implicit-feedback ALS (the ``implicit`` library)."""

    factors: int = 64
    regularization: float = 0.05
    iterations: int = 15
    alpha: float = 5.0
    random_state: int = 0


@dataclass(frozen=True)
class BridgeConfig:
    """The text -> CF bridge that places items without interactions in the CF space.

    ``ridge``: L2 penalty of the linear map, a number > 0 or ``"auto"`` (the default: chosen
    among 0.1 .. 100 by leave-one-out error on the shop's warm items, see
    :mod:`coldbrew.models.bridge`; 10 was the fixed default before); ``neighbors``: text
    neighbours averaged by the k-NN part; ``knn_share``: share of the k-NN estimate in the
    final factor (0..1); ``lexical_dim``: hashed-token features read beside the text vectors
    (0 turns them off).
    """

    ridge: float | str = "auto"
    neighbors: int = 20
    knn_share: float = 0.5
    lexical_dim: int = 512

    def __post_init__(self) -> None:
        r = self.ridge
        if not (r == "auto" or (isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0)):
            raise ConfigError(f'bridge.ridge: expected "auto" or a number > 0, got {r!r}')


@dataclass(frozen=True)
class GraphConfig:
    """LightGCN-style graph collaborative filtering (:mod:`coldbrew.models.lightgcn`).

    When ``enabled`` (the default since the ablation in benchmarks/RESULTS.md), the ``cf`` source of the blend scores with LightGCN embeddings beside
    (or instead of) ALS factors (users folded in from their request history by one
    propagation step; new items placed by the text->CF bridge in LightGCN's space). ``factors``: embedding size;
    ``layers``: propagation layers (the final embedding averages layers 0..layers);
    ``epochs``: at most this many passes over the edges (BPR loss, one sampled negative per
    edge, Adam with ``learning_rate``, L2 ``l2`` on the layer-0 embeddings of each batch);
    ``batch_size``: edges per gradient step; ``patience``: epochs without a better
    validation NDCG@20 before stopping (a random edge of up to ``validation_users`` users is
    held out of the graph for it; the best epoch's embeddings are kept).
    ``user_embeddings``: false trains without layer-0 user embeddings (a user is only what
    propagation brings from their items), so training sees users exactly as the request-time
    fold-in does. ``weighted``: edges weigh ``log1p(strength)`` (event type, decay) instead of 1.
    ``combine``: ``"concat"`` (default: ALS and LightGCN vectors side by side, each scaled to
    unit score spread, so the cf score is their sum) or ``"replace"`` (LightGCN only).
    """

    enabled: bool = True
    factors: int = 64
    layers: int = 2
    epochs: int = 20
    learning_rate: float = 0.05
    l2: float = 1e-4
    batch_size: int = 32768
    patience: int = 2
    validation_users: int = 1000
    user_embeddings: bool = True
    weighted: bool = False
    combine: str = "concat"
    random_state: int = 0

    def __post_init__(self) -> None:
        for name in ("factors", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"graph.{name}: expected an integer >= 1, got {getattr(self, name)!r}")
        for name in ("layers", "patience", "validation_users"):
            if getattr(self, name) < 0:
                raise ConfigError(f"graph.{name}: expected an integer >= 0, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise ConfigError(f"graph.learning_rate: expected a number > 0, got {self.learning_rate!r}")
        if self.l2 < 0:
            raise ConfigError(f"graph.l2: expected a number >= 0, got {self.l2!r}")
        if self.combine not in ("replace", "concat"):
            raise ConfigError(f"graph.combine: expected 'replace' or 'concat', got {self.combine!r}")


@dataclass(frozen=True)
class AugmentationConfig:
    """Data augmentation for sparse data (:mod:`coldbrew.models.augmentation`); all off by default.

    ``pseudo_interactions``: items with at most ``pseudo_max_events`` distinct users (and, at
    ``add_items`` time, new items) get weak interactions (strength ``pseudo_weight`` times
    the text similarity) from the users of their ``pseudo_neighbors`` text-nearest warm
    items; new items then take CF factors folded in from those pseudo users, mixed half and
    half with the bridge's estimate. ``ensemble``: number of ALS models fitted on bootstrap
    resamples of the users' rows, item factors averaged after alignment (0 = off; with
    ``graph.combine = "replace"`` ALS no longer scores, so the ensemble changes nothing there).
    ``generative``: a first-order item-transition (Markov) model samples ``generative_events``
    synthetic next items for each user with at most ``generative_max_history`` items,
    added with strength ``pseudo_weight`` before CF training.
    """

    pseudo_interactions: bool = False
    pseudo_neighbors: int = 10
    pseudo_weight: float = 0.3
    pseudo_max_events: int = 2
    ensemble: int = 0
    generative: bool = False
    generative_events: int = 2
    generative_max_history: int = 3
    random_state: int = 0

    def __post_init__(self) -> None:
        for name in ("pseudo_neighbors", "generative_events"):
            if getattr(self, name) < 1:
                raise ConfigError(f"augmentation.{name}: expected an integer >= 1, got {getattr(self, name)!r}")
        for name in ("pseudo_max_events", "ensemble", "generative_max_history"):
            if getattr(self, name) < 0:
                raise ConfigError(f"augmentation.{name}: expected an integer >= 0, got {getattr(self, name)!r}")
        if not 0.0 < self.pseudo_weight <= 1.0:
            raise ConfigError(f"augmentation.pseudo_weight: expected a number in (0, 1], got {self.pseudo_weight!r}")


@dataclass(frozen=True)
class RankerConfig:
    """The re-ranking stage (:mod:`coldbrew.ranking`): learned ranking of the blend's top items.

    ``kind``: ``"multitask"`` (default: a numpy MLP with a shared trunk and click / purchase
    / category heads), ``"lambdarank"`` (LightGBM ``LGBMRanker``) or ``"none"`` (the blend's
    order). The default is the ablation's best robust choice (benchmarks/RESULTS.md). At fit time the ranker is trained on successive hold-out periods at
    the end of the fit events, each ``blend.validation_share`` long: parts fitted on the
    events before a period, the blend's top ``candidates`` items per request of the period
    (up to ``max_users`` warm users, new users with their first 1 and ``max_reveal`` events,
    and users buying items first seen in the period) labelled by what those users did next.
    The earlier periods train, the last one validates: early stopping (``patience`` epochs)
    and, with ``require_gain``, a gate per request kind (warm users, new users with at most
    ``max_reveal`` items, new-item shelves): the ranker orders a kind only where it beat the
    blend's own order (NDCG@20) on the validation requests of that kind. ``kinds``: the
    request kinds a ranker may be trained for (default: warm users and new users; new-item
    shelves are left to the blend, where a ranker that won its validation period lost under
    the random cold-item protocol). ``candidates``: 300 by default; with the item-habit
    features (repeat rate, basket size, novelty) the ranker finds more in a deeper pool than the
    blend's top 100 (with both, UCI new users 0.154 -> 0.164 and warm users 0.124 -> 0.138,
    means of three ranker seeds; benchmarks/RESULTS.md, "item habits and a deeper pool").
    ``periods`` (default 3): hold-out periods of ``blend.validation_share`` each at the end of
    the fit events; all but the last train the ranker, the last validates it. ``refit``
    (default on): once early stopping and the gate have judged a kind's ranker on the last
    period, a fresh ranker is trained on every period's requests for the epochs (trees)
    early stopping kept, and it is the one used: more requests (new users: a few hundred per
    period), the latest among them (benchmarks/RESULTS.md, "three hold-out periods and a refit").
    Multitask: ``epochs``, ``hidden`` units (two layers: ``hidden``, ``hidden // 2``),
    ``learning_rate`` (Adam), ``batch_groups`` requests per step, ``weight_decay`` (L2);
    loss = ``click_weight`` x listwise softmax + ``purchase_weight`` x BCE +
    ``category_weight`` x softmax over the ``categories`` most frequent primary categories
    (skipped when the shop has fewer than two); rank score = click logit +
    ``purchase_blend`` x purchase logit. ``text_codes``: leading principal components of
    the item text vectors appended to the features (default 0: item-specific inputs let the
    ranker memorise which products sold in the training period). LambdaRank: ``trees``,
    ``leaves``, ``lgbm_learning_rate``. ``random_state`` seeds both.
    """

    kind: str = "multitask"
    kinds: str = "warm_users,new_users"
    candidates: int = 300
    max_users: int = 1000
    max_reveal: int = 3
    require_gain: bool = True
    refit: bool = True
    periods: int = 3
    epochs: int = 40
    hidden: int = 64
    learning_rate: float = 0.003
    batch_groups: int = 32
    weight_decay: float = 1e-4
    patience: int = 5
    click_weight: float = 1.0
    purchase_weight: float = 0.5
    category_weight: float = 0.2
    purchase_blend: float = 0.0
    categories: int = 20
    text_codes: int = 0
    trees: int = 300
    leaves: int = 31
    lgbm_learning_rate: float = 0.05
    random_state: int = 0

    def __post_init__(self) -> None:
        kinds = ("none", "multitask", "lambdarank")
        if self.kind not in kinds:
            raise ConfigError(f"ranker.kind: unknown ranker {self.kind!r}; expected one of: {', '.join(kinds)}")
        requests = ("warm_users", "new_users", "new_items")
        wanted = [k.strip() for k in self.kinds.split(",") if k.strip()]
        if not wanted or any(k not in requests for k in wanted):
            raise ConfigError(
                f"ranker.kinds: expected a comma-separated list of {', '.join(requests)}, got {self.kinds!r}"
            )
        for name in ("candidates", "max_users", "max_reveal", "epochs", "hidden", "batch_groups", "trees"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ranker.{name}: expected an integer >= 1, got {getattr(self, name)!r}")
        if self.periods < 2:
            raise ConfigError(f"ranker.periods: expected an integer >= 2 (training and validation), got {self.periods!r}")
        if self.leaves < 2:
            raise ConfigError(f"ranker.leaves: expected an integer >= 2, got {self.leaves!r}")
        for name in ("patience", "categories", "text_codes"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ranker.{name}: expected an integer >= 0, got {getattr(self, name)!r}")
        for name in ("learning_rate", "lgbm_learning_rate", "click_weight"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"ranker.{name}: expected a number > 0, got {getattr(self, name)!r}")
        for name in ("weight_decay", "purchase_weight", "category_weight", "purchase_blend"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ranker.{name}: expected a number >= 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class BlendConfig:
    """Warmth-aware blending of the score sources.

    Each source score is standardised per request, then mixed with weights that depend on
    how many events the user has (``warmth = n / (n + warmth_half)``); items without
    interactions use the ``new_item_*`` weights instead.  When ``tune`` is true
    ``fit`` holds out the latest ``validation_share`` of events and picks the weights that
    maximise NDCG@20 on it (both half-lives of :class:`WeightingConfig` are set from the pace
    of the shop's events: the spans holding its newest 50 % and 2.5 %), then refits on
    everything; see :mod:`coldbrew.models.tuning`. ``tune_new_items = false`` keeps
    the ``new_item_*`` and ``shelf_*`` weights as configured while tuning the rest.

    A *shelf* is a request that may only get products without interactions (its candidates
    are all new: a "new arrivals" shelf, the item cold-start protocol). On shelves the new
    products are ordered with the ``shelf_*`` weights (``None``: the ``new_item_*`` ones), and
    with ``new_item_nearest`` (default true) their content source reads how close each one is
    to the shopper's *nearest* history item (and own words) rather than to the mean of their
    history (:mod:`coldbrew.models.neighbors`). In every other list new products compete with
    the rest of the catalog on the ``new_item_*`` weights and the plain content source.
    Tuning chooses both sets (benchmarks/RESULTS.md, "nearest-item shelves").
    """

    tune: bool = True
    tune_new_items: bool = True
    validation_share: float = 0.1
    warmth_half: float = 5.0
    cold_content: float = 1.0
    cold_cooccurrence: float = 1.0
    cold_cf: float = 0.5
    cold_popularity: float = 0.5
    warm_content: float = 0.2
    warm_cooccurrence: float = 1.0
    warm_cf: float = 1.0
    warm_popularity: float = 0.1
    new_item_content: float = 1.0
    new_item_cf: float = 1.0
    new_item_popularity: float = 0.5
    new_item_nearest: bool = True
    shelf_content: float | None = None
    shelf_cf: float | None = None
    shelf_popularity: float | None = None


@dataclass(frozen=True)
class RetrievalConfig:
    """Candidate retrieval before ranking.

    Catalogs up to ``dense_limit`` items are scored exactly (every item, a numpy reference).
    Larger ones retrieve ``per_source`` candidates from each source (an ANN index over CF
    factors and one over text vectors, co-occurrence neighbours, popular items) and rank only
    those. ``index``: ``"auto"`` (exact below ``exact_below`` vectors; from there on faiss
    IVF for text vectors, 4-bit fast-scan codes whose candidates are re-scored exactly, and
    exact search in order of decreasing norm for CF factors; about 0.4 GB for both indexes
    per 1M products), ``"ivf"``, ``"hnsw"``, ``"faiss"`` (flat, exact), ``"norm"`` (numpy,
    exact, norm-ordered) or ``"exact"`` (numpy). ``nprobe``: IVF lists scanned per query (of about ``sqrt(n)``; higher is more
    exact and slower). The indexes are saved with the model once the catalog is above
    ``dense_limit``.
    """

    dense_limit: int = 50_000
    per_source: int = 200
    index: str = "auto"
    exact_below: int = 50_000
    nprobe: int = 32

    def __post_init__(self) -> None:
        kinds = ("auto", "exact", "norm", "faiss", "hnsw", "ivf")  # coldbrew.retrieval.INDEX_KINDS
        if self.index not in kinds:
            raise ConfigError(f"retrieval.index: unknown index {self.index!r}; expected one of: {', '.join(kinds)}")
        if self.dense_limit < 0 or self.per_source < 1:
            raise ConfigError("retrieval: dense_limit must be >= 0 and per_source >= 1")
        if self.exact_below < 0 or self.nprobe < 1:
            raise ConfigError(f"retrieval: exact_below must be >= 0 and nprobe >= 1, got {self.exact_below!r} and {self.nprobe!r}")


@dataclass(frozen=True)
class ComputeConfig:
    """How a fit uses the machine (never what it learns: the fitted model is the same).

    The hold-out fits behind tuning and the ranker and the final fit are independent of each
    other; with more than one worker they run in that many processes at once. ``workers``:
    0 (default) is one per CPU core this process may use, at most 4; 1 fits them one after
    the other in this process. Fits of fewer than ``parallel_min_events`` events always run
    in this process (starting a worker costs about a second).

    ``recommend_threads``: threads that score a long list of requests (``recommend`` with
    more than one chunk of 512) chunk by chunk, each with one BLAS thread; 0 (default) is
    one per core, at most 4; 1 scores in the calling thread. The answers are the same.
    """

    workers: int = 0
    parallel_min_events: int = 50_000
    recommend_threads: int = 0

    def __post_init__(self) -> None:
        if self.workers < 0 or self.parallel_min_events < 0 or self.recommend_threads < 0:
            raise ConfigError(f"compute: workers, parallel_min_events and recommend_threads must be >= 0, got"
                              f" {self.workers!r}, {self.parallel_min_events!r} and {self.recommend_threads!r}")

    def resolved_workers(self) -> int:
        return min(default_threads(), 4) if self.workers == 0 else self.workers

    def resolved_recommend_threads(self) -> int:
        return min(default_threads(), 4) if self.recommend_threads == 0 else self.recommend_threads


@dataclass(frozen=True)
class FitConfig:
    """Everything ``coldbrew fit`` can be told.

    ``graph`` (LightGCN beside ALS in the CF source, :class:`GraphConfig`) and ``ranker``
    (learned re-ranking of the blend's top candidates, :class:`RankerConfig`, multitask) are
    on by default. ``augmentation`` (pseudo-interactions, bootstrap ensemble, generative
    densification) and ``adapter`` (the text space adapted to the shop's behaviour,
    :class:`AdapterConfig`) are off by default: the ablation kept them off.
    """

    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    als: ALSConfig = field(default_factory=ALSConfig)
    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)

    def __post_init__(self) -> None:
        if self.lora.enabled and self.encoder.name != "minilm-l6-v2":
            raise ConfigError(
                f"lora.enabled: LoRA fine-tunes a torch encoder, but encoder.name is {self.encoder.name!r};"
                ' set [encoder] name = "minilm-l6-v2" (pip install \'coldbrew[train]\')'
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> FitConfig:
        return _build(cls, raw, source)


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table/object, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        f = fields[name]
        sub = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            kwargs[name] = _build(sub, value, f"{where}.{name}")
        elif name == "event_weights":
            if isinstance(value, list) and all(
                isinstance(p, (list, tuple)) and len(p) == 2 for p in value
            ):
                merged, pairs = {}, [tuple(p) for p in value]  # exact table (from to_dict)
            elif isinstance(value, dict):
                merged, pairs = dict(DEFAULT_EVENT_WEIGHTS), list(value.items())
            else:
                raise ConfigError(f"{where}.event_weights: expected a table of event = weight")
            for event, weight in pairs:
                if not isinstance(weight, (int, float)) or weight < 0:
                    raise ConfigError(
                        f"{where}.event_weights.{event}: expected a number >= 0, got {weight!r}"
                    )
                merged[str(event).lower()] = float(weight)
            kwargs[name] = tuple(merged.items())
        else:
            kwargs[name] = _check_scalar(f, value, f"{where}.{name}")
    return cls(**kwargs)


def _check_scalar(f: dataclasses.Field[Any], value: Any, where: str) -> Any:
    default = f.default
    if value is None:
        if default is None or "None" in str(f.type):  # annotated `X | None`
            return None
        raise ConfigError(f"{where}: expected a value, got null")
    if str(f.type) == "float | str":  # a number or a keyword such as "auto" (checked by the section)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if f.name == "threads":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: expected a positive integer, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float) or (default is None and str(f.type).startswith("float")):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str) or default is None:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value if f.name == "threads" and isinstance(value, int) else str(value)
    return value


def load_config(path: str | Path | None) -> FitConfig:
    """Read a TOML or JSON config file; ``None`` gives the defaults."""
    if path is None:
        return FitConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raw = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {p}: cannot parse: {exc}") from None
    return FitConfig.from_dict(raw, source=str(p))
