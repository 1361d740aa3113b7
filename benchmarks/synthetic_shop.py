"""Synthetic shops of any size for the scaling benchmarks (speed and memory only, never quality).

    python benchmarks/synthetic_shop.py --items 100000 --events 1000000 --out /tmp/shop100k

How a shop is made (seeded, deterministic, numpy only, about 1 s per million events):

* **Catalog.** ``n_items`` products in 400 leaf categories (``Dept > Group > Leaf``). A title is
  ``"<adjective> <material> <leaf noun> <model code>"`` drawn from small English vocabularies
  (so titles are varied but not unique); a ``price`` is log-normal per category.
* **Events.** ``n_events`` events of ``n_users`` users (default ``n_events / 20``) over one
  year. Item popularity is Zipf (exponent ``zipf``, default 1.1) over a random permutation of
  the catalog, and each user prefers 1-3 categories: 70 % of their events are Zipf draws
  inside a preferred category, 30 % from the whole catalog. User activity is Zipf too (a
  long tail of one-event users). Event types: 70 % view, 20 % cart, 10 % purchase.

The file layout is the one ``coldbrew fit`` reads: ``items.parquet`` and ``events.parquet``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["make_catalog", "make_events", "write_shop"]

_ADJECTIVES = (
    "red blue green black white vintage modern classic compact deluxe mini large soft warm "
    "bright rustic elegant sporty organic handmade premium travel kids wooden silver golden"
).split()
_MATERIALS = "cotton leather ceramic steel glass bamboo wool linen oak plastic silk copper".split()
_NOUNS = (
    "mug lamp candle jacket shoe bag bottle chair table pillow blanket scarf watch wallet "
    "teapot notebook pen basket frame clock vase towel plate bowl hat glove sock backpack "
    "speaker headphones charger kettle pan knife spoon brush mirror rug curtain tent"
).split()
_DEPARTMENTS = "Home Kitchen Fashion Outdoor Electronics Garden Toys Beauty Office Sports".split()
_N_CATEGORIES = 400


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return w / w.sum()


def make_catalog(n_items: int, seed: int = 0) -> pd.DataFrame:
    """A catalog frame with ``item_id``, ``title``, ``category`` and ``price`` (``n_items`` rows)."""
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    rng = np.random.default_rng(seed)
    cat_names = np.array([
        f"{_DEPARTMENTS[c % len(_DEPARTMENTS)]} > Group {c % 40} > {_NOUNS[c % len(_NOUNS)]}s {c}"
        for c in range(_N_CATEGORIES)
    ])
    category = rng.integers(0, _N_CATEGORIES, n_items)
    noun = np.array(_NOUNS)[category % len(_NOUNS)]
    adjective = np.array(_ADJECTIVES)[rng.integers(0, len(_ADJECTIVES), n_items)]
    material = np.array(_MATERIALS)[rng.integers(0, len(_MATERIALS), n_items)]
    code = rng.integers(100, 10_000, n_items).astype(str)
    titles = pd.Series(adjective).str.cat([pd.Series(material), pd.Series(noun), pd.Series(code)], sep=" ")
    base_price = np.exp(rng.normal(3.0, 0.8, _N_CATEGORIES))
    price = np.round(base_price[category] * np.exp(rng.normal(0.0, 0.3, n_items)), 2)
    return pd.DataFrame({
        "item_id": np.char.add("P", np.arange(n_items).astype(str)),
        "title": titles.to_numpy(),
        "category": cat_names[category],
        "price": price,
    })


def make_events(catalog: pd.DataFrame, n_events: int, n_users: int | None = None, *,
                zipf: float = 1.1, seed: int = 0) -> pd.DataFrame:
    """An events frame with ``user_id``, ``item_id``, ``timestamp`` (unix s) and ``event``."""
    if n_events < 1:
        raise ValueError(f"n_events must be at least 1, got {n_events}")
    rng = np.random.default_rng(seed + 1)
    n_items = len(catalog)
    n_users = max(1, n_events // 20) if n_users is None else n_users
    categories, category = np.unique(catalog["category"].to_numpy(), return_inverse=True)
    # Global popularity: Zipf over a random permutation of the catalog.
    rank_of = rng.permutation(n_items)
    popularity = _zipf_weights(n_items, zipf)[rank_of]
    # Users: Zipf activity (every user gets at least one event), 1-3 preferred categories.
    activity = rng.choice(n_users, size=n_events - n_users, p=_zipf_weights(n_users, 0.8)) if n_events > n_users else np.zeros(0, np.int64)
    users = np.concatenate([np.arange(min(n_users, n_events)), activity])
    rng.shuffle(users)
    preferred = rng.integers(0, len(categories), (n_users, 3))
    n_preferred = rng.integers(1, 4, n_users)
    slot = (rng.random(n_events) * n_preferred[users]).astype(np.int64)
    user_category = preferred[users, slot]
    in_category = rng.random(n_events) < 0.7
    items = np.empty(n_events, dtype=np.int64)
    global_cdf = np.cumsum(popularity)
    out = ~in_category
    items[out] = np.minimum(np.searchsorted(global_cdf, rng.random(int(out.sum())) * global_cdf[-1]), n_items - 1)
    # Inside a category: draw by the same popularity restricted to the category's items.
    order = np.argsort(category, kind="stable")
    bounds = np.searchsorted(category[order], np.arange(len(categories) + 1))
    cdf_in = np.empty(n_items, dtype=np.float64)
    for c in range(len(categories)):
        lo, hi = bounds[c], bounds[c + 1]
        if hi > lo:
            cdf_in[lo:hi] = np.cumsum(popularity[order[lo:hi]])
    for c in np.unique(user_category[in_category]):
        rows = np.flatnonzero(in_category & (user_category == c))
        lo, hi = bounds[c], bounds[c + 1]
        if hi == lo:
            items[rows] = rng.integers(0, n_items, len(rows))
            continue
        cdf = cdf_in[lo:hi]
        pick = np.minimum(np.searchsorted(cdf, rng.random(len(rows)) * cdf[-1]), hi - lo - 1)
        items[rows] = order[lo + pick]
    start = 1_672_531_200  # 2023-01-01
    timestamps = np.sort(start + rng.integers(0, 365 * 86_400, n_events))
    kinds = np.array(["view", "cart", "purchase"])[np.searchsorted([0.7, 0.9], rng.random(n_events))]
    return pd.DataFrame({
        "user_id": np.char.add("U", users.astype(str)),
        "item_id": catalog["item_id"].to_numpy()[items],
        "timestamp": timestamps,
        "event": kinds,
    })


def write_shop(out: str | Path, n_items: int, n_events: int, seed: int = 0) -> tuple[Path, Path]:
    """Write ``items.parquet`` and ``events.parquet`` under ``out``; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = make_catalog(n_items, seed)
    events = make_events(catalog, n_events, seed=seed)
    items_path, events_path = out / "items.parquet", out / "events.parquet"
    catalog.to_parquet(items_path, index=False)
    events.to_parquet(events_path, index=False)
    return items_path, events_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    items, events = write_shop(args.out, args.items, args.events, args.seed)
    print(f"wrote {items} and {events}")


if __name__ == "__main__":
    main()
