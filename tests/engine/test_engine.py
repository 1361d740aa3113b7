"""The engine contract on the local engine, the row check, and the batch jobs (no Ray needed)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from coldbrew.cli import main
from coldbrew.config import load_config
from coldbrew.data import load_catalog
from coldbrew.engine import (
    ROW,
    EngineError,
    LocalEngine,
    RowLedger,
    encode_catalog,
    make_engine,
    recommend_batch,
)
from coldbrew.engine._jobs import _request_json
from coldbrew.errors import ConfigError
from coldbrew.requests import HistoryEvent, Request, read_requests, request_from_dict


@dataclass(frozen=True)
class Doubling:
    """Doubles column x; counts how often it was built (once per engine run)."""

    builds: list

    def build(self, threads):
        self.builds.append(threads)
        return lambda batch: {"y": batch["x"] * 2}


def test_local_engine_runs_batches_in_order_with_their_row_positions():
    builds: list = []
    out = list(LocalEngine().map_batches(Doubling(builds), {"x": np.arange(10)}, batch_size=4))
    assert [len(b[ROW]) for b in out] == [4, 4, 2]
    assert np.concatenate([b[ROW] for b in out]).tolist() == list(range(10))
    assert np.concatenate([b["y"] for b in out]).tolist() == [2 * i for i in range(10)]
    assert builds == [None]  # built once, with the job's default threads


def test_local_engine_refuses_a_job_that_drops_rows_and_reserved_columns():
    @dataclass(frozen=True)
    class Dropping:
        def build(self, threads):
            return lambda batch: {"y": batch["x"][:-1]}

    with pytest.raises(EngineError, match="output column 'y' has 3 rows for a batch of 4"):
        list(LocalEngine().map_batches(Dropping(), {"x": np.arange(8)}, batch_size=4))
    with pytest.raises(ValueError, match="reserved"):
        list(LocalEngine().map_batches(Doubling([]), {ROW: np.arange(3)}, batch_size=2))


def test_row_ledger_names_duplicated_missing_and_unfinished_rows():
    ledger = RowLedger(6)
    ledger.check(np.array([0, 1, 2]))
    with pytest.raises(EngineError, match=r"rows 1, 2 came back twice \(of 6 input rows\)"):
        ledger.check(np.array([1, 2, 3]))
    with pytest.raises(EngineError, match="rows 4 are missing"):
        RowLedger(6).check(np.array([0, 1, 2, 3, 5]))
    ledger = RowLedger(6)
    ledger.check(np.array([0, 1, 2, 3]))
    with pytest.raises(EngineError, match=r"rows 4..5 of 6 never came back; nothing was written"):
        ledger.finish()


def test_make_engine_refuses_options_that_make_no_sense():
    assert make_engine("local").name == "local"
    with pytest.raises(ConfigError, match="only with --engine ray"):
        make_engine("local", address="auto")
    with pytest.raises(ConfigError, match="unknown engine 'spark'; expected one of: local, ray"):
        make_engine("spark")
    with pytest.raises(ConfigError, match="--ray-address: expected 'auto', 'ray://HOST:PORT'"):
        make_engine("ray", address="http://cluster")


def test_missing_ray_names_the_extra(monkeypatch, small_shop, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ConfigError, match=r"--engine ray needs Ray, which is not installed: pip install 'coldbrew\[ray\]'"):
        make_engine("ray")
    code = main(["encode", "--catalog", str(small_shop["catalog"]), "--out", str(tmp_path / "m"),
                 "--config", str(small_shop["config"]), "--engine", "ray"])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "coldbrew: error: --engine ray needs Ray, which is not installed: pip install 'coldbrew[ray]'")


def test_encode_catalog_gives_the_vectors_fit_uses_and_fills_the_cache(small_shop):
    from coldbrew.pipeline import Recommender

    config = load_config(small_shop["config"])
    catalog, _ = load_catalog(small_shop["catalog"], config.columns)
    result = encode_catalog(LocalEngine(), catalog, config, batch_size=7)
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (len(catalog), 512)
    np.testing.assert_array_equal(result.vectors, Recommender(config).encode(catalog.texts()))
    assert result.encoded == len(set(catalog.texts())) and result.reused == 0
    again = encode_catalog(LocalEngine(), catalog, config, cache=result.cache)
    assert again.encoded == 0 and again.reused == len(catalog)
    np.testing.assert_array_equal(again.vectors, result.vectors)


def test_requests_survive_the_trip_to_a_worker_unchanged():
    request = Request("r1", "u1", (HistoryEvent("a", 1700000000, "purchase", 2.0), HistoryEvent("b", 5)),
                      text="乌龙茶 gifts", candidates=("a", "c"), exclude=("d",))
    for req in (request, Request("r2", "u2")):
        assert request_from_dict(json.loads(_request_json(req))) == req


def test_recommend_batch_equals_the_model_itself(small_shop, tmp_path):
    from coldbrew.storage import load_model

    model_dir = tmp_path / "model"
    assert main(["fit", "--catalog", str(small_shop["catalog"]), "--events", str(small_shop["events"]),
                 "--out", str(model_dir), "--config", str(small_shop["config"])]) == 0
    requests = list(read_requests(small_shop["requests"]))
    expected = [r.to_dict() for r in load_model(model_dir).recommend(requests, 5)]
    # Batches of 512 are the chunks Recommender.recommend scores at once: the very same numbers
    # (other batch sizes change BLAS rounding in the 7th digit).
    got = recommend_batch(LocalEngine(), model_dir, requests, k=5)
    assert [r.to_dict() for r in got] == expected
    small = recommend_batch(LocalEngine(), model_dir, requests, k=5, batch_size=40)
    assert [r.items for r in small] == [r["items"] for r in expected]
    with pytest.raises(Exception, match="does not exist"):
        recommend_batch(LocalEngine(), tmp_path / "nowhere", requests, k=5)
