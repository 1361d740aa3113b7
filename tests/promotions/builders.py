"""A tiny shop whose right answers are obvious: runners, tea drinkers, wine lovers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
from coldbrew.data import catalog_from_frame, events_from_frame
from coldbrew.requests import HistoryEvent, Request

ITEMS = [
    ("s1", "trail running shoes", "Sport>Running", 50.0),
    ("s2", "road running shoes", "Sport>Running", 60.0),
    ("s3", "running socks", "Sport>Running", 5.0),
    ("t1", "green tea leaves", "Food>Tea", 3.0),
    ("t2", "oolong tea", "Food>Tea", 4.0),
    ("t3", "tea pot", "Food>Tea", 20.0),
    ("w1", "red wine", "Food>Wine", 10.0),
    ("w2", "white wine", "Food>Wine", 11.0),
    ("w3", "wine glasses", "Food>Wine", 8.0),
]
START = 1_700_000_000


def shop(n_users: int = 90, days: int = 1, seed: int = 0):
    """Three groups of shoppers, each buying within one group, spread over ``days`` days."""
    rng = np.random.default_rng(seed)
    groups = [["s1", "s2", "s3"], ["t1", "t2", "t3"], ["w1", "w2", "w3"]]
    rows = []
    for u in range(n_users):
        for j in range(4):
            ts = START + int(rng.integers(0, days * 86_400)) + j
            rows.append((f"u{u}", groups[u % 3][int(rng.integers(0, 3))], ts, "purchase"))
    frame = pd.DataFrame(ITEMS, columns=["item_id", "title", "category", "price"])
    catalog, _ = catalog_from_frame(frame)
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    return catalog, events


CONFIG = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))


def runner(user_id: str = "u0") -> Request:
    return Request("r", user_id, (HistoryEvent("s1", START + 100_000, "purchase"),))
