"""Builders of tiny hand-made events and catalogs for the evaluation tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from coldbrew.data import Catalog, Events


def make_events(rows: Sequence[tuple]) -> Events:
    """Events from ``(user, item, timestamp[, event[, value]])`` tuples."""
    users, items, times, kinds, values = [], [], [], [], []
    for row in rows:
        users.append(str(row[0]))
        items.append(str(row[1]))
        times.append(int(row[2]))
        kinds.append(row[3] if len(row) > 3 else "purchase")
        values.append(float(row[4]) if len(row) > 4 and row[4] is not None else np.nan)
    return Events(
        np.asarray(users, dtype=object),
        np.asarray(items, dtype=object),
        np.asarray(times, dtype=np.int64),
        np.asarray(kinds, dtype=object),
        np.asarray(values, dtype=np.float64),
    )


def make_catalog(item_ids: Sequence[str], titles: Sequence[str] | None = None,
                 categories: Sequence[str] | None = None) -> Catalog:
    """A catalog with the given IDs (titles default to ``"item ID"``)."""
    n = len(item_ids)
    empty = np.full(n, "", dtype=object)
    return Catalog(
        item_ids=np.asarray(item_ids, dtype=object),
        titles=np.asarray(titles if titles is not None else [f"item {i}" for i in item_ids],
                          dtype=object),
        descriptions=empty.copy(),
        categories=np.asarray(categories, dtype=object) if categories is not None else empty.copy(),
        brands=empty.copy(),
        tags=empty.copy(),
        prices=np.full(n, np.nan),
        attributes=pd.DataFrame(index=range(n)),
    )
