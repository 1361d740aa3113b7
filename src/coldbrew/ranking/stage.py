"""The re-ranking stage of the pipeline: how a ranker is trained at fit time and used after.

Training (:func:`train_stage`), the hold-out pattern of :mod:`coldbrew.models.tuning` (never
any test data), over ``ranker.periods`` successive periods at the end of the fit events (3 by
default, each ``blend.validation_share`` long): parts fitted on
the events before a period (with the already tuned configuration), requests built for the
period's events, the way the product meets them:

* warm users (history = their earlier events), ranking all items;
* new users first seen in the period, with their first event, and again with their first
  ``max_reveal`` events, as history;
* users who bought items first seen in the period, ranking only those new items;

each request's top ``candidates`` blended items become one group, labelled with what the
user did next (see :mod:`coldbrew.ranking.base` for the label columns). The earlier periods
train, the last one validates. One ranker is trained per request kind
(:func:`request_kinds`: warm users, new users, new-item shelves; each kind weighs the
sources differently, and a joint model was dominated by the warm requests), with early
stopping on that kind's validation requests, and used only where it beat the blend's
order on them. With ``ranker.refit`` (default) the ranker that serves a kind is then trained
afresh on all the periods, for the epochs early stopping chose: the validation period is the
latest behaviour the fit has, and the small kinds (new users: a few hundred requests per
period) gain most from the added requests.

The **purchase** label: a purchase/order event, or a rating >= 4. Where (nearly) every
positive event is already a purchase (retail logs such as UCI Online Retail) or none is,
that label would copy the click label or be empty, so it becomes a *repeat* purchase: the
user interacted with the item at two or more distinct times in the hold-out.

At recommend time (:meth:`RerankStage.rerank`): blend -> top ``candidates`` (at least k) ->
features -> ranker score -> top-k. Items outside the candidates are not returned.

Size (about 570 lines): the stage at serving time (features, re-ranking a pool, state) and
its training (periods, groups, gates, refit) share the feature layout and the request
kinds; they are kept in one module so that the two cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from coldbrew.config import RankerConfig
from coldbrew.data.catalog import Catalog
from coldbrew.data.events import Events
from coldbrew.ranking.base import RankingData, grouped_ndcg
from coldbrew.ranking.features import (
    ItemTable,
    UserTable,
    category_classes,
    category_labels,
    category_share,
    days_since,
    feature_names,
    item_habits,
    pair_features,
    primary_categories,
    typical_price,
)
from coldbrew.requests import Request
from coldbrew.scoring import SOURCES, top_k
from coldbrew.timing import stage_of

if TYPE_CHECKING:
    from coldbrew.scoring import FitHost, Scorer

__all__ = ["RerankStage", "train_stage", "make_ranker", "purchase_pairs"]

_CHUNK = 512
_CODE_SAMPLE = 20_000
_MIN_GROUPS = 20
_MIN_GATE_GROUPS = 30  # fewer validation requests than this cannot tell a gain from noise
_STRONG_EVENTS = ("purchase", "order")
_KINDS = ("warm_users", "new_users", "new_items")


def make_ranker(config: RankerConfig, n_categories: int = 0, progress: bool | None = None):
    """The ranker named by ``config.kind`` (``"multitask"`` or ``"lambdarank"``), unfitted."""
    if config.kind == "multitask":
        from coldbrew.ranking.multitask import MultiTaskRanker

        return MultiTaskRanker(config, n_categories=n_categories, progress=progress)
    if config.kind == "lambdarank":
        from coldbrew.ranking.lambdarank import LambdaRankRanker

        return LambdaRankRanker(config, progress=progress)
    raise ValueError(f"ranker.kind: no ranker to build for {config.kind!r}")


def _ranker_class(kind: str):
    if kind == "multitask":
        from coldbrew.ranking.multitask import MultiTaskRanker

        return MultiTaskRanker
    if kind == "lambdarank":
        from coldbrew.ranking.lambdarank import LambdaRankRanker

        return LambdaRankRanker
    raise ValueError(f"ranker.kind: unknown ranker {kind!r}")


class RerankStage:
    """A fitted ranker plus what its features need beyond the recommender's own arrays.

    Parameters
    ----------
    config: the ``[ranker]`` section it was trained with.
    rankers: request kind (see :func:`request_kinds`) -> a fitted ``Ranker`` for that kind.
    code_mean: float32 (d,) and ``code_basis`` float32 (d, n_codes): item text codes.
    category_names: the category head's classes (most frequent primary categories).
    item_counts: float32 (n_fit_items,) distinct users per item at fit; later items count 0.
    item_habits: float32 (n_fit_items, 3) how each item was bought at fit
        (:func:`~coldbrew.ranking.features.item_habits`); later items get zeros.
    gates: request kind -> whether its ranker orders it (the blend's order is kept for the
        others and for kinds without a ranker); default: every kind with a ranker.
    """

    def __init__(self, config: RankerConfig, rankers: dict[str, Any], code_mean: np.ndarray,
                 code_basis: np.ndarray, category_names: Sequence[str], item_counts: np.ndarray,
                 gates: dict[str, bool] | None = None, item_habits: np.ndarray | None = None) -> None:
        self.config = config
        self.rankers = dict(rankers)
        self.gates = dict(gates) if gates is not None else dict.fromkeys(self.rankers, True)
        self.code_mean = np.asarray(code_mean, dtype=np.float32)
        self.code_basis = np.asarray(code_basis, dtype=np.float32)
        self.category_names = list(category_names)
        self.item_counts = np.asarray(item_counts, dtype=np.float32)
        self.item_habits = np.zeros((0, 3), np.float32) if item_habits is None else \
            np.asarray(item_habits, dtype=np.float32).reshape(-1, 3)
        self._items_key: tuple[int, int] | None = None
        self._items: ItemTable | None = None

    @staticmethod
    def _positive(model: Scorer, events: Events) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dense user codes, ``model`` item indices and timestamps of the positive events on
        ``model``'s items."""
        from coldbrew.evaluation.protocol import is_positive

        pos = events.take(is_positive(events))
        items = model.item_map_.lookup(pos.item_ids)
        known = items >= 0
        import pandas as pd

        users, _ = pd.factorize(pos.user_ids[known].astype(str))  # any dense numbering will do
        return users.astype(np.int64), items[known].astype(np.int64), pos.timestamps[known]

    @staticmethod
    def count_items(model: Scorer, events: Events) -> np.ndarray:
        """Distinct users with a positive event per item of ``model``, float32 (n_items,)."""
        users, items, _ = RerankStage._positive(model, events)
        n_items = len(model.item_map_)
        pairs = np.unique(users * n_items + items)
        return np.bincount(pairs % n_items, minlength=n_items).astype(np.float32)

    @staticmethod
    def habits_of(model: Scorer, events: Events) -> np.ndarray:
        """:func:`~coldbrew.ranking.features.item_habits` of ``events`` over ``model``'s items."""
        users, items, timestamps = RerankStage._positive(model, events)
        return item_habits(users, items, timestamps, len(model.item_map_))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return feature_names(self.code_basis.shape[1])

    # ------------------------------------------------------------------ features
    def item_table(self, model: Scorer) -> ItemTable:
        """Per-item feature inputs for ``model``'s current catalog (cached until it grows)."""
        key = (id(model), len(model.item_map_))
        if self._items is None or self._items_key != key:
            n = len(model.item_map_)
            counts = np.zeros(n, dtype=np.float32)
            m = min(n, len(self.item_counts))
            counts[:m] = self.item_counts[:m]
            habits = np.zeros((n, 3), dtype=np.float32)
            h = min(n, len(self.item_habits))
            habits[:h] = self.item_habits[:h]
            labels, _ = category_labels(model.catalog_.categories)
            codes = (model.text_vectors_ - self.code_mean) @ self.code_basis if self.code_basis.shape[1] else \
                np.zeros((n, 0), np.float32)
            self._items = ItemTable(
                popularity=model.popularity_.astype(np.float32), counts=counts,
                new=~model.item_warm_, prices=np.asarray(model.catalog_.prices, dtype=np.float64),
                labels=labels, codes=codes.astype(np.float32), habits=habits,
            )
            self._items_key = key
        return self._items

    def user_table(self, model: Scorer, requests: Sequence[Request], batch) -> UserTable:
        """Per-request feature inputs of one batch (see :meth:`coldbrew.scoring.Scorer.batch`)."""
        items = self.item_table(model)
        last = batch.last_seen
        now = np.maximum(model.now_, last)
        return UserTable(
            n_history=batch.n_history.astype(np.float32),
            recency_days=days_since(last, now),
            price=typical_price(batch.strengths, items.prices),
            share=category_share(batch.strengths, items.labels),
            has_text=batch.has_text,
        )

    def features(self, model: Scorer, requests: Sequence[Request], batch, sources: dict[str, np.ndarray],
                 total: np.ndarray, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Features float32 (n_pairs, F) of the pairs ``(rows, items)`` of one dense batch."""

        flat = rows * total.shape[1] + items  # pair positions in the (n, n_items) arrays
        z = np.empty((len(rows), len(SOURCES)), dtype=np.float32)
        for s, name in enumerate(SOURCES):
            z[:, s] = batch.standardised(name, sources[name]).ravel().take(flat)
        if batch.has_text.any():
            text = np.einsum("pd,pd->p", batch.text_vectors[rows], model.text_vectors_[items])
        else:  # no request has words: every cosine is 0 (as the product of zero vectors)
            text = np.zeros(len(rows), dtype=np.float32)
        return pair_features(rows, items, total.ravel().take(flat), z, text,
                             self.user_table(model, requests, batch), self.item_table(model))

    # ------------------------------------------------------------------ ranking
    def rerank(self, model: Scorer, requests: Sequence[Request], batch, sources: dict[str, np.ndarray],
               total: np.ndarray, k: int) -> np.ndarray:
        """Scores (n, n_items): ranker scores on each row's top candidates, -inf elsewhere."""
        rows, items = candidate_pairs(total, max(self.config.candidates, k))
        out = np.full(total.shape, -np.inf, dtype=np.float32)
        if not len(rows):
            return total
        x = self.features(model, requests, batch, sources, total, rows, items)
        sizes = np.bincount(rows, minlength=len(total))
        present = np.flatnonzero(sizes)
        row_kind = np.empty(len(total), dtype=object)
        row_kind[present] = request_kinds(x, sizes[present], self.config.max_reveal)
        pair_kind = row_kind[rows]
        for kind in np.unique(row_kind[present]):
            sel = pair_kind == kind
            if self._active(kind):
                out.ravel()[rows[sel] * out.shape[1] + items[sel]] = self.rankers[kind].score(x[sel])
            else:
                keep = np.unique(rows[sel])
                out[keep] = total[keep]
        out[sizes == 0] = total[sizes == 0]
        return out

    def _active(self, kind: str) -> bool:
        return kind in self.rankers and bool(self.gates.get(kind, False))

    def rerank_pool(self, model: Scorer, users: UserTable, r: int, pool: np.ndarray, total: np.ndarray,
                    source_z: np.ndarray, text_vector: np.ndarray, k: int) -> np.ndarray:
        """Retrieval path: one request's pooled items (m,) -> scores (m,), -inf outside its top candidates.

        ``users``: the chunk's :meth:`user_table`; ``r`` the request's row in it; ``total``
        (m,) blended scores; ``source_z`` (m, 4) standardised sources; ``text_vector`` (d,)
        the request's words (zeros when none).
        """
        c = min(max(self.config.candidates, k), len(pool))
        out = np.full(len(pool), -np.inf, dtype=np.float32)
        if c == 0:
            return out
        top = np.argsort(-total, kind="stable")[:c]
        top = top[np.isfinite(total[top])]
        items = pool[top]
        rows = np.full(len(top), r, dtype=np.int64)
        x = pair_features(rows, items, total[top], source_z[top], model.text_vectors_[items] @ text_vector,
                          users, self.item_table(model))
        kind = request_kinds(x, np.array([len(top)]), self.config.max_reveal)[0] if len(top) else None
        if kind is None or not self._active(kind):
            return total
        out[top] = self.rankers[kind].score(x)
        return out

    # ------------------------------------------------------------------ persistence
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        """(metadata, arrays, texts) for the model directory: no pickles."""
        arrays = {"code_mean": self.code_mean, "code_basis": self.code_basis, "item_counts": self.item_counts,
                  "item_habits": self.item_habits}
        texts: dict[str, str] = {}
        metas = {}
        for kind, ranker in self.rankers.items():
            meta, a, t = ranker.state()
            metas[kind] = meta
            arrays.update({f"{kind}__{name}": value for name, value in a.items()})
            texts.update({f"{kind}__{name}": value for name, value in t.items()})
        meta = {"kind": self.config.kind, "feature_names": list(self.feature_names),
                "category_names": self.category_names, "gates": self.gates, "rankers": metas}
        return meta, arrays, texts

    @classmethod
    def from_state(cls, config: RankerConfig, meta: dict[str, Any], arrays: dict[str, np.ndarray],
                   texts: dict[str, str]) -> RerankStage:
        """Rebuild a stage from :meth:`state`'s output."""
        kind = meta.get("kind")
        if kind != config.kind:
            raise ValueError(f"ranker state: trained as {kind!r} but the config says {config.kind!r}")
        rankers = {}
        for name, ranker_meta in meta.get("rankers", {}).items():
            prefix = f"{name}__"
            rankers[name] = _ranker_class(kind).from_state(
                config, ranker_meta,
                {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
                {k[len(prefix):]: v for k, v in texts.items() if k.startswith(prefix)},
            )
        try:
            stage = cls(config, rankers, arrays["code_mean"], arrays["code_basis"],
                        meta.get("category_names", []), arrays["item_counts"], meta.get("gates"),
                        arrays["item_habits"])
        except KeyError as exc:
            raise ValueError(f"ranker state: array {exc} is missing") from None
        if list(stage.feature_names) != list(meta.get("feature_names", [])):
            raise ValueError("ranker state: its feature names differ from this version's features; refit the model")
        return stage


def candidate_pairs(total: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The top ``c`` finite-scored items per row as pairs ``(rows, items)`` int64, row-major."""

    if total.shape[1] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    top = top_k(total, c)
    finite = np.isfinite(np.take_along_axis(total, top, axis=1))
    rows = np.repeat(np.arange(len(total)), top.shape[1]).reshape(top.shape)
    return rows[finite].astype(np.int64), top[finite].astype(np.int64)


def purchase_pairs(events: Events) -> tuple[set[tuple[str, str]], str]:
    """(user, item) pairs whose hold-out events carry the stronger signal, and its definition.

    ``"purchase"``: a purchase/order event or a rating >= 4, used when between 1 % and 99 % of
    the positive pairs have one; otherwise ``"repeat"``: positive events on the pair at two or
    more distinct timestamps.
    """
    from coldbrew.evaluation.protocol import is_positive

    pos = events.take(is_positive(events))
    users, items = pos.user_ids.astype(str), pos.item_ids.astype(str)
    kinds = pos.events.astype(str)
    values = np.nan_to_num(pos.values.astype(np.float64), nan=0.0)
    strong = np.isin(kinds, _STRONG_EVENTS) | ((kinds == "rating") & (values >= 4.0))
    pairs = set(zip(users.tolist(), items.tolist()))
    strong_pairs = set(zip(users[strong].tolist(), items[strong].tolist()))
    share = len(strong_pairs) / max(len(pairs), 1)
    if 0.01 < share < 0.99:
        return strong_pairs, "purchase"
    seen: dict[tuple[str, str], set[int]] = {}
    for u, i, t in zip(users.tolist(), items.tolist(), pos.timestamps.tolist()):
        seen.setdefault((u, i), set()).add(int(t))
    return {p for p, times in seen.items() if len(times) >= 2}, "repeat"


def _code_basis(vectors: np.ndarray, n_codes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and the leading ``n_codes`` principal directions (d, n_codes) of item vectors."""
    d = vectors.shape[1]
    mean = vectors.mean(axis=0).astype(np.float32) if len(vectors) else np.zeros(d, np.float32)
    n_codes = min(n_codes, d, max(len(vectors) - 1, 0))
    if n_codes <= 0:
        return mean, np.zeros((d, 0), np.float32)
    sample = vectors
    if len(vectors) > _CODE_SAMPLE:
        sample = vectors[np.random.default_rng(seed).choice(len(vectors), _CODE_SAMPLE, replace=False)]
    _, _, vt = np.linalg.svd(np.asarray(sample - mean, dtype=np.float64), full_matrices=False)
    return mean, vt[:n_codes].T.astype(np.float32)


def request_kinds(features: np.ndarray, groups: np.ndarray, max_reveal: int) -> np.ndarray:
    """Which gate each group (request) falls under, from its own features; object (n_groups,).

    ``"new_items"`` when every candidate is a bridged new item (a new-arrivals shelf),
    else ``"new_users"`` when the user has at most ``max_reveal`` distinct history items,
    else ``"warm_users"``.
    """
    names = feature_names(0)
    warmth, new = names.index("user_warmth"), names.index("is_new_item")
    starts = np.concatenate([[0], np.cumsum(groups)[:-1]]).astype(np.int64)
    if len(features) == 0:
        return np.zeros(0, dtype=object)
    all_new = np.minimum.reduceat(features[:, new], starts) > 0.5
    n_history = np.expm1(features[starts, warmth])
    kinds = np.where(n_history <= max_reveal + 1e-6, "new_users", "warm_users").astype(object)
    kinds[all_new] = "new_items"
    return kinds


def _groups_for(inner: Scorer, stage: RerankStage, requests: list[Request], relevant: list[set[str]],
                strong: set[tuple[str, str]], classes: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Features, labels and sizes of the groups of one segment's requests."""
    feats, labels, sizes = [], [], []
    for start in range(0, len(requests), _CHUNK):
        chunk = requests[start : start + _CHUNK]
        batch = inner.batch(chunk)
        sources = inner.sources(batch)
        total = inner.blend(sources, batch)
        rows, items = candidate_pairs(total, stage.config.candidates)
        if not len(rows):
            continue
        x = stage.features(inner, chunk, batch, sources, total, rows, items)
        ids = np.asarray(inner.item_map_.ids(items), dtype=object)
        y = np.zeros((len(rows), 3), dtype=np.int64)
        for r in np.unique(rows):
            sel = rows == r
            rel = relevant[start + r]
            user = chunk[r].user_id
            y[sel, 0] = [i in rel for i in ids[sel]]
            y[sel, 1] = [i in rel and (user, i) in strong for i in ids[sel]]
            sizes.append(int(sel.sum()))
        y[:, 2] = classes[items]
        feats.append(x)
        labels.append(y)
    return feats, labels, sizes


def _period_groups(model: FitHost, catalog: Catalog, split, stage_config: RankerConfig,
                   text_vectors: np.ndarray, seed: int, stage: RerankStage | None):
    """Ranking groups of one hold-out period: parts fitted on ``split.train``, labels from ``split.test``.

    Returns ``(data or None, stage, purchase definition)``; the first period creates the
    stage (its text codes and category classes), later periods reuse it.
    """
    from coldbrew.evaluation.protocol import temporal_segments

    cfg = stage_config
    segments = temporal_segments(split, catalog, reveal=1, max_users=cfg.max_users, seed=seed)
    groups_of = [segments[name] for name in ("warm_users", "new_users", "new_items")]
    if cfg.max_reveal > 1:
        more = temporal_segments(split, catalog, reveal=cfg.max_reveal, max_users=cfg.max_users, seed=seed + 1)
        groups_of.append(more["new_users"])
    config = replace(model.config, blend=replace(model.config.blend, tune=False), ranker=replace(cfg, kind="none"))
    # The adapter tuning trained (on events before the validation period) is reused, not retrained;
    # parts fitted up front are taken as they are (tuning's hold-out is the last period).
    inner = model.fitted_on(config, catalog, split.train, text_vectors,
                            adapter=getattr(model, "tuned_adapter", None), name="parts")
    if stage is None:
        mean, basis = _code_basis(inner.text_vectors_, cfg.text_codes, cfg.random_state)
        _, names = primary_categories(inner.catalog_.categories, cfg.categories)
        stage = RerankStage(cfg, {}, mean, basis, names if len(names) >= 2 else [], np.zeros(0, np.float32))
    classes = category_classes(inner.catalog_.categories, stage.category_names)
    stage.item_counts = stage.count_items(inner, split.train)
    stage.item_habits = stage.habits_of(inner, split.train)
    stage._items = None  # item inputs belong to this period's parts
    strong, definition = purchase_pairs(split.test)
    feats, labels, sizes = [], [], []
    for segment in groups_of:
        f, y, n = _groups_for(inner, stage, segment.requests, segment.relevant, strong, classes)
        feats += f
        labels += y
        sizes += n
    if not sizes:
        return None, stage, definition
    data = RankingData(np.vstack(feats), np.vstack(labels), np.asarray(sizes, np.int64))
    positive = np.add.reduceat(data.labels[:, 0], np.concatenate([[0], np.cumsum(data.groups)[:-1]])) > 0
    return data.subset(np.flatnonzero(positive)), stage, definition


def _refitted(cfg: RankerConfig, ranker: Any, data: RankingData, n_categories: int, progress: bool | None):
    """A fresh ranker of ``cfg``'s kind trained on ``data`` for the epochs (trees) that
    ``ranker``'s early stopping kept."""
    rounds = max(int(ranker.rounds_), 1)
    fixed = replace(cfg, epochs=rounds) if cfg.kind == "multitask" else replace(cfg, trees=rounds)
    return make_ranker(fixed, n_categories=n_categories, progress=progress).fit(data.features, data.labels, data.groups)


def _period_splits(cfg: RankerConfig, share: float, events: Events) -> list:
    """The ``cfg.periods`` hold-out splits, oldest first: each period is the last ``share``
    of all events before it."""
    from coldbrew.evaluation.splits import temporal_split

    splits, rest = [], events
    for j in range(cfg.periods):  # newest first
        cut = temporal_split(rest, quantile=1.0 - share / (1.0 - j * share))
        splits.insert(0, cut)
        rest = cut.train
    return splits


def period_jobs(cfg: RankerConfig, share: float, parts_config, events: Events) -> list[tuple[str, Any, Events]]:
    """The parts :func:`train_stage` fits, as ``(name, config, train events)``: one per
    hold-out period, on the events before it, with ``parts_config``'s part settings."""
    if len(events) < 200 or share * cfg.periods >= 1.0:
        return []
    config = replace(parts_config, blend=replace(parts_config.blend, tune=False), ranker=replace(cfg, kind="none"))
    return [(f"period {i + 1}", config, s.train) for i, s in enumerate(_period_splits(cfg, share, events))
            if len(s.train) and len(s.test)]


def train_stage(model: FitHost, catalog: Catalog, events: Events,
                text_vectors: np.ndarray) -> tuple[RerankStage | None, dict[str, Any], dict[str, list[float]]]:
    """Train the configured ranker on ``ranker.periods`` successive hold-out periods of the fit events.

    With ``v = blend.validation_share`` and ``p = ranker.periods``: period ``i`` (1..p) holds
    the events between the ``1 - (p - i + 1) v`` and ``1 - (p - i) v`` time quantiles; its
    groups come from parts fitted on the events before it, labelled by its events. Periods
    1..p-1 give the *training* groups, period p the *validation* groups. Validation is thus
    strictly later than training, as the future is to the fitted model: a ranker that merely
    memorised the training periods' best-sellers does not pass. One ranker per request kind
    (:func:`request_kinds`: warm users, new users, new-item shelves) with at least 20
    training and 30 validation requests; each stops early on its kind's validation requests
    and, when ``require_gain``, is used only if it beats the blend's order on them (NDCG@20). With ``refit``, a used kind's ranker is then trained
    afresh on all the periods' requests for the epochs (trees) early stopping kept: the judged
    ranker decides *whether* a kind is re-ranked, the refitted one, which has seen the
    latest period too, does the ranking.

    Returns ``(stage or None, report, curves)``; ``None`` when there is too little data or
    no kind gained. ``report["kinds"]`` says which kind uses a ranker and why; ``curves``
    are per epoch, keyed ``"<kind>_<metric>"`` on one ``"epoch"`` axis.
    """

    started = time.perf_counter()
    cfg = model.config.ranker
    share = model.config.blend.validation_share
    report: dict[str, Any] = {"kind": cfg.kind, "active": False}
    if len(events) < 200 or share * cfg.periods >= 1.0:
        report["reason"] = ("fewer than 200 events (or ranker.periods x blend.validation_share >= 1):"
                            " no hold-out to train on")
        return None, report, {}
    splits = _period_splits(cfg, share, events)
    if min(min(len(s.train), len(s.test)) for s in splits) == 0:
        report["reason"] = "a hold-out period is empty"
        return None, report, {}
    stage, parts, definition = None, [], ""
    for i, period in enumerate(splits):
        with stage_of(model, f"period {i + 1}"):
            data, stage, definition = _period_groups(model, catalog, period, cfg, text_vectors, cfg.random_state + 2 * i, stage)
        parts.append(data)
    report["purchase_label"] = definition
    val, older = parts[-1], [p for p in parts[:-1] if p is not None]
    train = older[0].join(*older[1:]) if older else None
    if train is None or val is None or len(train.groups) < _MIN_GROUPS or len(val.groups) < 2:
        report["reason"] = "too few hold-out requests with a hit among the candidates"
        return None, report, {}
    train_kinds = request_kinds(train.features, train.groups, cfg.max_reveal)
    val_kinds = request_kinds(val.features, val.groups, cfg.max_reveal)
    per_kind: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[float]] = {}
    allowed = {k.strip() for k in cfg.kinds.split(",")}
    for kind in _KINDS:
        a, b = np.flatnonzero(train_kinds == kind), np.flatnonzero(val_kinds == kind)
        per_kind[kind] = {"groups_train": int(len(a)), "groups_validation": int(len(b))}
        if kind not in allowed:
            per_kind[kind].update(used=False, reason="not listed in ranker.kinds")
            continue
        if len(a) < _MIN_GROUPS or len(b) < _MIN_GATE_GROUPS:
            per_kind[kind]["used"] = False
            per_kind[kind]["reason"] = (f"too few requests of this kind (need {_MIN_GROUPS} training and"
                                        f" {_MIN_GATE_GROUPS} validation requests with a hit)")
            continue
        part_train, part_val = train.subset(a), val.subset(b)
        ranker = make_ranker(cfg, n_categories=len(stage.category_names), progress=model.progress)
        with stage_of(model, f"train {kind}"):
            ranker.fit(part_train.features, part_train.labels, part_train.groups, validation=part_val)
        before = grouped_ndcg(part_val.features[:, 0], part_val.labels[:, 0], part_val.groups)
        after = grouped_ndcg(ranker.score(part_val.features), part_val.labels[:, 0], part_val.groups)
        used = bool(after > before) if cfg.require_gain else True
        per_kind[kind].update(val_ndcg_blend=round(before, 5), val_ndcg_ranker=round(after, 5), used=used)
        stage.rankers[kind] = ranker
        if cfg.refit and used:
            with stage_of(model, f"refit {kind}"):
                stage.rankers[kind] = _refitted(cfg, ranker, part_train.join(part_val), len(stage.category_names),
                                                model.progress)
            per_kind[kind]["refit_rounds"] = int(ranker.rounds_)
        stage.gates[kind] = used
        for name, values in ranker.curves_.items():
            if name != "epoch":
                curves[f"{kind}_{name}"] = list(values)
        curves[f"{kind}_blend_val_ndcg"] = [before] * len(ranker.curves_["epoch"])
    # One common epoch axis; a ranker that stopped early carries its last value forward.
    length = max((len(v) for v in curves.values()), default=0)
    curves = {name: values + [values[-1]] * (length - len(values)) for name, values in curves.items() if values}
    if length:
        curves = {"epoch": [float(e) for e in range(1, length + 1)], **curves}
    report.update(
        groups_train=int(len(train.groups)), groups_validation=int(len(val.groups)),
        pairs_train=int(len(train.features)), kinds=per_kind,
        categories=len(stage.category_names), seconds=round(time.perf_counter() - started, 2),
    )
    if not any(stage._active(kind) for kind in _KINDS):
        report["reason"] = "no request kind where a ranker beat the blend's order on the validation requests"
        return None, report, curves
    report["active"] = True
    stage._items = None
    return stage, report, curves
