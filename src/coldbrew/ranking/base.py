"""The ``Ranker`` seam and what every ranker shares: grouped data, padding, grouped NDCG.

A ranker learns from *groups*: the candidates of one request are one group, stored as
contiguous rows of a feature matrix. ``groups`` holds the group sizes (summing to the number
of rows). Labels are an int matrix ``(n_pairs, 3)``:

* column 0 ``click``: 1 when the user went on to interact with the item, else 0;
* column 1 ``purchase``: 1 for the stronger signal (a purchase, a rating >= 4, or, where every
  event is a purchase, a repeat purchase; see :mod:`coldbrew.ranking.stage`), else 0;
* column 2 ``category``: the item's primary-category class, ``-1`` when it has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self

import numpy as np

__all__ = ["Ranker", "RankingData", "grouped_ndcg", "check_ranking_inputs", "pad_groups"]

LABEL_COLUMNS = ("click", "purchase", "category")


class Ranker(Protocol):
    """Scores (request, candidate) pairs from their features; higher is better."""

    def fit(self, features: np.ndarray, labels: np.ndarray, groups: np.ndarray,
            validation: RankingData | None = None) -> Self:
        """Learn from ``features`` float32 (n_pairs, F), ``labels`` int (n_pairs, 3) and
        ``groups`` int (n_groups,) sizes; ``validation`` drives early stopping (without it,
        the configured number of epochs or trees is trained and kept). Sets ``rounds_``: the
        epochs or trees behind the kept model."""
        ...

    def score(self, features: np.ndarray) -> np.ndarray:
        """Scores float32 (n_pairs,) for ``features`` float32 (n_pairs, F)."""
        ...

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        """What to persist: (json-able metadata, float/int arrays, text blobs)."""
        ...


@dataclass(frozen=True)
class RankingData:
    """Grouped pairs: features float32 (n_pairs, F), labels int64 (n_pairs, 3), groups (n_groups,)."""

    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray

    def __post_init__(self) -> None:
        check_ranking_inputs(self.features, self.labels, self.groups)

    def join(self, *others: RankingData) -> RankingData:
        """This data's groups followed by each of ``others``'s, in order."""
        parts = (self, *others)
        return RankingData(np.concatenate([p.features for p in parts]),
                           np.concatenate([p.labels for p in parts]),
                           np.concatenate([p.groups for p in parts]))

    def subset(self, group_ids: np.ndarray) -> RankingData:
        """The given groups (by position), in that order."""
        starts = np.concatenate([[0], np.cumsum(self.groups)[:-1]])
        rows = np.concatenate([np.arange(starts[g], starts[g] + self.groups[g]) for g in group_ids]) \
            if len(group_ids) else np.zeros(0, np.int64)
        return RankingData(self.features[rows], self.labels[rows], self.groups[group_ids])


def check_ranking_inputs(features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> None:
    """Raise ``ValueError`` naming the argument when shapes disagree."""
    if features.ndim != 2:
        raise ValueError(f"features: expected a 2-d array (n_pairs, n_features), got shape {features.shape}")
    if labels.ndim != 2 or labels.shape != (len(features), len(LABEL_COLUMNS)):
        raise ValueError(
            f"labels: expected shape ({len(features)}, {len(LABEL_COLUMNS)}) = (n_pairs, click/purchase/"
            f"category), got {labels.shape}"
        )
    groups = np.asarray(groups)
    if groups.ndim != 1 or (len(groups) and groups.min() < 1) or int(groups.sum()) != len(features):
        raise ValueError(
            f"groups: expected positive group sizes summing to {len(features)} pairs, got"
            f" {len(groups)} groups summing to {int(groups.sum()) if groups.ndim == 1 else 'n/a'}"
        )


def pad_groups(values: np.ndarray, groups: np.ndarray, fill: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped into a padded block ``(n_groups, max_size, ...)`` and its mask (bool)."""
    groups = np.asarray(groups, dtype=np.int64)
    size = int(groups.max()) if len(groups) else 0
    starts = np.concatenate([[0], np.cumsum(groups)[:-1]]).astype(np.int64)
    position = np.arange(len(values)) - np.repeat(starts, groups)
    group_of = np.repeat(np.arange(len(groups)), groups)
    out = np.full((len(groups), size) + values.shape[1:], fill, dtype=values.dtype)
    out[group_of, position] = values
    mask = np.zeros((len(groups), size), dtype=bool)
    mask[group_of, position] = True
    return out, mask


def grouped_ndcg(scores: np.ndarray, relevant: np.ndarray, groups: np.ndarray, k: int = 20) -> float:
    """Mean binary NDCG@k over the groups that hold at least one relevant pair.

    ``scores`` float (n_pairs,), ``relevant`` bool/int (n_pairs,), ``groups`` sizes. Ties are
    broken by pair order. The ideal list is the group's own relevant pairs.
    """
    padded, mask = pad_groups(np.asarray(scores, np.float64), groups, fill=-np.inf)
    rel, _ = pad_groups(np.asarray(relevant) > 0, groups, fill=False)
    keep = rel.any(axis=1)
    if not keep.any():
        return 0.0
    padded, rel = padded[keep], rel[keep]
    k = min(k, padded.shape[1])
    order = np.argsort(-padded, axis=1, kind="stable")[:, :k]
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (np.take_along_axis(rel, order, axis=1) * discount).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(rel.sum(axis=1), k) - 1]
    return float(np.mean(dcg / ideal))


def progress_bar(total: int, desc: str, show: bool | None) -> Callable[[int], None]:
    """A tqdm bar (``show`` None: only when stderr is a terminal); returns ``update(n)``."""
    import sys

    if show is None:
        show = sys.stderr.isatty()
    if not show:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="epoch", file=sys.stderr, leave=False)

    def update(n: int) -> None:
        if bar.disable:  # already closed
            return
        bar.update(min(n, total - bar.n))
        if bar.n >= total:
            bar.close()

    return update
