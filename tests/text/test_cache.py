"""Tests of the embedding cache: only new texts are encoded, order is kept, files round-trip."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from coldbrew.errors import ModelFormatError
from coldbrew.text import EmbeddingCache, HashingEncoder


class CountingEncoder:
    """Wraps an encoder and records every batch it is asked to encode."""

    def __init__(self, name: str = "hashing-v1-dim32") -> None:
        self._inner = HashingEncoder(dim=32)
        self.name = name
        self.dim = self._inner.dim
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self._inner.encode(texts)


def test_only_new_texts_are_encoded_and_order_is_kept() -> None:
    encoder = CountingEncoder()
    cache = EmbeddingCache()
    first = cache.encode(encoder, ["red wine", "coffee mug", "red wine"])
    assert encoder.calls == [["red wine", "coffee mug"]]  # duplicates encoded once
    np.testing.assert_array_equal(
        first, encoder._inner.encode(["red wine", "coffee mug", "red wine"])
    )
    assert (cache.misses, cache.hits, len(cache)) == (2, 1, 2)

    second = cache.encode(encoder, ["tea pot", "coffee mug", "red wine", "tea pot"])
    assert encoder.calls[1] == ["tea pot"]
    np.testing.assert_array_equal(second[1], first[1])
    np.testing.assert_array_equal(second[2], first[0])
    np.testing.assert_array_equal(second[0], second[3])
    assert (cache.misses, cache.hits, len(cache)) == (3, 4, 3)

    cache.encode(encoder, ["coffee mug"])
    assert len(encoder.calls) == 2  # fully cached: the encoder is not called at all


def test_keys_are_exact_texts() -> None:
    encoder = CountingEncoder()
    cache = EmbeddingCache()
    cache.encode(encoder, ["Red wine", "red wine", "red wine "])
    assert len(cache) == 3


def test_returned_rows_are_a_copy() -> None:
    encoder = CountingEncoder()
    cache = EmbeddingCache()
    cache.encode(encoder, ["red wine"])[0] = 0.0
    assert np.linalg.norm(cache.encode(encoder, ["red wine"])[0]) == pytest.approx(1.0)


def test_empty_batch() -> None:
    vectors = EmbeddingCache().encode(CountingEncoder(), [])
    assert vectors.shape == (0, 32) and vectors.dtype == np.float32


def test_growth_over_many_batches() -> None:
    encoder = CountingEncoder()
    cache = EmbeddingCache()
    texts = [f"item {i}" for i in range(3000)]
    for start in range(0, 3000, 700):
        cache.encode(encoder, texts[start : start + 700])
    np.testing.assert_array_equal(cache.encode(encoder, texts), encoder._inner.encode(texts))
    assert cache.misses == 3000


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    cache = EmbeddingCache()
    # 300 texts: some SHA-1 digests end in a zero byte, which must survive the file
    texts = [f"product {i}" for i in range(300)]
    assert hashlib.sha1(b"product 62").digest().endswith(b"\x00")
    before = cache.encode(encoder, texts)
    path = tmp_path / "embeddings.npz"
    cache.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["embeddings.npz"]  # no temp file left

    loaded = EmbeddingCache.load(path)
    assert loaded.encoder_name == encoder.name and len(loaded) == 300
    fresh = CountingEncoder()
    np.testing.assert_array_equal(loaded.encode(fresh, texts), before)
    assert fresh.calls == []
    loaded.encode(fresh, ["product 300"] + texts[:5])
    assert fresh.calls == [["product 300"]]


def test_file_holds_plain_arrays_only(tmp_path: Path) -> None:
    cache = EmbeddingCache()
    cache.encode(CountingEncoder(), ["a", "b"])
    cache.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["encoder_name", "format", "keys", "vectors"]
        assert data["keys"].shape == (2, 20) and data["vectors"].dtype == np.float32


def test_another_encoder_resets_the_cache(tmp_path: Path) -> None:
    cache = EmbeddingCache()
    cache.encode(CountingEncoder("model-a"), ["red wine", "tea pot"])
    cache.save(tmp_path / "c.npz")
    loaded = EmbeddingCache.load(tmp_path / "c.npz")
    other = CountingEncoder("model-b")
    loaded.encode(other, ["red wine"])
    assert other.calls == [["red wine"]]  # never served a vector of model-a
    assert loaded.encoder_name == "model-b" and len(loaded) == 1


def test_save_replaces_an_existing_file(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    cache = EmbeddingCache()
    cache.encode(encoder, ["a"])
    cache.save(tmp_path / "c.npz")
    cache.encode(encoder, ["b"])
    cache.save(tmp_path / "c.npz")
    assert len(EmbeddingCache.load(tmp_path / "c.npz")) == 2


def test_empty_cache_round_trip(tmp_path: Path) -> None:
    EmbeddingCache().save(tmp_path / "c.npz")
    loaded = EmbeddingCache.load(tmp_path / "c.npz")
    assert len(loaded) == 0 and loaded.encoder_name is None


def test_damaged_file_is_a_model_format_error(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(ModelFormatError, match="delete it to rebuild"):
        EmbeddingCache.load(path)
    np.savez(path, vectors=np.zeros((1, 2), np.float32))
    with pytest.raises(ModelFormatError, match=str(path)):
        EmbeddingCache.load(path)
    with pytest.raises(FileNotFoundError):
        EmbeddingCache.load(tmp_path / "missing.npz")
