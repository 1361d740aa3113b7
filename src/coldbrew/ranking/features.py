"""Ranking features: pure, batch-first functions over (request, candidate item) pairs.

The re-ranking stage looks at each request's top blended candidates through one float32
matrix ``(n_pairs, n_features)`` whose columns are named by :data:`FEATURE_NAMES` (plus
``text_code_*`` columns when item text codes are used). A pair is ``(row, item)``: ``row``
indexes the request inside its batch, ``item`` the dense item index.

Everything the features need is gathered into two small tables:

* :class:`ItemTable`: per item (length ``n_items``): trend popularity, interaction count
  (0 for products added after fit), whether the item is a bridged new item, price, category
  labels and optional text codes.
* :class:`UserTable`: per request (length ``n``): history length, days since the last event,
  typical price and the share of the history in each category label.

Missing data degrades to neutral values, never to NaN: an unknown price gives a price fit of
0 with ``price_known = 0``; a shop without categories gives ``category_match = 0`` everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from coldbrew.data.weighting import recent_span_days

__all__ = [
    "FEATURE_NAMES",
    "ItemTable",
    "UserTable",
    "category_classes",
    "category_labels",
    "category_match",
    "category_share",
    "days_since",
    "feature_names",
    "group_ranks",
    "item_habits",
    "pair_features",
    "price_fit",
    "primary_categories",
    "typical_price",
]

_DAY = 86_400.0
_NOVELTY_SHARE = 0.25

#: Columns of :func:`pair_features`, in order (``text_code_*`` columns follow when used).
FEATURE_NAMES: tuple[str, ...] = (
    "blend_score",         # the warmth-aware blend itself
    "blend_rank",          # log1p(0-based rank of the item in the request's blended list)
    "content_z",           # standardised source scores (as the blend sees them)
    "cooccurrence_z",
    "cf_z",
    "popularity_z",
    "text_match",          # cosine of the request's own words with the item text (0: no words)
    "popularity_trend",    # log1p(recent, decayed interaction mass)
    "item_warmth",         # log1p(distinct users at fit); 0 for new items
    "is_new_item",         # 1 when the item's CF factors come from the text->CF bridge
    "user_warmth",         # log1p(distinct history items)
    "recency",             # log1p(days since the user's last event)
    "price_log_ratio",     # log(candidate price / the user's typical price)
    "price_abs_log_ratio",
    "price_known",         # 1 when both prices are known
    "category_match",      # share of the user's history in the candidate's category
    "has_text",            # 1 when the request carries words
    "repeat_rate",         # share of the item's buyers who came back for it on another day
    "basket_size",         # mean log(items in the same basket) over the item's events
    "novelty",             # 1 - age / span of the newest quarter of events, floored at 0
)


def feature_names(n_codes: int = 0) -> tuple[str, ...]:
    """All column names for ``n_codes`` item text codes."""
    return FEATURE_NAMES + tuple(f"text_code_{j}" for j in range(n_codes))


@dataclass(frozen=True)
class ItemTable:
    """Per-item inputs of the features, each of length ``n_items``.

    popularity: float32, the blend's (trend) popularity source.
    counts: float32, distinct users per item at fit (0 for items without interactions).
    new: bool, the item has no interactions (its CF factors are bridged).
    prices: float64, NaN where unknown.
    labels: CSR (n_items, n_labels) float32 0/1 category-label membership.
    codes: float32 (n_items, n_codes) text codes (``n_codes`` may be 0).
    habits: float32 (n_items, 3) repeat rate, mean log basket size, novelty
        (:func:`item_habits`; zeros for items without interactions).
    """

    popularity: np.ndarray
    counts: np.ndarray
    new: np.ndarray
    prices: np.ndarray
    labels: sp.csr_matrix
    codes: np.ndarray
    habits: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.popularity)
        if self.habits.ndim != 2 or self.habits.shape[1] != 3:
            raise ValueError(f"ItemTable.habits: expected shape ({n}, 3), got {self.habits.shape}")
        for name in ("counts", "new", "prices", "codes", "habits"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"ItemTable.{name}: expected {n} rows, got {len(getattr(self, name))}")
        if self.labels.shape[0] != n:
            raise ValueError(f"ItemTable.labels: expected {n} rows, got {self.labels.shape[0]}")


@dataclass(frozen=True)
class UserTable:
    """Per-request inputs of the features, each of length ``n`` (requests in the batch).

    n_history: float32, distinct known history items.
    recency_days: float32, days from the last history event to the request time (0: none).
    price: float64, the user's typical (median) price; NaN when unknown.
    share: CSR (n, n_labels) float32, share of the history items carrying each label.
    has_text: bool (n,).
    """

    n_history: np.ndarray
    recency_days: np.ndarray
    price: np.ndarray
    share: sp.csr_matrix
    has_text: np.ndarray


def category_labels(categories: Sequence[str]) -> tuple[sp.csr_matrix, list[str]]:
    """Binary item x label matrix from category strings, and the label names.

    A category string may hold several categories separated by ``|`` (e.g. movie genres);
    a hierarchical path ``"Home > Kitchen > Knives"`` yields its top level and its full path.
    Returns ``(labels CSR (n_items, n_labels) float32, names)``; no categories -> 0 columns.
    """
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, raw in enumerate(categories):
        text = "" if raw is None else str(raw)
        seen: set[int] = set()
        for part in text.split("|"):
            path = [p.strip() for p in part.split(">") if p.strip()]
            if not path:
                continue
            for name in {path[0].lower(), " > ".join(path).lower()}:
                j = vocab.setdefault(name, len(vocab))
                if j not in seen:
                    seen.add(j)
                    rows.append(i)
                    cols.append(j)
    matrix = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
        shape=(len(categories), len(vocab)),
    )
    return matrix, list(vocab)


def primary_categories(categories: Sequence[str], top: int) -> tuple[np.ndarray, list[str]]:
    """The first category of each item as a class index among the ``top`` most frequent.

    Returns ``(classes int64 (n_items,), names)``: ``-1`` for items without a category or
    whose category is not among the ``top`` (those are ignored by the category head).
    """
    first = [_first_category(raw) for raw in categories]
    names, counts = np.unique(np.asarray([f for f in first if f], dtype=object), return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    kept = [str(names[o]) for o in order]
    return category_classes(categories, kept), kept


def category_classes(categories: Sequence[str], names: Sequence[str]) -> np.ndarray:
    """Class index (into ``names``) of each item's first category, int64; -1 when not listed."""
    index = {name: j for j, name in enumerate(names)}
    return np.asarray([index.get(_first_category(raw), -1) for raw in categories], dtype=np.int64)


def _first_category(raw) -> str:
    text = "" if raw is None else str(raw)
    return text.split("|")[0].split(">")[0].strip().lower()


def typical_price(history: sp.csr_matrix, prices: np.ndarray) -> np.ndarray:
    """Median known price of each user's history items, float64 (n,); NaN when none.

    ``history`` (n, n_items) CSR: the nonzero columns of a row are the user's items.
    """
    out = np.full(history.shape[0], np.nan)
    for r in range(history.shape[0]):
        values = prices[history.indices[history.indptr[r] : history.indptr[r + 1]]]
        values = np.sort(values[np.isfinite(values) & (values > 0)])
        half = len(values) // 2
        if len(values) % 2:
            out[r] = float(values[half])
        elif len(values):  # as np.median: the mean of the two middle values
            out[r] = float((values[half - 1] + values[half]) / 2.0)
    return out


def price_fit(candidate_prices: np.ndarray, user_prices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log(candidate / user) float32, known float32)`` per pair; 0 where a price is unknown.

    Non-positive prices count as unknown.
    """
    c = np.asarray(candidate_prices, dtype=np.float64)
    u = np.asarray(user_prices, dtype=np.float64)
    known = np.isfinite(c) & np.isfinite(u) & (c > 0) & (u > 0)
    ratio = np.zeros(len(c))
    ratio[known] = np.log(c[known] / u[known])
    return ratio.astype(np.float32), known.astype(np.float32)


def category_share(history: sp.csr_matrix, labels: sp.csr_matrix) -> sp.csr_matrix:
    """Share of each user's distinct history items that carry each label, CSR (n, n_labels).

    ``history`` (n, n_items) with any positive values; ``labels`` (n_items, n_labels) 0/1.
    """
    if labels.shape[1] == 0:  # a shop without categories
        return sp.csr_matrix((history.shape[0], 0), dtype=np.float32)
    binary = history.copy().tocsr()
    binary.data = np.ones_like(binary.data, dtype=np.float32)
    counts = np.asarray(binary.sum(axis=1), dtype=np.float64).ravel()
    share = (binary @ labels).tocsr().astype(np.float32)
    scale = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ share)


def category_match(share: sp.csr_matrix, labels: sp.csr_matrix, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Per pair: the largest history share among the candidate's labels, float32 (n_pairs,).

    0 when the shop has no categories, the user has no history or the item no category.
    """
    if labels.shape[1] == 0 or len(rows) == 0:
        return np.zeros(len(rows), dtype=np.float32)
    product = share[rows].multiply(labels[items]).tocsr()
    return np.asarray(product.max(axis=1).todense(), dtype=np.float32).ravel()


def item_habits(user_idx: np.ndarray, item_idx: np.ndarray, timestamps: np.ndarray, n_items: int) -> np.ndarray:
    """How each item is bought, float32 ``(n_items, 3)``, from positive events only.

    Columns: the *repeat rate* (share of the item's buyers who bought it on two or more
    distinct days: refills and staples against one-off gifts), the mean ``log`` of the
    *basket size* of its events (a basket = one user's events sharing a timestamp; 0 where
    baskets are single events), and its *novelty*: ``1 - age / w`` floored at 0, where the
    age is the days from its first event to the newest event and ``w`` the span that holds
    the newest quarter of the events. Items without events get zeros.

    All three mean the same on the ranker's shorter hold-out logs as on the full log it
    serves with. A plain age (days since the first event) did not: it is cut at the start of
    the log, so it is smaller in every hold-out fit than in the final one; it lifted UCI new
    users and cost them on the first year of UCI (benchmarks/RESULTS.md, "item habits").

    Parameters
    ----------
    user_idx, item_idx: int ``(n,)`` dense indices of each positive event.
    timestamps: int ``(n,)`` unix seconds.
    n_items: number of items (rows of the result).
    """
    user_idx = np.asarray(user_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    ts = np.asarray(timestamps, dtype=np.int64)
    out = np.zeros((n_items, 3), dtype=np.float32)
    if len(item_idx) == 0:
        return out
    # repeat rate: distinct days per (user, item) pair
    _, days = np.unique(ts // int(_DAY), return_inverse=True)
    triples = np.unique(np.stack([item_idx, user_idx, days.ravel()]), axis=1)
    pairs, per_pair = np.unique(triples[:2], axis=1, return_counts=True)
    buyers = np.bincount(pairs[0], minlength=n_items)
    repeaters = np.bincount(pairs[0], weights=per_pair >= 2, minlength=n_items)
    out[:, 0] = np.divide(repeaters, buyers, out=np.zeros(n_items), where=buyers > 0)
    # basket size: distinct items per (user, timestamp)
    lines = np.unique(np.stack([user_idx, ts, item_idx]), axis=1)
    _, basket, size = np.unique(lines[:2], axis=1, return_inverse=True, return_counts=True)
    log_size = np.log(size[basket.ravel()])
    total = np.bincount(lines[2], weights=log_size, minlength=n_items)
    count = np.bincount(lines[2], minlength=n_items)
    out[:, 1] = np.divide(total, count, out=np.zeros(n_items), where=count > 0)
    first = np.full(n_items, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, item_idx, ts)
    window = recent_span_days(ts, _NOVELTY_SHARE) * _DAY
    seen = buyers > 0
    out[seen, 2] = np.maximum(1.0 - (ts.max() - first[seen]) / window, 0.0)
    return out


def days_since(last_timestamps: np.ndarray, now: np.ndarray | int) -> np.ndarray:
    """Days from each last event to ``now`` (unix seconds), float32; 0 where there is none (-1)."""
    last = np.asarray(last_timestamps, dtype=np.int64)
    days = np.maximum(np.asarray(now, dtype=np.float64) - last, 0.0) / _DAY
    return np.where(last >= 0, days, 0.0).astype(np.float32)


def group_ranks(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """0-based rank of each pair's score inside its row (best = 0), int64 (n_pairs,).

    Ties keep the pair order. ``rows`` need not be sorted; when they are, with each row's
    scores already best first (the candidates of :func:`coldbrew.ranking.stage.candidate_pairs`),
    a rank is the pair's position in its row and no sort is needed.
    """
    rows = np.asarray(rows)
    s = np.asarray(scores, np.float64)
    if len(rows) > 1:
        same = rows[1:] == rows[:-1]
        if np.all(rows[1:] >= rows[:-1]) and np.all(~same | (s[1:] <= s[:-1])):
            return np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
    order = np.lexsort((np.arange(len(rows)), -s, rows))
    sorted_rows = rows[order]
    starts = np.searchsorted(sorted_rows, sorted_rows, side="left")
    ranks = np.empty(len(rows), dtype=np.int64)
    ranks[order] = np.arange(len(rows)) - starts
    return ranks


def pair_features(
    rows: np.ndarray,
    items: np.ndarray,
    blend: np.ndarray,
    source_z: np.ndarray,
    text_match: np.ndarray,
    users: UserTable,
    item_table: ItemTable,
) -> np.ndarray:
    """The feature matrix of ``n_pairs`` (request, candidate) pairs, float32.

    Parameters
    ----------
    rows: int (n_pairs,) request row of each pair (into ``users``).
    items: int (n_pairs,) dense item index of each pair (into ``item_table``).
    blend: float (n_pairs,) the blended score of the pair.
    source_z: float (n_pairs, 4) standardised content, co-occurrence, CF, popularity scores.
    text_match: float (n_pairs,) cosine of the request's words with the item (0: no words).

    Returns
    -------
    float32 (n_pairs, len(FEATURE_NAMES) + n_codes), columns as :func:`feature_names`.
    """
    rows = np.asarray(rows, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    n = len(rows)
    if len(items) != n or len(blend) != n or len(text_match) != n or source_z.shape != (n, 4):
        raise ValueError(
            f"pair_features: rows, items, blend, text_match need {n} entries and source_z"
            f" shape ({n}, 4); got {len(items)}, {len(blend)}, {len(text_match)}, {source_z.shape}"
        )
    ratio, known = price_fit(item_table.prices[items], users.price[rows])
    n_codes = item_table.codes.shape[1]
    out = np.empty((n, len(FEATURE_NAMES) + n_codes), dtype=np.float32)
    out[:, 0] = blend
    out[:, 1] = np.log1p(group_ranks(rows, blend))
    out[:, 2:6] = source_z
    out[:, 6] = text_match
    out[:, 7] = item_table.popularity[items]
    out[:, 8] = np.log1p(item_table.counts[items])
    out[:, 9] = item_table.new[items]
    out[:, 10] = np.log1p(users.n_history[rows])
    out[:, 11] = np.log1p(users.recency_days[rows])
    out[:, 12] = ratio
    out[:, 13] = np.abs(ratio)
    out[:, 14] = known
    out[:, 15] = category_match(users.share, item_table.labels, rows, items)
    out[:, 16] = users.has_text[rows]
    out[:, 17:20] = item_table.habits[items]
    if n_codes:
        out[:, len(FEATURE_NAMES):] = item_table.codes[items]
    bad = ~np.isfinite(out)  # missing prices, empty shares: 0 (one pass, unlike nan_to_num's three)
    if bad.any():
        out[bad] = 0.0
    return out
