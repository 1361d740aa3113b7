"""Train/test splits of :class:`coldbrew.data.Events`: pure functions, no model involved.

Every split keeps the events' original order inside ``train`` and ``test``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from coldbrew.data import Events

__all__ = [
    "ColdItemSplit",
    "Split",
    "TemporalSplit",
    "cold_item_split",
    "cold_user_split",
    "leave_last_out",
    "temporal_split",
]


@dataclass(frozen=True)
class Split:
    """Events the model may be fit on (``train``) and events it is judged on (``test``)."""

    train: Events
    test: Events


@dataclass(frozen=True)
class TemporalSplit(Split):
    """A global time split: ``train`` holds the events before ``cutoff`` (unix seconds),
    ``test`` those at or after it."""

    cutoff: int


@dataclass(frozen=True)
class ColdItemSplit(Split):
    """An item cold-start split: ``test`` holds every event of the ``cold_items``
    (object array of IDs, sorted), ``train`` everything else."""

    cold_items: np.ndarray


def temporal_split(events: Events, quantile: float = 0.8) -> TemporalSplit:
    """Split at the ``quantile`` of the event timestamps.

    ``cutoff`` is that quantile (an actual event timestamp, ``method="lower"``); train is
    ``timestamps < cutoff`` and test the rest, so events sharing a timestamp (one basket) are
    never separated.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be strictly between 0 and 1, got {quantile!r}")
    if len(events) == 0:
        raise ValueError("temporal_split: no events to split")
    cutoff = int(np.quantile(events.timestamps, quantile, method="lower"))
    in_train = events.timestamps < cutoff
    return TemporalSplit(train=events.take(in_train), test=events.take(~in_train), cutoff=cutoff)


def leave_last_out(events: Events) -> Split:
    """Put each user's last event (latest timestamp; the later row on ties) in test.

    Users with a single event keep it in train: a user with nothing to train on is a new
    user, which this split does not try to measure.
    """
    n = len(events)
    if n == 0:
        raise ValueError("leave_last_out: no events to split")
    _, user_codes = np.unique(events.user_ids.astype(str), return_inverse=True)
    # Sorted by user, then time, then row: the last row of each user block is its last event.
    order = np.lexsort((np.arange(n), events.timestamps, user_codes))
    sorted_users = user_codes[order]
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = sorted_users[1:] != sorted_users[:-1]
    is_first = np.ones(n, dtype=bool)
    is_first[1:] = sorted_users[1:] != sorted_users[:-1]
    in_test = np.zeros(n, dtype=bool)
    in_test[order[is_last & ~is_first]] = True
    return Split(train=events.take(~in_test), test=events.take(in_test))


def cold_item_split(
    events: Events, item_ids: Sequence[str] | np.ndarray, share: float = 0.2, seed: int = 0
) -> ColdItemSplit:
    """Hold out ``share`` of ``item_ids`` (drawn with ``seed``) with all their events.

    ``item_ids`` is the item universe (usually the catalog's IDs; duplicates are ignored).
    Returns the split and the sorted cold item IDs; events on items outside ``item_ids`` stay
    in train.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be strictly between 0 and 1, got {share!r}")
    universe = np.unique(np.asarray([str(i) for i in item_ids], dtype=object))
    if len(universe) == 0:
        raise ValueError("cold_item_split: item_ids is empty")
    n_cold = int(round(share * len(universe)))
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(universe, size=n_cold, replace=False)) if n_cold else universe[:0]
    in_test = np.isin(events.item_ids.astype(str), cold.astype(str))
    return ColdItemSplit(
        train=events.take(~in_test), test=events.take(in_test), cold_items=cold.astype(object)
    )


def cold_user_split(events: Events, share: float = 0.2, seed: int = 0) -> Split:
    """Hold out ``share`` of the users (drawn with ``seed``) with all their events.

    The held-out users are new users of the fitted model: the protocol reveals their first
    ``n`` events (``temporal_segments(..., reveal=n)``) and asks for the rest, so the same
    users give the few-shot curve n = 0, 1, 3, 5 without a time cut.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be strictly between 0 and 1, got {share!r}")
    if len(events) == 0:
        raise ValueError("cold_user_split: no events to split")
    users = np.unique(events.user_ids.astype(str))
    n_cold = int(round(share * len(users)))
    rng = np.random.default_rng(seed)
    cold = rng.choice(users, size=n_cold, replace=False) if n_cold else users[:0]
    in_test = np.isin(events.user_ids.astype(str), cold)
    return Split(train=events.take(~in_test), test=events.take(in_test))
