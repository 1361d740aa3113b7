"""``--engine ray`` gives what the local engine gives; a dying worker loses and duplicates nothing.

One local Ray (2 CPUs, started in this process) serves the whole module; the engines and the
CLI reuse it instead of starting their own.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from coldbrew.cli import main
from coldbrew.config import load_config
from coldbrew.data import load_catalog
from coldbrew.engine import (
    ROW,
    EncodeTextsJob,
    LocalEngine,
    RayEngine,
    encode_catalog,
    recommend_batch,
)
from coldbrew.errors import DataError
from coldbrew.requests import read_requests

ray = pytest.importorskip("ray")
# Ray Data warns about its own deprecated settings when it copies its context.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    # The jobs below live in this test module, which Ray's workers cannot import by name.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(small_shop, tmp_path_factory):
    """A model fitted and its recommendations written with the local engine."""
    root = tmp_path_factory.mktemp("local_run")
    shop = small_shop
    assert main(["fit", "--catalog", str(shop["catalog"]), "--events", str(shop["events"]),
                 "--out", str(root / "model"), "--config", str(shop["config"])]) == 0
    assert main(["recommend", "--model", str(root / "model"), "--requests", str(shop["requests"]),
                 "--k", "10", "--out", str(root / "recs.jsonl")]) == 0
    return root


def test_encode_then_fit_then_recommend_on_ray_equal_the_local_engine(small_shop, local_run, tmp_path, capsys):
    shop, model = small_shop, tmp_path / "model"
    assert main(["encode", "--catalog", str(shop["catalog"]), "--out", str(model), "--config", str(shop["config"]),
                 "--vectors", str(tmp_path / "vectors.npz"), "--engine", "ray"]) == 0
    err = capsys.readouterr().err
    assert "encoded 52 distinct product texts (0 from the cache) on Ray, 2 workers" in err
    config = load_config(shop["config"])
    catalog, _ = load_catalog(shop["catalog"], config.columns)
    with np.load(tmp_path / "vectors.npz") as saved:
        assert saved["item_ids"].tolist() == catalog.item_ids.tolist()
        np.testing.assert_array_equal(saved["vectors"], encode_catalog(LocalEngine(), catalog, config).vectors)

    assert main(["fit", "--catalog", str(shop["catalog"]), "--events", str(shop["events"]), "--out", str(model),
                 "--config", str(shop["config"]), "--engine", "ray"]) == 0
    assert "encoded 0 distinct product texts (52 from the cache) on Ray" in capsys.readouterr().err

    out = tmp_path / "recs.jsonl"
    assert main(["recommend", "--model", str(model), "--requests", str(shop["requests"]), "--k", "10",
                 "--out", str(out), "--engine", "ray", "--ray-address", "auto"]) == 0
    assert f"wrote {shop['n_requests']} recommendation lists" in capsys.readouterr().err
    ray_recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    local_recs = [json.loads(line) for line in (local_run / "recs.jsonl").read_text(encoding="utf-8").splitlines()]
    # The same lists and reasons; scores differ at most in float32's last digits, because a
    # Ray worker's BLAS runs on 1 thread (its CPU) and the local one on all cores ...
    assert [{**r, "scores": None} for r in ray_recs] == [{**r, "scores": None} for r in local_recs]
    np.testing.assert_allclose(sum((r["scores"] for r in ray_recs), []), sum((r["scores"] for r in local_recs), []),
                               rtol=0, atol=1e-5)
    # ... and with one thread locally too, the numbers are bit for bit the same.
    requests = list(read_requests(shop["requests"]))
    one_thread = recommend_batch(LocalEngine(threads=1), local_run / "model", requests, k=10)
    assert [r.to_dict() for r in one_thread] == ray_recs


def test_fit_on_ray_encodes_on_the_workers_and_saves_the_same_model(small_shop, local_run, tmp_path, capsys):
    shop, model = small_shop, tmp_path / "model"
    assert main(["fit", "--catalog", str(shop["catalog"]), "--events", str(shop["events"]), "--out", str(model),
                 "--config", str(shop["config"]), "--engine", "ray"]) == 0
    assert "encoded 52 distinct product texts (0 from the cache) on Ray" in capsys.readouterr().err
    for name in ("model.npz", "item_arrays-0.npz", "embedding_cache.npz"):
        with np.load(model / name) as ray_arrays, np.load(local_run / "model" / name) as local_arrays:
            assert ray_arrays.files == local_arrays.files
            for key in ray_arrays.files:
                np.testing.assert_array_equal(ray_arrays[key], local_arrays[key], err_msg=f"{name}: {key}")


@dataclass(frozen=True)
class KillOnce:
    """Runs ``inner``, but the first worker to meet the text ``victim`` dies on the spot."""

    inner: EncodeTextsJob
    victim: str
    marker: str

    def build(self, threads):
        fn = self.inner.build(threads)

        def run(batch):
            if self.victim in batch["text"] and not os.path.exists(self.marker):
                open(self.marker, "w").close()
                os._exit(1)  # no exception, no cleanup: as a crashed or killed worker
            return fn(batch)

        return run


def test_a_worker_that_dies_mid_job_loses_and_duplicates_no_row(small_shop, tmp_path):
    config = load_config(small_shop["config"])
    catalog, _ = load_catalog(small_shop["catalog"], config.columns)
    texts = np.asarray(catalog.texts(), dtype=object)
    expected = encode_catalog(LocalEngine(), catalog, config).vectors
    job = KillOnce(EncodeTextsJob(config.encoder, "hashing-v1-dim512"), texts[30], str(tmp_path / "killed"))
    out = list(RayEngine().map_batches(job, {"text": texts}, batch_size=8))
    assert (tmp_path / "killed").exists(), "the worker was killed"
    assert np.concatenate([b[ROW] for b in out]).tolist() == list(range(len(texts)))
    np.testing.assert_array_equal(np.concatenate([b["vector"] for b in out]), expected)


@dataclass(frozen=True)
class Refusing:
    """A batch function that finds bad input, as a job validating its rows would."""

    def build(self, threads):
        def run(batch):
            if 7 in batch["x"]:
                raise DataError("requests.jsonl: line 8: field 'text' must be a string")
            return {"y": batch["x"]}

        return run


def test_bad_input_gets_the_same_clear_error_on_ray(small_shop, local_run, tmp_path, capsys):
    with pytest.raises(DataError) as caught:
        list(RayEngine().map_batches(Refusing(), {"x": np.arange(12)}, batch_size=4))
    assert str(caught.value) == "requests.jsonl: line 8: field 'text' must be a string"

    bad = tmp_path / "bad.jsonl"
    bad.write_text(small_shop["requests"].read_text(encoding="utf-8") + '{"request_id": "z", "user_id": 3, "history": 5}\n',
                   encoding="utf-8")
    errors = []
    for engine in ("local", "ray"):
        code = main(["recommend", "--model", str(local_run / "model"), "--requests", str(bad), "--k", "3",
                     "--out", str(tmp_path / f"{engine}.jsonl"), "--engine", engine])
        assert code == 2
        errors.append(capsys.readouterr().err.strip().splitlines()[-1])
        assert not (tmp_path / f"{engine}.jsonl").exists()
    line = small_shop["n_requests"] + 1
    assert errors == [f"coldbrew: error: {bad}: line {line}: field 'history' must be a list of events"] * 2
