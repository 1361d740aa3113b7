"""The batch jobs of ``coldbrew encode``, ``fit`` and ``recommend``, the same on every engine."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from coldbrew.config import EncoderConfig, FitConfig
from coldbrew.data.catalog import Catalog
from coldbrew.engine._base import Engine
from coldbrew.errors import ConfigError
from coldbrew.requests import Recommendation, Request, request_from_dict
from coldbrew.text.cache import EmbeddingCache

__all__ = [
    "EncodeResult",
    "EncodeTextsJob",
    "RecommendJob",
    "encode_catalog",
    "encode_for_fit",
    "recommend_batch",
]

RECOMMEND_BATCH = 512  # requests per batch: the chunk Recommender.recommend scores at once


def _limit_threads(encoder, threads: int | None) -> None:
    # Both bundled model encoders read ``threads`` when they first run, so setting it before
    # the first encode is enough; a worker must not use every core of a shared node.
    if threads is not None and hasattr(encoder, "threads"):
        encoder.threads = threads


@dataclass(frozen=True)
class EncodeTextsJob:
    """Encode texts with the configured encoder: column ``text`` -> ``vector`` float32 (m, d).

    ``encoder_name``: the name the driver expects (it keys the embedding cache); a worker
    whose installation builds another encoder (other package versions) is an error.
    """

    encoder: EncoderConfig
    encoder_name: str

    def build(self, threads: int | None):
        from coldbrew.text import make_encoder

        config = self.encoder if threads is None else replace(self.encoder, threads=threads)
        encoder = make_encoder(config, progress=False)
        if encoder.name != self.encoder_name:
            raise ConfigError(f"this worker's encoder is {encoder.name!r}, the driver's {self.encoder_name!r}:"
                              " install the same coldbrew and encoder packages on every node")
        return _EncodeTexts(encoder)


class _EncodeTexts:
    def __init__(self, encoder) -> None:
        self.encoder = encoder

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = np.asarray(self.encoder.encode([str(t) for t in batch["text"]]), dtype=np.float32)
        return {"vector": vectors}


class _EngineEncoder:
    """A ``TextEncoder`` that encodes through an engine: what the embedding cache calls with
    the texts it does not hold yet (each distinct text once)."""

    def __init__(self, engine: Engine, job: EncodeTextsJob, dim: int, batch_size: int) -> None:
        self.name = job.encoder_name
        self.dim = dim
        self._engine, self._job, self._batch_size = engine, job, batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        column = np.empty(len(texts), dtype=object)
        column[:] = list(texts)
        parts = [out["vector"] for out in self._engine.map_batches(self._job, {"text": column}, self._batch_size)]
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim)


@dataclass(frozen=True)
class EncodeResult:
    """What :func:`encode_catalog` did.

    ``vectors``: float32 ``(n_items, d)`` in catalog order (the encoder's own vectors, as
    ``Recommender.fit`` reads them); ``cache``: the embedding cache now holding them;
    ``encoded``: distinct texts encoded by the engine; ``reused``: texts the cache answered.
    """

    vectors: np.ndarray
    cache: EmbeddingCache
    encoder_name: str
    encoded: int
    reused: int
    seconds: float

    @property
    def rate(self) -> float:
        """Texts encoded per second (``inf`` when none needed encoding)."""
        return self.encoded / self.seconds if self.encoded and self.seconds > 0 else float("inf")


def encode_catalog(
    engine: Engine,
    catalog: Catalog,
    config: FitConfig,
    cache: EmbeddingCache | None = None,
    batch_size: int | None = None,
) -> EncodeResult:
    """Encode the catalog's product texts (``Catalog.texts``) with ``config.encoder`` on ``engine``.

    Only texts missing from ``cache`` (default: a new one) are encoded, each once, in
    batches of ``batch_size`` (default: two of the encoder's own batches) spread over the
    engine's workers; the cache then holds them, so a ``Recommender`` given this cache
    re-encodes nothing in ``fit``.
    """
    from coldbrew.text import make_encoder

    started = time.perf_counter()
    driver_encoder = make_encoder(config.encoder, progress=False)  # its name and dim: weights load lazily
    job = EncodeTextsJob(config.encoder, driver_encoder.name)
    cache = cache if cache is not None else EmbeddingCache()
    size = batch_size or 2 * config.encoder.batch_size
    misses, hits = cache.misses, cache.hits
    vectors = cache.encode(_EngineEncoder(engine, job, driver_encoder.dim, size), catalog.texts())
    return EncodeResult(vectors=vectors, cache=cache, encoder_name=job.encoder_name,
                        encoded=cache.misses - misses, reused=cache.hits - hits,
                        seconds=time.perf_counter() - started)


def encode_for_fit(engine: Engine, model, catalog: Catalog, batch_size: int | None = None) -> EncodeResult | None:
    """Encode ``catalog`` on ``engine`` into the embedding cache of an unfitted ``Recommender``.

    ``model.fit(catalog, events)`` then finds every product text in its cache. Returns
    ``None`` (nothing done: fit encodes in this process) when the vectors fit needs are not
    the configured encoder's: with ``[lora]`` the catalog is encoded after fine-tuning, and a
    model given its own encoder object encodes with that.
    """
    from coldbrew.text import make_encoder

    config = model.config
    if config.lora.enabled or model.encoder.name != make_encoder(config.encoder).name:
        return None
    # The model's cache is private to pipeline.py; storage.reuse_embedding_cache sets it too.
    result = encode_catalog(engine, catalog, config, cache=model._cache, batch_size=batch_size)
    model._cache = result.cache
    return result


@dataclass(frozen=True)
class RecommendJob:
    """Recommend with a saved model: column ``request`` (JSON) -> ``recommendation`` (JSON).

    Each worker loads ``model_dir`` once; requests are validated by the driver before.
    """

    model_dir: str
    k: int

    def build(self, threads: int | None):
        from coldbrew.storage import load_model

        model = load_model(self.model_dir)
        _limit_threads(model.encoder, threads)
        return _RecommendBatch(model, self.k)


class _RecommendBatch:
    def __init__(self, model, k: int) -> None:
        self.model, self.k = model, k

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        requests = [request_from_dict(json.loads(line)) for line in batch["request"]]
        out = np.empty(len(requests), dtype=object)
        out[:] = [json.dumps(rec.to_dict(), ensure_ascii=False) for rec in self.model.recommend(requests, self.k)]
        return {"recommendation": out}


def _request_json(request: Request) -> str:
    """A validated request as JSON that ``request_from_dict`` turns back into the same request."""
    return json.dumps(dataclasses.asdict(request), ensure_ascii=False)


def recommend_batch(
    engine: Engine,
    model_dir: str | Path,
    requests: Sequence[Request],
    k: int = 10,
    batch_size: int = RECOMMEND_BATCH,
) -> list[Recommendation]:
    """Recommendations for ``requests`` (in their order) from the model saved in ``model_dir``.

    Batches of ``batch_size`` requests run on the engine's workers, each of which loads the
    model once. Scores are those written to ``RECS.jsonl`` (6 decimals).
    """
    from coldbrew.storage.artifacts import read_manifest

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    read_manifest(Path(model_dir))  # a missing or foreign directory fails before any worker starts
    column = np.empty(len(requests), dtype=object)
    column[:] = [_request_json(r) for r in requests]
    # Absolute: a worker's working directory is not the driver's.
    job = RecommendJob(str(Path(model_dir).resolve()), k)
    out: list[Recommendation] = []
    for batch in engine.map_batches(job, {"request": column}, batch_size):
        out.extend(Recommendation(**json.loads(line)) for line in batch["recommendation"])
    return out
