"""The pipeline through its public interface, on small shops whose right answers are obvious."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
from coldbrew.data import catalog_from_frame, events_from_frame
from coldbrew.errors import DataError, NotFittedError, UnknownIdError
from coldbrew.models.bridge import RIDGE_GRID
from coldbrew.pipeline import Recommender
from coldbrew.requests import HistoryEvent, Request

TITLES = {
    "s1": "trail running shoes", "s2": "road running shoes", "s3": "running socks",
    "t1": "green tea leaves", "t2": "oolong tea", "t3": "tea pot",
    "w1": "red wine", "w2": "white wine", "w3": "wine glasses",
}


def _shop(n_users: int = 90, seed: int = 0):
    """Three groups of shoppers, each buying within one group of products."""
    rng = np.random.default_rng(seed)
    groups = [["s1", "s2", "s3"], ["t1", "t2", "t3"], ["w1", "w2", "w3"]]
    rows = []
    for u in range(n_users):
        items = groups[u % 3]
        for j in range(4):
            rows.append((f"u{u}", items[int(rng.integers(0, 3))], 1_700_000_000 + u * 1000 + j, "purchase"))
    catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": list(TITLES), "title": list(TITLES.values())}))
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    return catalog, events


@pytest.fixture(scope="module")
def model():
    catalog, events = _shop()
    return Recommender(FitConfig(blend=BlendConfig(tune=False))).fit(catalog, events, progress=False)


def _hist(*items: str, event: str = "purchase") -> tuple[HistoryEvent, ...]:
    return tuple(HistoryEvent(i, 1_700_100_000 + n, event) for n, i in enumerate(items))


def test_history_drives_the_list_and_is_never_returned(model):
    rec = model.recommend([Request("r", "u0", _hist("s1", "s2"))], k=3)[0]
    assert rec.items[0] == "s3"
    assert not {"s1", "s2"} & set(rec.items)
    assert "running" in rec.reasons[0] or "bought" in rec.reasons[0]


def test_known_and_unknown_users_are_treated_alike_by_history(model):
    a, b = model.recommend([Request("a", "u1", _hist("t1")), Request("b", "never-seen", _hist("t1"))], k=2)
    assert a.items == b.items and a.items[0] in {"t2", "t3"}


def test_text_only_user_in_two_languages(model):
    en, zh = model.recommend([Request("en", "x", text="I love wine"), Request("zh", "y", text="我喜欢喝茶")], k=3)
    assert en.items[0].startswith("w") and "wine" in en.reasons[0]
    assert zh.items[0].startswith("t")


def test_empty_request_falls_back_to_popularity(model):
    rec = model.recommend([Request("e", "nobody")], k=9)[0]
    assert len(rec.items) == 9
    assert rec.reasons[0].startswith("popular")


def test_candidates_and_exclude_are_respected(model):
    rec = model.recommend([Request("c", "u", _hist("s1"), candidates=("s2", "t1", "zz"), exclude=("s2",))], k=5)[0]
    assert rec.items == ["t1"]


def test_add_items_makes_new_products_recommendable_without_retraining(model):
    catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": ["s9", "w9"], "title": ["carbon running shoes", "sparkling wine"]}))
    als_before = model.als_.item_factors_.copy()
    fitted = Recommender(FitConfig(blend=BlendConfig(tune=False))).fit(*_shop(), progress=False)
    assert fitted.add_items(catalog) == 2
    assert fitted.add_items(catalog) == 0  # known IDs are left alone
    np.testing.assert_array_equal(model.als_.item_factors_, als_before)
    runner, wine = fitted.recommend([
        Request("r", "u", _hist("s1", "s2"), candidates=("s9", "w9")),
        Request("w", "v", _hist("w1", "w2"), candidates=("s9", "w9")),
    ], k=1)
    assert runner.items == ["s9"] and wine.items == ["w9"]
    assert runner.reasons[0]
    # The new product also competes in the unrestricted list.
    full = fitted.recommend([Request("f", "u", _hist("s1", "s2", "s3"))], k=3)[0]
    assert "s9" in full.items


def test_similar_and_onboard(model):
    sim = model.similar("w1", k=2)
    assert set(sim.items) <= {"w2", "w3"} and "w1" not in sim.items
    assert model.onboard("oolong and green tea", k=1).items[0] in {"t1", "t2"}
    with pytest.raises(UnknownIdError, match="nope"):
        model.similar("nope")
    with pytest.raises(DataError):
        model.onboard("  ")


def test_batches_give_the_same_answers_as_single_requests(model):
    reqs = [Request(str(i), "u", _hist(item)) for i, item in enumerate(["s1", "t2", "w3", "s2"] * 3)]
    together = model.recommend(reqs, k=4)
    alone = [model.recommend([r], k=4)[0] for r in reqs]
    assert [r.items for r in together] == [r.items for r in alone]


def test_unfitted_model_and_bad_k():
    with pytest.raises(NotFittedError):
        Recommender().recommend([Request("r", "u")], k=3)
    catalog, events = _shop()
    model = Recommender(FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))).fit(catalog, events, progress=False)
    with pytest.raises(ValueError):
        model.recommend([Request("r", "u")], k=0)


def test_events_on_unknown_items_are_counted_not_fatal():
    catalog, events = _shop()
    extra, _ = events_from_frame(pd.DataFrame({"user_id": ["u0"], "item_id": ["ghost"], "timestamp": [1_700_000_000]}))
    from coldbrew.data import Events

    model = Recommender(FitConfig(blend=BlendConfig(tune=False))).fit(catalog, Events.concat([events, extra]), progress=False)
    assert model.fit_report_["unknown_item_events"] == 1
    # the bridge's ridge penalty is chosen by leave-one-out ("auto") and reported
    assert model.config.bridge.ridge == "auto" and model.fit_report_["bridge_ridge"] in RIDGE_GRID


def test_no_matching_events_is_a_clear_error():
    catalog, _ = _shop()
    events, _ = events_from_frame(pd.DataFrame({"user_id": ["u"], "item_id": ["ghost"], "timestamp": [1]}))
    with pytest.raises(DataError, match="item_id"):
        Recommender(FitConfig(blend=BlendConfig(tune=False))).fit(catalog, events, progress=False)


def test_tuning_runs_and_records_its_scores():
    catalog, events = _shop(n_users=600)
    model = Recommender(FitConfig()).fit(catalog, events, progress=False)
    assert model.tuning_ and all(scores for scores in model.tuning_.values())
    assert model.recommend([Request("r", "u", _hist("t1"))], k=1)[0].items[0] in {"t2", "t3"}


def test_tune_new_items_false_keeps_the_new_item_weights_and_nothing_else_moves():
    """The hold-out's new-item weights are not applied anywhere when tune_new_items is false."""
    from coldbrew.data import Events

    catalog, events = _shop(n_users=600)
    late = ["s4", "t4", "w4"]
    extra_catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": late, "title": ["trail running vest", "matcha tea", "rose wine"]}))
    from coldbrew.data.catalog import concat_catalogs as _concat_catalogs

    catalog = _concat_catalogs(catalog, extra_catalog)
    end = int(events.timestamps.max())
    rows = [(f"u{u}", late[(u // 3) % 3], end + 10 + u, "purchase") for u in range(0, 600, 3)]
    late_events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    events = Events.concat([events, late_events])
    fixed = BlendConfig(tune_new_items=False, new_item_content=3.0, new_item_cf=0.7, new_item_popularity=0.3)
    kept = Recommender(FitConfig(blend=fixed)).fit(catalog, events, progress=False)
    tuned = Recommender(FitConfig()).fit(catalog, events, progress=False)
    label = next(iter(kept.tuning_))
    assert "new_items" in kept.tuning_[label]  # the hold-out did have new items to score
    b, t = kept.config.blend, tuned.config.blend
    assert (b.new_item_content, b.new_item_cf, b.new_item_popularity) == (3.0, 0.7, 0.3)
    assert (b.shelf_content, b.shelf_cf, b.shelf_popularity) == (None, None, None)
    # too few products for a random cold start in the hold-out: shelves are tuned on arrivals alone
    assert "shelves: arrivals + random cold items" in tuned.tuning_ and t.shelf_content is not None
    assert [getattr(b, f"warm_{s}") for s in ("content", "cooccurrence", "cf", "popularity")] == \
        [getattr(t, f"warm_{s}") for s in ("content", "cooccurrence", "cf", "popularity")]


def test_tuned_half_lives_follow_the_pace_of_the_shop():
    """The same shop, ten times slower: the tuned time scales are ten times longer."""
    from coldbrew.data.weighting import recent_span_days
    from coldbrew.models.tuning import _TREND_SHARE

    catalog, events = _shop(n_users=600)
    chosen = []
    for stretch in (1, 10):
        t0 = int(events.timestamps.min())
        slow = events_from_frame(pd.DataFrame({
            "user_id": events.user_ids, "item_id": events.item_ids, "event": events.events,
            "timestamp": t0 + (events.timestamps.astype(np.int64) - t0) * stretch * 3600,
        }))[0]
        model = Recommender(FitConfig()).fit(catalog, slow, progress=False)
        assert model.tuning_, "the shop is large enough to tune"
        weighting = model.config.weighting
        assert weighting.trend_half_life_days == pytest.approx(
            round(recent_span_days(slow.timestamps, _TREND_SHARE), 1))
        assert any(f"half_life_days={weighting.half_life_days:g} " in label for label in model.tuning_)
        chosen.append((weighting.half_life_days, weighting.trend_half_life_days))
    (decay, trend), (slow_decay, slow_trend) = chosen
    assert slow_trend == pytest.approx(10 * trend, rel=0.02)
    assert slow_decay == pytest.approx(10 * decay, rel=0.02)


@pytest.mark.parametrize("index", ["exact", "hnsw", "ivf"])
def test_retrieve_then_rank_path_agrees_with_exact_scoring(model, index):
    from dataclasses import replace

    from coldbrew.config import RetrievalConfig

    large = Recommender(replace(model.config, retrieval=RetrievalConfig(dense_limit=0, per_source=4, index=index)))
    catalog, events = _shop()
    large.fit(catalog, events, progress=False)
    reqs = [
        Request("a", "u", _hist("s1", "s2")), Request("b", "v", _hist("w1")),
        Request("c", "w", text="green tea"), Request("d", "x"),
        Request("e", "y", _hist("s1"), candidates=("t1", "w2"), exclude=("w2",)),
    ]
    retrieved = large.recommend(reqs, k=2)
    exact = model.recommend(reqs, k=2)
    assert [r.items[0] for r in retrieved] == [r.items[0] for r in exact]
    assert retrieved[4].items == ["t1"]
    assert all(r.reasons for r in retrieved)


def test_retrieval_indexes_grow_with_added_items_instead_of_being_rebuilt():
    from coldbrew.config import RetrievalConfig

    config = FitConfig(blend=BlendConfig(tune=False), retrieval=RetrievalConfig(dense_limit=0, per_source=3, index="exact"))
    model = Recommender(config).fit(*_shop(), progress=False)
    model.recommend([Request("a", "u", _hist("s1"))], k=2)
    index = model._indexes["content"]
    assert len(index) == 9
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["s9"], "title": ["carbon running shoes"]}))
    model.add_items(new)
    rec = model.recommend([Request("b", "u", _hist("s1", "s2", "s3"), text="running shoes")], k=1)[0]
    assert model._indexes["content"] is index and len(index) == 10
    assert rec.items == ["s9"]


def test_ivf_indexes_take_added_items_without_a_rebuild():
    from coldbrew.config import RetrievalConfig
    from coldbrew.retrieval import FaissIndex, NormOrderedIndex

    config = FitConfig(blend=BlendConfig(tune=False),
                       retrieval=RetrievalConfig(dense_limit=0, per_source=3, exact_below=0))
    model = Recommender(config).fit(*_shop(), progress=False)
    model.recommend([Request("a", "u", _hist("s1"))], k=2)
    inner = {name: model._indexes[name].inner for name in ("cf", "content")}
    assert all(len(i) == 9 for i in inner.values())
    # text: faiss IVF; short CF factors: exact, norm-ordered search
    assert isinstance(inner["content"], FaissIndex) and inner["content"].kind == "ivf"
    assert isinstance(inner["cf"], NormOrderedIndex)
    raw = {"content": inner["content"].faiss_index}
    popular = model._popular(3)
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": ["s9"], "title": ["carbon running shoes"]}))
    model.add_items(new)
    rec = model.recommend([Request("b", "u", _hist("s1", "s2", "s3"), text="running shoes")], k=1)[0]
    for name in ("cf", "content"):
        assert model._indexes[name].inner is inner[name] and len(inner[name]) == 10
    assert inner["content"].faiss_index is raw["content"]
    assert rec.items == ["s9"]
    # the cached statistics were extended with the new item, and agree with a full recount
    np.testing.assert_array_equal(model._popular(3), np.argsort(-model.popularity_, kind="stable")[:3])
    assert len(popular) == 3
    mean, cov = model._moments("content")
    vectors = model.text_vectors_.astype(np.float64)
    np.testing.assert_allclose(mean, vectors.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(cov, np.cov(vectors, rowvar=False, bias=True), atol=1e-12)


# ---------------------------------------------------------------- new products, nearest history item
_TEA_SHOP = {"g": "green tea leaves", "o": "oolong tea", "j": "jasmine tea", "b": "black tea bags",
             "m": "red enamel coffee mug", "s1": "trail running shoes", "s2": "road running shoes",
             "s3": "running socks", "w1": "red wine", "w2": "white wine"}
_TEA_NEW = {"m2": "blue enamel coffee mug", "wt": "white tea"}


def _tea_shop():
    rng = np.random.default_rng(0)
    groups = [["g", "o", "j", "b", "m"], ["s1", "s2", "s3"], ["w1", "w2"]]
    rows = [(f"u{u}", groups[u % 3][int(rng.integers(0, len(groups[u % 3])))], 1_700_000_000 + u * 100 + j, "purchase")
            for u in range(90) for j in range(4)]
    catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": list(_TEA_SHOP), "title": list(_TEA_SHOP.values())}))
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    new, _ = catalog_from_frame(pd.DataFrame({"item_id": list(_TEA_NEW), "title": list(_TEA_NEW.values())}))
    return catalog, events, new


@pytest.mark.parametrize("nearest", [True, False])
def test_a_new_product_is_matched_to_the_nearest_history_item_not_the_average(nearest):
    """Four teas and one red mug bought: the new blue mug is the red mug's sibling, the new
    white tea is merely close to the average of the history. Content decides alone here."""
    catalog, events, new = _tea_shop()
    blend = BlendConfig(tune=False, new_item_content=1.0, new_item_cf=0.0, new_item_popularity=0.0,
                        new_item_nearest=nearest)
    model = Recommender(FitConfig(blend=blend)).fit(catalog, events, progress=False)
    model.add_items(new)
    v = model.text_vectors_
    hist_idx, new_idx = model.item_map_.lookup(["g", "o", "j", "b", "m"]), model.item_map_.lookup(["m2", "wt"])
    cos = v[hist_idx] @ v[new_idx].T
    profile = v[hist_idx].sum(axis=0)
    # the fixture holds what the test is about: nearest and average disagree
    assert cos.max(axis=0).argmax() == 0 and (profile @ v[new_idx].T).argmax() == 1
    rec = model.recommend([Request("r", "x", _hist("g", "o", "j", "b", "m"), candidates=tuple(_TEA_NEW))], k=2)[0]
    assert rec.items == (["m2", "wt"] if nearest else ["wt", "m2"])
    assert rec.reasons[0].startswith("new arrival like")
    assert not any(r.startswith("often bought with") for r in rec.reasons)  # nobody bought a new product yet


def test_new_products_score_the_same_added_at_once_or_one_by_one_and_on_both_scoring_paths():
    from dataclasses import replace

    from coldbrew.config import RetrievalConfig

    catalog, events, new = _tea_shop()
    config = FitConfig(blend=BlendConfig(tune=False, new_item_nearest=True))
    at_once = Recommender(config).fit(catalog, events, progress=False)
    at_once.add_items(new)
    one_by_one = Recommender(config).fit(catalog, events, progress=False)
    req = Request("r", "x", _hist("g", "m"), candidates=tuple(_TEA_NEW))
    for item in _TEA_NEW:  # each recommend builds or extends the new items' neighbour lists
        one_by_one.add_items(new.subset(np.array([new.item_ids.tolist().index(item)])))
        one_by_one.recommend([req], k=1)
    assert one_by_one._neighbors["cold"].tolist() == one_by_one.item_map_.lookup(list(_TEA_NEW)).tolist()
    a, b = at_once.recommend([req], k=2)[0], one_by_one.recommend([req], k=2)[0]
    assert a.items == b.items
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    large = Recommender(replace(config, retrieval=RetrievalConfig(dense_limit=0, per_source=4, index="exact")))
    large.fit(catalog, events, progress=False)
    large.add_items(new)
    c = large.recommend([req], k=2)[0]
    assert c.items == a.items
    mixed = Request("s", "y", _hist("g", "o", "m"))
    idx = at_once.item_map_.lookup(list(_TEA_NEW) + ["j", "b"])[None, :]
    np.testing.assert_allclose(at_once.score_items([mixed], idx), large.score_items([mixed], idx), rtol=1e-5, atol=1e-6)


def test_shelf_weights_rank_new_products_only_where_every_candidate_is_new():
    """``shelf_*`` weights order a shelf of new products; beside other products new items keep
    the ``new_item_*`` weights, on every scoring path."""
    from dataclasses import replace

    from coldbrew.config import RetrievalConfig

    catalog, events, new = _tea_shop()
    # listed: popularity alone (the same order for everyone); shelf: text alone
    listed = dict(tune=False, new_item_content=0.0, new_item_cf=0.0, new_item_popularity=1.0, new_item_nearest=True)
    configs = [FitConfig(blend=BlendConfig(**listed)),
               FitConfig(blend=BlendConfig(**listed, shelf_content=1.0, shelf_cf=0.0, shelf_popularity=0.0))]
    configs += [replace(c, retrieval=RetrievalConfig(dense_limit=0, per_source=4, index="exact")) for c in configs]
    plain, shelved, plain_large, shelved_large = (Recommender(c).fit(catalog, events, progress=False) for c in configs)
    for m in (plain, shelved, plain_large, shelved_large):
        m.add_items(new)
    hist = _hist("g", "o", "j", "b", "m")
    shelf = Request("s", "x", hist, candidates=tuple(_TEA_NEW))
    wine = Request("w", "y", _hist("w1", "w2"), candidates=tuple(_TEA_NEW))
    # on the shelf the text decides: the blue mug is the sibling of the red mug bought, and the
    # white tea is nearer to white wine
    for m in (shelved, shelved_large):
        assert [r.items for r in m.recommend([shelf, wine], k=2)] == [["m2", "wt"], ["wt", "m2"]]
    new_idx = shelved.item_map_.lookup(list(_TEA_NEW))[None, :]
    assert shelved.score_items([shelf], new_idx)[0].argmax() == 0
    assert shelved.score_items([wine], new_idx)[0].argmax() == 1
    # without shelf weights a shelf is ranked by the new-item weights: popularity, one order for all
    assert len({tuple(r.items) for r in plain.recommend([shelf, wine], k=2)}) == 1
    np.testing.assert_allclose(plain.recommend([shelf], k=2)[0].scores,
                               np.sort(plain.score_items([shelf], new_idx)[0])[::-1], rtol=1e-5, atol=1e-6)
    # beside products with events, new products keep the new-item weights: shelf weights change nothing
    for req in (Request("m", "x", hist, candidates=tuple(_TEA_NEW) + ("w1",)), Request("e", "x", hist)):
        for a, b in ((plain, shelved), (plain_large, shelved_large)):
            ra, rb = a.recommend([req], k=12)[0], b.recommend([req], k=12)[0]
            assert ra.items == rb.items and "m2" in ra.items
            np.testing.assert_allclose(ra.scores, rb.scores, rtol=1e-5, atol=1e-6)
    mixed_idx = shelved.item_map_.lookup(list(_TEA_NEW) + ["w1"])[None, :]
    np.testing.assert_allclose(plain.score_items([shelf], mixed_idx), shelved.score_items([shelf], mixed_idx),
                               rtol=1e-5, atol=1e-6)


def test_tuning_chooses_shelf_weights_beside_the_ordinary_new_item_weights():
    """With enough products for a random cold start in the hold-out, fit tunes new products
    twice: in ordinary lists (plain content) and on shelves (nearest history item)."""
    rng = np.random.default_rng(1)
    colours = ["red", "blue", "green", "black", "white", "pink"]
    groups = {"mug": "enamel coffee mug", "tea": "loose leaf tea", "shoe": "trail running shoe",
              "wine": "bottle of wine"}
    titles = {f"{g}{c}": f"{colour} {name}" for g, name in groups.items() for c, colour in enumerate(colours)}
    ids = list(titles)
    rows = []
    for u in range(400):
        g = list(groups)[u % 4]
        for j in range(5):
            rows.append((f"u{u}", f"{g}{int(rng.integers(0, 6))}", 1_700_000_000 + u * 1000 + j, "purchase"))
    catalog, _ = catalog_from_frame(pd.DataFrame({"item_id": ids, "title": [titles[i] for i in ids]}))
    events, _ = events_from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"]))
    model = Recommender(FitConfig()).fit(catalog, events, progress=False)
    b = model.config.blend
    assert {"new items: arrivals + random cold items", "shelves: arrivals + random cold items"} <= set(model.tuning_)
    assert None not in (b.shelf_content, b.shelf_cf, b.shelf_popularity)
    assert b.shelf_content >= 0.25 and b.new_item_content >= 0.25  # the content floor holds on both
    off = Recommender(FitConfig.from_dict({"blend": {"new_item_nearest": False}})).fit(catalog, events, progress=False)
    assert "shelves: arrivals + random cold items" not in off.tuning_ and off.config.blend.shelf_content is None


def test_long_request_lists_score_the_same_on_one_or_several_threads():
    """More than one chunk of requests is spread over ``[compute] recommend_threads``
    threads (with the learned ranker on): the same items, scores and reasons as one thread;
    and the same items and reasons as the requests scored in a batch of their own (scores
    within float32 rounding: a matrix product of 10 rows rounds unlike one of 512)."""
    import dataclasses

    from tests.ranking.test_stage import _shop as ranked_shop
    from tests.test_answers_golden import _config, _requests

    catalog, events = ranked_shop()
    model = Recommender(_config(50_000)).fit(catalog, events, progress=False)
    assert model.reranker_ is not None
    base = _requests()
    many = [dataclasses.replace(r, request_id=f"{r.request_id}-{j}") for j in range(110) for r in base]
    answers = {}
    for threads in (1, 3):
        model.config = dataclasses.replace(
            model.config, compute=dataclasses.replace(model.config.compute, recommend_threads=threads))
        answers[threads] = [(r.request_id, r.items, r.scores, r.reasons) for r in model.recommend(many, k=8)]
    assert len(answers[3]) == 1_100 and answers[1] == answers[3]
    alone = model.recommend(base, k=8)
    for j in (0, 109):
        for got, want in zip(answers[3][j * len(base) : (j + 1) * len(base)], alone):
            assert got[0] == f"{want.request_id}-{j}" and got[1] == want.items and got[3] == want.reasons
            np.testing.assert_allclose(got[2], want.scores, rtol=1e-5, atol=1e-5)
