"""The segment protocol: who is asked, what they may show the model, what it must find.

A temporal split is turned into three segments of :class:`~coldbrew.requests.Request`
objects (warm users, new users, new items). A model is fit on the train events restricted to
the items seen in train (:func:`fit_catalog`), told about the other items with ``add_items``,
then asked for ``k`` items per request; :func:`evaluate` scores the answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

import numpy as np

from coldbrew.config import WeightingConfig
from coldbrew.data import Catalog, Events, event_strengths
from coldbrew.evaluation.metrics import (
    catalog_coverage,
    per_user_hit_rate_at_k,
    per_user_mrr_at_k,
    per_user_ndcg_at_k,
    per_user_recall_at_k,
)
from coldbrew.evaluation.splits import ColdItemSplit, Split
from coldbrew.requests import HistoryEvent, Recommendation, Request

__all__ = [
    "Recommender",
    "Segment",
    "cold_item_catalogs",
    "evaluate",
    "fit_catalog",
    "is_positive",
    "markdown_table",
    "recommend_segments",
    "score_segments",
    "temporal_segments",
]


class Recommender(Protocol):
    """What :func:`evaluate` needs from a model."""

    def fit(self, catalog: Catalog, events: Events) -> Self:
        """Learn from ``events`` on the items of ``catalog``; return ``self``."""
        ...

    def add_items(self, catalog: Catalog) -> None:
        """Make items that arrived after ``fit`` recommendable (their content only)."""
        ...

    def recommend(self, requests: Sequence[Request], k: int) -> list[Recommendation]:
        """Up to ``k`` items per request, best first, one answer per request in order."""
        ...


@dataclass(frozen=True)
class Segment:
    """One group of test users: a request per user and the items that user went on to use.

    ``requests[i]`` and ``relevant[i]`` belong together; ``n_items`` is the size of the item
    universe the segment ranks from (catalog size, or the number of candidates), used for
    coverage (``None``: unknown, coverage is reported as ``NaN``).
    """

    name: str
    requests: list[Request]
    relevant: list[set[str]]
    n_items: int | None = None

    def __post_init__(self) -> None:
        if len(self.requests) != len(self.relevant):
            raise ValueError(
                f"segment {self.name!r}: {len(self.requests)} requests but"
                f" {len(self.relevant)} relevant sets"
            )

    def __len__(self) -> int:
        return len(self.requests)


def is_positive(events: Events) -> np.ndarray:
    """Whether each event is a positive signal, bool ``(n,)``.

    Positive means a strength > 0 under the default event weights without time decay:
    purchases and views yes, cancels and returns no, ratings above 2.5 (of 5) yes.
    """
    strengths = event_strengths(
        events.events, events.values, events.timestamps, WeightingConfig(half_life_days=None)
    )
    return strengths > 0


class _UserGroups:
    """Positions of each user's events, sorted by time (then by row)."""

    def __init__(self, events: Events) -> None:
        import pandas as pd

        n = len(events)
        # hash-based codes (in order of first appearance): a string sort of every event is slow
        codes, users = pd.factorize(events.user_ids.astype(str))
        order = np.lexsort((np.arange(n), events.timestamps, codes))
        bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(users)))])
        self.positions: dict[str, np.ndarray] = {
            str(u): order[bounds[i] : bounds[i + 1]] for i, u in enumerate(users)
        }
        self._items: list[str] = [str(i) for i in events.item_ids.tolist()]
        self._times: list[int] = [int(t) for t in events.timestamps.tolist()]
        self._kinds: list[str] = [str(e) for e in events.events.tolist()]
        self._values: list[float | None] = [
            None if math.isnan(v) else float(v) for v in events.values.astype(np.float64).tolist()
        ]

    def items(self, positions: np.ndarray) -> list[str]:
        return [self._items[p] for p in positions]

    def history(self, positions: np.ndarray) -> tuple[HistoryEvent, ...]:
        return tuple(
            HistoryEvent(self._items[p], self._times[p], self._kinds[p], self._values[p])
            for p in positions
        )


def _subsample(users: list[str], max_users: int | None, seed: int) -> list[str]:
    if max_users is None or len(users) <= max_users:
        return users
    picked = np.random.default_rng(seed).choice(len(users), size=max_users, replace=False)
    return [users[i] for i in np.sort(picked)]


def temporal_segments(
    split: Split,
    catalog: Catalog,
    *,
    reveal: int = 1,
    max_users: int | None = None,
    seed: int = 0,
    min_new_user_items: int | None = None,
) -> dict[str, Segment]:
    """Build the ``warm_users``, ``new_users`` and ``new_items`` segments of a split.

    * ``warm_users``: users with train events and at least one positive test event on an
      item outside their train history. History: all their train events (every event type,
      by time); relevant: those distinct positive test items.
    * ``new_users``: users without train events and at least ``min_new_user_items`` (default
      ``reveal + 1``) distinct positive test items. History: their first ``reveal`` test
      events by time (``reveal=0``: empty history); relevant: their distinct positive test
      items minus the revealed ones. Fix ``min_new_user_items`` to keep the same users
      across a few-shot curve (``reveal`` = 0, 1, 3, 5).
    * ``new_items``: new items are the catalog items with no train event at all. Users with
      train events and a positive test event on a new item; history: their train events;
      ``candidates``: every new item (sorted by ID); relevant: the new items they used.

    Relevant items are always catalog items. Users are sorted by ID; ``max_users`` keeps a
    random subset of each segment (drawn with ``seed``). Request IDs are ``"SEGMENT:USER"``.
    """
    if isinstance(reveal, bool) or not isinstance(reveal, int) or reveal < 0:
        raise ValueError(f"reveal must be an integer >= 0, got {reveal!r}")
    if max_users is not None and (not isinstance(max_users, int) or max_users < 1):
        raise ValueError(f"max_users must be a positive integer or None, got {max_users!r}")
    min_items = reveal + 1 if min_new_user_items is None else min_new_user_items
    if not isinstance(min_items, int) or min_items < 1:
        raise ValueError(f"min_new_user_items must be a positive integer, got {min_items!r}")

    catalog_ids = {str(i) for i in catalog.item_ids.tolist()}
    train_groups = _UserGroups(split.train)
    test_groups = _UserGroups(split.test)
    positive = is_positive(split.test)
    train_items = {u: set(train_groups.items(p)) for u, p in train_groups.positions.items()}

    def positive_items(user: str) -> list[str]:
        """Distinct positive catalog items of the user's test events, in time order."""
        pos = test_groups.positions[user]
        items = test_groups.items(pos[positive[pos]])
        return [i for i in dict.fromkeys(items) if i in catalog_ids]

    new_items = sorted(catalog_ids - {str(i) for i in split.train.item_ids.tolist()})
    new_item_set = set(new_items)
    candidates = tuple(new_items)

    warm: dict[str, set[str]] = {}
    cold_item_users: dict[str, set[str]] = {}
    new: dict[str, tuple[np.ndarray, set[str]]] = {}
    for user in sorted(test_groups.positions):
        items = positive_items(user)
        if user in train_items:
            seen = train_items[user]
            rel = {i for i in items if i not in seen}
            if rel:
                warm[user] = rel
            rel_new = {i for i in items if i in new_item_set}
            if rel_new:
                cold_item_users[user] = rel_new
        elif len(items) >= min_items:
            shown = test_groups.positions[user][:reveal]
            rel = set(items) - set(test_groups.items(shown))
            if rel:
                new[user] = (shown, rel)

    segments: dict[str, Segment] = {}
    users = _subsample(list(warm), max_users, seed)
    segments["warm_users"] = Segment(
        "warm_users",
        [
            Request(f"warm_users:{u}", u, train_groups.history(train_groups.positions[u]))
            for u in users
        ],
        [warm[u] for u in users],
        n_items=len(catalog_ids),
    )
    users = _subsample(list(new), max_users, seed)
    segments["new_users"] = Segment(
        "new_users",
        [Request(f"new_users:{u}", u, test_groups.history(new[u][0])) for u in users],
        [new[u][1] for u in users],
        n_items=len(catalog_ids),
    )
    users = _subsample(list(cold_item_users), max_users, seed)
    segments["new_items"] = Segment(
        "new_items",
        [
            Request(
                f"new_items:{u}",
                u,
                train_groups.history(train_groups.positions[u]),
                candidates=candidates,
            )
            for u in users
        ],
        [cold_item_users[u] for u in users],
        n_items=len(new_items) or None,
    )
    return segments


def cold_item_segment(
    split: Split, cold_items: Sequence[str], *, max_users: int | None = None, seed: int = 0
) -> Segment:
    """The item cold-start segment of a :func:`~coldbrew.evaluation.splits.cold_item_split`.

    Users with at least one train event and a positive test event on a held-out item; history
    = all their train events (by time); candidates = every held-out item; relevant = the
    held-out items they interacted with positively. Request ids are ``"cold_items:USER"``.
    """
    train = _UserGroups(split.train)
    test = split.test.take(is_positive(split.test))
    relevant: dict[str, set[str]] = {}
    for user, item in zip(test.user_ids.astype(str), test.item_ids.astype(str)):
        relevant.setdefault(user, set()).add(item)
    users = _subsample(sorted(u for u in relevant if u in train.positions), max_users, seed)
    candidates = tuple(sorted(str(i) for i in cold_items))
    requests = [
        Request(f"cold_items:{u}", u, train.history(train.positions[u]), candidates=candidates)
        for u in users
    ]
    return Segment("cold_items", requests, [relevant[u] for u in users], n_items=len(candidates))


def fit_catalog(split: Split, catalog: Catalog) -> tuple[Catalog, Catalog]:
    """Split the catalog into (items with at least one train event, all other items).

    Both keep the catalog's row order. The protocol fits on ``split.train`` with the first,
    calls ``add_items`` with the second, then recommends.
    """
    seen = np.isin(catalog.item_ids.astype(str), np.unique(split.train.item_ids.astype(str)))
    return catalog.subset(np.flatnonzero(seen)), catalog.subset(np.flatnonzero(~seen))


def recommend_segments(
    model: Recommender, segments: Mapping[str, Segment], k: int = 20
) -> dict[str, list[list[str]]]:
    """Ask ``model`` for ``k`` items per request of each segment: ``{segment: lists}``.

    Checks that the model answers every request, in request order.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    out: dict[str, list[list[str]]] = {}
    for name, segment in segments.items():
        recs = model.recommend(segment.requests, k) if len(segment) else []
        if len(recs) != len(segment):
            raise ValueError(
                f"segment {name!r}: the model answered {len(recs)} of {len(segment)} requests"
            )
        for rec, req in zip(recs, segment.requests):
            if rec.request_id != req.request_id:
                raise ValueError(
                    f"segment {name!r}: answer for {rec.request_id!r} where"
                    f" {req.request_id!r} was expected (answers must keep request order)"
                )
        out[name] = [list(rec.items[:k]) for rec in recs]
    return out


def score_segments(
    segments: Mapping[str, Segment], lists: Mapping[str, list[list[str]]], k: int = 20
) -> dict[str, dict[str, float]]:
    """Score recommended ``lists`` (from :func:`recommend_segments`) against each segment.

    Returns ``{segment: {"recall@k", "ndcg@k", "hit@k", "mrr@k", "coverage@k", "users"}}``
    (means over the segment's users; ``users`` is the request count). An empty segment
    gets ``NaN`` metrics.
    """
    results: dict[str, dict[str, float]] = {}
    for name, segment in segments.items():
        recs = lists[name]
        row: dict[str, float] = {}
        for label, fn in (
            ("recall", per_user_recall_at_k),
            ("ndcg", per_user_ndcg_at_k),
            ("hit", per_user_hit_rate_at_k),
            ("mrr", per_user_mrr_at_k),
        ):
            values = fn(recs, segment.relevant, k) if recs else np.zeros(0)
            values = values[~np.isnan(values)]
            row[f"{label}@{k}"] = float(values.mean()) if len(values) else float("nan")
        row[f"coverage@{k}"] = (
            catalog_coverage(recs, segment.n_items, k) if segment.n_items else float("nan")
        )
        row["users"] = float(len(segment))
        results[name] = row
    return results


def cold_item_catalogs(split: ColdItemSplit, catalog: Catalog) -> tuple[Catalog, Catalog]:
    """Split the catalog into (items kept for fit, the split's held-out items).

    Unlike :func:`fit_catalog`, items without any event stay in the fit catalog: under the
    cold-item protocol only the held-out items are added after fit and ranked.
    """
    cold = set(str(i) for i in split.cold_items)
    is_cold = np.array([str(i) in cold for i in catalog.item_ids], dtype=bool)
    return catalog.subset(np.flatnonzero(~is_cold)), catalog.subset(np.flatnonzero(is_cold))


def evaluate(
    model: Recommender, segments: Mapping[str, Segment], k: int = 20
) -> dict[str, dict[str, float]]:
    """Ask ``model`` for ``k`` items per request of each segment and score the answers.

    Returns ``{segment: {"recall@k", "ndcg@k", "hit@k", "mrr@k", "coverage@k", "users"}}``
    (means over the segment's users; ``users`` is the request count). An empty segment
    gets ``NaN`` metrics.
    """
    return score_segments(segments, recommend_segments(model, segments, k), k)


def _cell(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric == "users" or metric.endswith("_s"):
        return f"{value:,.0f}" if metric == "users" else f"{value:.1f}"
    return f"{value:.4f}"


def markdown_table(
    results: Mapping[str, Mapping[str, Mapping[str, float]]],
    metric_names: Sequence[str],
    segments: Sequence[str] | None = None,
) -> str:
    """Render ``{model: {segment: {metric: value}}}`` as a Markdown table.

    One row per model; one column per (segment, metric), segments in ``segments`` order
    (default: first-seen order). Metrics print with 4 decimals, ``users`` as an integer,
    names ending in ``_s`` (seconds) with 1 decimal; a missing value prints as ``–``.
    """
    if not metric_names:
        raise ValueError("markdown_table: metric_names is empty")
    if segments is None:
        segments = list(dict.fromkeys(s for per_model in results.values() for s in per_model))
    header = ["model"] + [f"{s} {m}" for s in segments for m in metric_names]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for model, per_segment in results.items():
        cells = [model]
        for s in segments:
            for m in metric_names:
                cells.append(_cell(m, per_segment.get(s, {}).get(m)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
