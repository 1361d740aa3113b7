"""Both rankers behind the Ranker protocol, on synthetic groups with a known rule."""

from __future__ import annotations

import numpy as np
import pytest

from coldbrew.config import RankerConfig
from coldbrew.errors import NotFittedError
from coldbrew.ranking.base import RankingData, grouped_ndcg, pad_groups
from coldbrew.ranking.lambdarank import LambdaRankRanker
from coldbrew.ranking.multitask import MultiTaskRanker


def _groups(n_groups: int, size: int = 10, seed: int = 0) -> RankingData:
    """The clicked item is the best by x0 when the user is warm (x2 > 0), else by x1."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_groups, size, 4)).astype(np.float32)
    warm = rng.random(n_groups) < 0.5
    x[:, :, 2] = np.where(warm, 1.0, -1.0)[:, None]
    key = np.where(warm[:, None], x[:, :, 0], x[:, :, 1])
    click = (key == key.max(axis=1, keepdims=True)).astype(np.int64)
    labels = np.zeros((n_groups, size, 3), np.int64)
    labels[..., 0] = click
    labels[..., 1] = click * (x[:, :, 3] > 0)
    labels[..., 2] = (x[:, :, 3] > 0).astype(np.int64)  # a learnable category from x3
    return RankingData(x.reshape(-1, 4), labels.reshape(-1, 3), np.full(n_groups, size))


@pytest.fixture(scope="module")
def data():
    return _groups(400), _groups(100, seed=1)


def test_pad_groups_and_grouped_ndcg_by_hand():
    padded, mask = pad_groups(np.array([1.0, 2.0, 3.0]), np.array([2, 1]), fill=-1.0)
    assert padded.tolist() == [[1.0, 2.0], [3.0, -1.0]] and mask.tolist() == [[True, True], [True, False]]
    # group 1: relevant item ranked second -> 1/log2(3); group 2 has no relevant item (ignored)
    value = grouped_ndcg(np.array([0.9, 0.1, 0.5]), np.array([0, 1, 0]), np.array([2, 1]))
    assert value == pytest.approx(1.0 / np.log2(3.0))


def test_ranking_data_names_the_bad_argument():
    with pytest.raises(ValueError, match="groups"):
        RankingData(np.zeros((3, 2), np.float32), np.zeros((3, 3), np.int64), np.array([2, 2]))
    with pytest.raises(ValueError, match="labels"):
        RankingData(np.zeros((3, 2), np.float32), np.zeros((3, 2), np.int64), np.array([3]))


@pytest.mark.parametrize("make", [
    lambda: MultiTaskRanker(RankerConfig(kind="multitask", epochs=60, hidden=32, learning_rate=0.01, patience=10), n_categories=2),
    lambda: LambdaRankRanker(RankerConfig(kind="lambdarank", trees=150), threads=1),
], ids=["multitask", "lambdarank"])
def test_ranker_learns_the_interaction_and_round_trips(make, data):
    train, val = data
    ranker = make().fit(train.features, train.labels, train.groups, validation=val)
    learned = grouped_ndcg(ranker.score(val.features), val.labels[:, 0], val.groups)
    by_x0 = grouped_ndcg(val.features[:, 0], val.labels[:, 0], val.groups)
    by_x1 = grouped_ndcg(val.features[:, 1], val.labels[:, 0], val.groups)
    assert learned > max(by_x0, by_x1) + 0.1
    curves = ranker.curves_
    assert len(curves["epoch"]) == len(curves["val_ndcg"]) >= 1
    meta, arrays, texts = ranker.state()
    restored = type(ranker).from_state(ranker.config, meta, arrays, texts)
    np.testing.assert_allclose(restored.score(val.features), ranker.score(val.features), rtol=1e-5, atol=1e-5)


def test_multitask_heads_are_trained(data):
    train, val = data
    ranker = MultiTaskRanker(RankerConfig(kind="multitask", epochs=30, hidden=32, learning_rate=0.01,
                                          category_weight=1.0), n_categories=2)
    ranker.fit(train.features, train.labels, train.groups, validation=val)
    heads = ranker.heads(val.features)
    assert heads["category"].shape == (len(val.features), 2)
    np.testing.assert_allclose(heads["category"].sum(axis=1), 1.0, rtol=1e-5)
    accuracy = np.mean(heads["category"].argmax(axis=1) == val.labels[:, 2])
    assert accuracy > 0.8  # the category is a function of one input
    assert ranker.curves_["loss"][-1] < ranker.curves_["loss"][0]


def test_rankers_refuse_to_score_before_fit_and_check_shapes(data):
    train, _ = data
    with pytest.raises(NotFittedError):
        MultiTaskRanker().score(train.features)
    with pytest.raises(NotFittedError):
        LambdaRankRanker().score(train.features)
    ranker = MultiTaskRanker(RankerConfig(kind="multitask", epochs=1)).fit(train.features, train.labels, train.groups)
    with pytest.raises(ValueError, match="features"):
        ranker.score(train.features[:, :2])
    with pytest.raises(ValueError, match="groups"):
        MultiTaskRanker().fit(train.features, train.labels, train.groups[:-1])


@pytest.mark.parametrize("make", [
    lambda **kw: MultiTaskRanker(RankerConfig(kind="multitask", hidden=16, learning_rate=0.01, **kw)),
    lambda **kw: LambdaRankRanker(RankerConfig(kind="lambdarank", **kw), threads=1),
], ids=["multitask", "lambdarank"])
def test_rounds_early_stopped_with_validation_and_all_kept_without(make, data):
    train, val = data
    stopped = make(epochs=40, trees=300, patience=2).fit(train.features, train.labels, train.groups, validation=val)
    history = stopped.curves_["val_ndcg"]
    assert 1 <= stopped.rounds_ <= len(history)
    if isinstance(stopped, MultiTaskRanker):  # the best epoch's weights are the kept ones
        assert stopped.rounds_ == int(np.argmax(history)) + 1 and len(history) < 40
    fixed = make(epochs=7, trees=7, patience=0).fit(train.features, train.labels, train.groups)
    assert fixed.rounds_ == 7 and len(fixed.curves_["epoch"]) == 7  # no early stopping without validation
    assert grouped_ndcg(fixed.score(val.features), val.labels[:, 0], val.groups) > 0
