"""Parts fitted once per set of training events, in worker processes: the same model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.ranking.test_stage import _requests, _shop

from coldbrew.config import FitConfig
from coldbrew.pipeline import Recommender


def _config(**compute) -> FitConfig:
    return FitConfig.from_dict({
        "encoder": {"name": "hashing"},
        "ranker": {"kind": "multitask", "require_gain": False, "candidates": 12, "epochs": 5, "max_users": 200},
        "compute": compute,
    })


def _answers(model: Recommender) -> list[tuple]:
    return [(r.items, np.round(r.scores, 5).tolist()) for r in model.recommend(_requests(), k=8)]


@pytest.fixture(scope="module")
def sequential():
    catalog, events = _shop()
    return Recommender(_config(workers=1)).fit(catalog, events, progress=False)


def test_each_distinct_set_of_parts_is_fitted_once(monkeypatch):
    catalog, events = _shop()
    calls = []
    real = Recommender._fit_parts

    def counted(self, catalog, events, *args, **kwargs):
        calls.append(len(events))
        return real(self, catalog, events, *args, **kwargs)

    monkeypatch.setattr(Recommender, "_fit_parts", counted)
    model = Recommender(_config(workers=1)).fit(catalog, events, progress=False)
    # tuning's hold-out (= the ranker's last period), its cold-item variant, periods 1 and 2, the final fit
    assert len(calls) == 5 and len(set(calls)) == 5
    assert calls.count(len(events)) == 1
    seconds = model.fit_report_["seconds"]
    assert {"tune", "ranker", "total"} <= set(seconds)
    assert any(key.endswith("parts") for key in seconds)


def test_parts_fitted_in_worker_processes_give_the_same_model(sequential):
    catalog, events = _shop()
    parallel = Recommender(_config(workers=2, parallel_min_events=0)).fit(catalog, events, progress=False)
    seconds = parallel.fit_report_["seconds"]
    assert "parts in workers/final" in seconds and "parts in workers/period 1" in seconds
    assert parallel.tuning_ == sequential.tuning_
    assert json.dumps(parallel.fit_report_["ranker"]["kinds"], sort_keys=True) == \
        json.dumps(sequential.fit_report_["ranker"]["kinds"], sort_keys=True)
    assert _answers(parallel) == _answers(sequential)
    np.testing.assert_array_equal(parallel.item_factors_, sequential.item_factors_)


def test_a_worker_that_fails_names_the_failure():
    from coldbrew import fitting
    from coldbrew.text import make_encoder

    catalog, events = _shop()
    config = _config()
    vectors = make_encoder(config.encoder).encode(catalog.texts())
    nothing = events.take(np.zeros(len(events), dtype=bool))  # a real child process, failing for real
    with pytest.raises(RuntimeError, match="worker process failed: .*DataError"):
        fitting._in_worker("coldbrew.pipeline:Recommender", config, catalog, nothing, vectors)


def test_compute_settings_are_validated():
    from coldbrew.errors import ConfigError

    with pytest.raises(ConfigError, match="compute"):
        FitConfig.from_dict({"compute": {"workers": -1}})
    with pytest.raises(ConfigError, match="unknown key"):
        FitConfig.from_dict({"compute": {"threads": 2}})
