"""Engines for batch work: the same batch jobs in this process or on Ray.

A package of its own (not part of ``text/`` or ``pipeline.py``) because it is the one seam
between *what* a batch job computes and *where* it runs: ``encode``, ``fit`` and
``recommend`` hand their batch functions (:class:`EncodeTextsJob`, :class:`RecommendJob`)
to an :class:`Engine`, and both engines call exactly those functions: ``LocalEngine``
directly, ``RayEngine`` through ``ray.data.Dataset.map_batches`` on an actor pool (the
``[ray]`` extra, imported only when that engine is made). Training (ALS, the bridge, the
ranker) stays in the driver on either engine, fed with the vectors the engine encoded.

Python entry points (what ``coldbrew encode/fit/recommend --engine`` call)::

    engine = make_engine("ray", address=None, num_cpus=2)  # or make_engine("local")
    result = encode_catalog(engine, catalog, config)        # EncodeResult: vectors, cache, rate
    recs = recommend_batch(engine, "model/", requests, k=10)
    engine.close()
"""

from coldbrew.engine._base import (
    ENGINE_NAMES,
    ROW,
    BatchFunction,
    BatchJob,
    Engine,
    EngineError,
    LocalEngine,
    RowLedger,
    make_engine,
)
from coldbrew.engine._jobs import (
    EncodeResult,
    EncodeTextsJob,
    RecommendJob,
    encode_catalog,
    encode_for_fit,
    recommend_batch,
)
from coldbrew.engine._ray import RayEngine, check_ray_address

__all__ = [
    "ENGINE_NAMES",
    "ROW",
    "BatchFunction",
    "BatchJob",
    "EncodeResult",
    "EncodeTextsJob",
    "Engine",
    "EngineError",
    "LocalEngine",
    "RayEngine",
    "RecommendJob",
    "RowLedger",
    "check_ray_address",
    "encode_catalog",
    "encode_for_fit",
    "make_engine",
    "recommend_batch",
]
