"""Real data: search on UCI Online Retail (titles only, English, 4,635 products).

A temporal split of the last four months; the model is fitted on the earlier 80 % with the
tiny hashing encoder (fast); queries are the full titles of products bought after the cutoff.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
from coldbrew.data import load_catalog, load_events
from coldbrew.evaluation.metrics import ndcg_at_k
from coldbrew.evaluation.protocol import fit_catalog
from coldbrew.evaluation.splits import temporal_split
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent
from coldbrew.search import SearchIndex


@pytest.mark.slow
def test_titles_find_their_products_and_history_helps_find_the_rest_of_the_basket(shared_data: Path) -> None:
    folder = shared_data / "uci_online_retail"
    catalog, _ = load_catalog(folder / "items.csv.gz")
    events, _ = load_events(folder / "interactions.csv.gz")
    events = events.take(events.timestamps >= events.timestamps.max() - 120 * 86_400)
    split = temporal_split(events, 0.8)
    seen, rest = fit_catalog(split, catalog)
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))
    model = Recommender(config).fit(seen, split.train, progress=False)
    model.add_items(rest)
    index = SearchIndex.build(model)
    assert len(index) == len(catalog)

    # baskets after the cutoff: one user's purchases at one timestamp
    test = split.test.take(split.test.events == "purchase")
    baskets: dict[tuple[str, int], list[str]] = {}
    for user, item, ts in zip(test.user_ids, test.item_ids, test.timestamps):
        if item in model.item_map_:
            baskets.setdefault((str(user), int(ts)), []).append(str(item))
    rng = np.random.default_rng(0)
    keys = [key for key, items in baskets.items() if len(set(items)) >= 2]
    keys = [keys[i] for i in rng.permutation(len(keys))[:300]]
    titles = dict(zip(model.catalog_.item_ids, model.catalog_.titles))
    sources = [sorted(set(baskets[key]))[0] for key in keys]
    queries = [str(titles[s]) for s in sources]
    relevant = [set(baskets[key]) - {s} for key, s in zip(keys, sources)]
    train = split.train
    histories = []
    for user, ts in keys:
        mask = (train.user_ids.astype(str) == user) & (train.timestamps < ts)
        histories.append(tuple(HistoryEvent(str(i), int(t), str(e)) for i, t, e in
                               zip(train.item_ids[mask][-200:], train.timestamps[mask][-200:], train.events[mask][-200:])))

    # a full title finds its own product first (ties between identical titles aside)
    lexical = index.search(queries, 11, "lexical")
    first = [hits[0].item_id == s or titles[hits[0].item_id] == titles[s] for hits, s in zip(lexical, sources)]
    assert np.mean(first) > 0.9, np.mean(first)

    def ndcg(results) -> float:
        lists = [[h.item_id for h in hits if h.item_id != s][:10] for hits, s in zip(results, sources)]
        return ndcg_at_k(lists, relevant, 10)

    plain = ndcg(index.search(queries, 11, "hybrid"))
    personal = ndcg(index.search(queries, 11, "hybrid", histories))
    assert 0.0 < plain < personal, (plain, personal)
    assert personal > 1.1 * plain, (plain, personal)
