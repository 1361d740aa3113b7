"""Baselines: one contract run against every model, then a few model-specific checks."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable

import numpy as np
import pytest

from coldbrew.errors import NotFittedError, UnknownIdError
from coldbrew.evaluation.baselines import (
    ALSRecommender,
    ItemKNNRecommender,
    LightFMRecommender,
    PopularityRecommender,
    TextSimilarityRecommender,
)
from coldbrew.requests import HistoryEvent, Request

from .builders import make_catalog, make_events


class HashingEncoder:
    """A tiny stand-in text encoder: hashed bag of words, L2-normalised float32 (n, 64)."""

    dim = 64

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


# Two clusters: kitchen items k0..k9 and garden items g0..g9; users buy in their own cluster.
KITCHEN = [f"k{n}" for n in range(10)]
GARDEN = [f"g{n}" for n in range(10)]
TITLES = {**{i: f"KITCHEN MUG {i}" for i in KITCHEN}, **{i: f"GARDEN HOSE {i}" for i in GARDEN}}
CATALOG = make_catalog(KITCHEN + GARDEN, [TITLES[i] for i in KITCHEN + GARDEN],
                       ["home|kitchen"] * 10 + ["outdoor|garden"] * 10)
NEW_CATALOG = make_catalog(["k_new", "g_new"], ["KITCHEN MUG NEW", "GARDEN HOSE NEW"],
                           ["home|kitchen", "outdoor|garden"])


def _events():
    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        pool = KITCHEN if u % 2 == 0 else GARDEN
        for t, item in enumerate(rng.choice(pool, size=6, replace=False)):
            rows.append((f"u{u}", str(item), 100 * u + t))
    rows.append(("u0", "g0", 5000, "cancel", -1))  # a cancel carries no signal
    return make_events(rows)


EVENTS = _events()


def _history(items: list[str], start: int = 10_000) -> tuple[HistoryEvent, ...]:
    return tuple(HistoryEvent(item, start + t, "purchase", 1.0) for t, item in enumerate(items))


def _lightfm() -> LightFMRecommender:
    pytest.importorskip("lightfm", reason="lightfm is not installed")
    return LightFMRecommender(no_components=8, epochs=10, threads=1)


FACTORIES: dict[str, Callable[[], object]] = {
    "popularity": PopularityRecommender,
    "itemknn": lambda: ItemKNNRecommender(neighbors=5),
    "als": lambda: ALSRecommender(factors=8, iterations=5, alpha=20.0, threads=1),
    "lightfm": _lightfm,
    "text": lambda: TextSimilarityRecommender(HashingEncoder()),
}


@pytest.fixture(params=list(FACTORIES), scope="module")
def fitted(request):
    model = FACTORIES[request.param]()
    assert model.fit(CATALOG, EVENTS) is model
    model.add_items(NEW_CATALOG)
    return model


# --- the contract every baseline keeps ---------------------------------------------------


def test_answers_keep_request_order_and_length(fitted) -> None:
    requests = [
        Request("r1", "u0", _history(["k0", "k1"])),
        Request("r2", "stranger", _history(["g3"])),
        Request("r3", "nobody"),
    ]
    recs = fitted.recommend(requests, 5)
    assert [r.request_id for r in recs] == ["r1", "r2", "r3"]
    assert [r.user_id for r in recs] == ["u0", "stranger", "nobody"]
    for rec in recs:
        assert len(rec.items) == 5 == len(rec.scores) == len(rec.reasons)
        assert len(set(rec.items)) == 5
        assert all(a >= b for a, b in zip(rec.scores, rec.scores[1:]))


def test_never_returns_history_or_excluded_items(fitted) -> None:
    history = ["k0", "k1", "k2", "g0"]
    request = Request("r", "u0", _history(history) + (HistoryEvent("g1", 1, "cancel", -1.0),),
                      exclude=("k3", "k4"))
    (rec,) = fitted.recommend([request], 22)
    assert not set(rec.items) & {"k0", "k1", "k2", "g0", "g1", "k3", "k4"}
    assert len(rec.items) == 22 - 7  # everything else is still ranked


def test_candidates_restrict_the_ranking(fitted) -> None:
    request = Request("r", "u2", _history(["k0"]), candidates=("g2", "k0", "k_new", "k5"))
    (rec,) = fitted.recommend([request], 10)
    assert sorted(rec.items) == ["g2", "k5", "k_new"]


def test_unknown_candidate_raises(fitted) -> None:
    with pytest.raises(UnknownIdError, match="not-an-item"):
        fitted.recommend([Request("r", "u", candidates=("k1", "not-an-item"))], 3)


def test_a_single_query_is_a_batch_of_one(fitted) -> None:
    requests = [Request(f"r{n}", f"u{n}", _history([KITCHEN[n], GARDEN[n]])) for n in range(6)]
    together = fitted.recommend(requests, 4)
    alone = [fitted.recommend([r], 4)[0] for r in requests]
    assert [r.items for r in together] == [r.items for r in alone]


def test_many_requests_span_several_batches(fitted) -> None:
    requests = [Request(f"r{n}", f"u{n % 40}", _history([KITCHEN[n % 10]])) for n in range(300)]
    recs = fitted.recommend(requests, 3)
    assert [r.request_id for r in recs] == [r.request_id for r in requests]


def test_bad_k_raises(fitted) -> None:
    with pytest.raises(ValueError, match="k must be"):
        fitted.recommend([Request("r", "u")], 0)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_use_before_fit_raises(name: str) -> None:
    model = FACTORIES[name]()
    with pytest.raises(NotFittedError, match="fit"):
        model.recommend([Request("r", "u")], 3)
    with pytest.raises(NotFittedError):
        model.add_items(NEW_CATALOG)


# --- model-specific behaviour --------------------------------------------------------------


def test_popularity_by_hand() -> None:
    catalog = make_catalog(["a", "b", "c", "d"])
    events = make_events([
        ("u1", "b", 1), ("u2", "b", 2), ("u1", "c", 3), ("u3", "d", 4),
        ("u1", "a", 5, "cancel", -1), ("u2", "a", 6, "cancel", -1), ("u3", "a", 7, "cancel", -1),
    ])
    model = PopularityRecommender().fit(catalog, events)
    model.add_items(make_catalog(["e", "b"]))  # b is known already: skipped
    (rec,) = model.recommend([Request("r", "x")], 5)
    # b: 2 purchases; c and d: 1 each (tie -> catalog order); a: cancels only = 0; e: new = 0.
    assert rec.items == ["b", "c", "d", "a", "e"]
    assert rec.scores == [2.0, 1.0, 1.0, 0.0, 0.0]


def test_itemknn_by_hand() -> None:
    # Item columns over users u1..u3: a = [1,1,1], b = [1,1,0], c = [0,0,1].
    # cos(a,b) = 2 / (sqrt 3 sqrt 2) = 0.8165; cos(a,c) = 1 / sqrt 3 = 0.5774; cos(b,c) = 0.
    catalog = make_catalog(["a", "b", "c"])
    events = make_events([("u1", "a", 1), ("u1", "b", 2), ("u2", "a", 3), ("u2", "b", 4),
                          ("u3", "a", 5), ("u3", "c", 6)])
    model = ItemKNNRecommender(neighbors=2).fit(catalog, events)
    (rec,) = model.recommend([Request("r", "x", _history(["a"]))], 2)
    assert rec.items == ["b", "c"]
    np.testing.assert_allclose(rec.scores, [2 / np.sqrt(6), 1 / np.sqrt(3)], rtol=1e-6)
    # One neighbour per item: a keeps only b, so c gets nothing from a history of a.
    narrow = ItemKNNRecommender(neighbors=1).fit(catalog, events)
    (rec,) = narrow.recommend([Request("r", "x", _history(["a"]))], 2)
    assert rec.items == ["b", "c"] and rec.scores[1] == 0.0
    # History {b, c}: a gets cos(b,a) + cos(c,a) = 0.8165 + 0.5774.
    (rec,) = model.recommend([Request("r", "x", _history(["b", "c"]))], 1)
    assert rec.scores[0] == pytest.approx(2 / np.sqrt(6) + 1 / np.sqrt(3), rel=1e-6)


@pytest.mark.parametrize("name", ["itemknn", "als", "lightfm", "text"])
def test_personalised_models_stay_in_the_users_cluster(name: str) -> None:
    model = FACTORIES[name]().fit(CATALOG, EVENTS)
    recs = model.recommend(
        [Request("k", "someone", _history(["k0", "k1"])),
         Request("g", "someone else", _history(["g0", "g1"]))], 4,
    )
    assert sum(i.startswith("k") for i in recs[0].items) >= 3
    assert sum(i.startswith("g") for i in recs[1].items) >= 3


def test_als_puts_items_added_later_last() -> None:
    model = FACTORIES["als"]()
    model.fit(CATALOG, EVENTS)
    model.add_items(NEW_CATALOG)
    (rec,) = model.recommend([Request("r", "u0", _history(["k0"]))], 22)
    assert rec.items[-2:] == ["k_new", "g_new"]
    assert rec.scores[-1] == -np.inf
    assert np.isfinite(rec.scores[:-2]).all()


def test_content_models_place_new_items_by_their_text() -> None:
    for name in ("lightfm", "text"):
        model = FACTORIES[name]()
        model.fit(CATALOG, EVENTS)
        model.add_items(NEW_CATALOG)
        candidates = ("k_new", "g_new")
        recs = model.recommend([Request("k", "u0", _history(["k1", "k2"]), candidates=candidates),
                                Request("g", "u1", _history(["g1", "g2"]), candidates=candidates)],
                               1)
        assert [r.items for r in recs] == [["k_new"], ["g_new"]], name


def test_text_similarity_scores_are_cosines() -> None:
    encoder = HashingEncoder()
    model = TextSimilarityRecommender(encoder).fit(CATALOG, EVENTS)
    (rec,) = model.recommend([Request("r", "x", _history(["k0", "g0"]))], 20)
    vectors = encoder.encode([t.lower() for t in CATALOG.texts()])
    position = {item: n for n, item in enumerate(CATALOG.item_ids)}
    user = vectors[position["k0"]] + vectors[position["g0"]]
    user /= np.linalg.norm(user)
    expected = [float(vectors[position[i]] @ user) for i in rec.items]
    np.testing.assert_allclose(rec.scores, expected, rtol=1e-5)


def test_text_similarity_rejects_a_bad_encoder() -> None:
    class Broken:
        def encode(self, texts: list[str]) -> np.ndarray:
            return np.zeros((1, 4), dtype=np.float32)

    with pytest.raises(ValueError, match="encoder returned shape"):
        TextSimilarityRecommender(Broken()).fit(CATALOG, EVENTS)


def test_lightfm_missing_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightfm", None)  # makes `import lightfm` fail
    with pytest.raises(ImportError, match="pip install --no-build-isolation rectools-lightfm"):
        LightFMRecommender().fit(CATALOG, EVENTS)
