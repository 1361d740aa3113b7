"""An embedding cache: each distinct text is encoded once per encoder."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from coldbrew.errors import ModelFormatError
from coldbrew.text.encoder import TextEncoder

__all__ = ["EmbeddingCache"]

_FORMAT = "coldbrew-embedding-cache/1"
_KEY_BYTES = 20  # a SHA-1 digest; stored as uint8 rows (numpy "S" strings drop trailing NULs)


def _key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).digest()


class EmbeddingCache:
    """Maps (encoder name, SHA-1 of the exact text) to the text's vector.

    A cache holds the vectors of one encoder at a time: it binds to the name of the first
    encoder it is used with (or the name stored in the file it was loaded from). Used with
    an encoder of a different name it silently empties itself and binds to the new one, so
    vectors of different encoders (or versions, or options such as lower-casing) are never
    mixed; a cache file written with another encoder therefore costs one re-encode, never a
    wrong vector. Keys are exact: texts differing in case or whitespace are distinct.

    Attributes
    ----------
    encoder_name: name of the encoder whose vectors are held (``None`` while unbound).
    hits: texts answered from the cache, counted over all :meth:`encode` calls (a text
        repeated within one batch counts as a hit after its first occurrence).
    misses: distinct texts that had to be encoded.
    """

    def __init__(self) -> None:
        self.encoder_name: str | None = None
        self.hits = 0
        self.misses = 0
        self._rows: dict[bytes, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return (
            f"EmbeddingCache(encoder_name={self.encoder_name!r}, size={len(self)}, "
            f"hits={self.hits}, misses={self.misses})"
        )

    def encode(self, encoder: TextEncoder, texts: Sequence[str]) -> np.ndarray:
        """Vectors of ``texts``, encoding only those not cached yet.

        Parameters
        ----------
        encoder: the encoder to use (its ``name`` keys the cache).
        texts: ``n`` strings; duplicates are encoded once.

        Returns
        -------
        float32 array ``(n, encoder.dim)``, rows in the order of ``texts`` (a new array).
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError(
                "encode() expects a sequence of strings, got a single string; wrap it: [text]"
            )
        items = list(texts)
        for i, text in enumerate(items):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__} ({text!r}), expected str")
        with self._lock:
            if self.encoder_name != encoder.name:
                self._reset(encoder.name, encoder.dim)
            keys = [_key(text) for text in items]
            new: dict[bytes, str] = {}
            for key, text in zip(keys, items):
                if key not in self._rows and key not in new:
                    new[key] = text
            if new:
                vectors = np.asarray(encoder.encode(list(new.values())), dtype=np.float32)
                expected = (len(new), self._vectors.shape[1])
                if vectors.shape != expected:
                    raise ValueError(
                        f"encoder {encoder.name!r} returned shape {vectors.shape}, expected {expected}"
                    )
                self._append(list(new), vectors)
            self.misses += len(new)
            self.hits += len(items) - len(new)
            rows = np.fromiter((self._rows[key] for key in keys), dtype=np.int64, count=len(keys))
            return self._vectors[rows]

    def _reset(self, encoder_name: str, dim: int) -> None:
        self.encoder_name = encoder_name
        self._rows = {}
        self._vectors = np.zeros((0, dim), dtype=np.float32)

    def _append(self, keys: list[bytes], vectors: np.ndarray) -> None:
        size = len(self._rows)
        needed = size + len(keys)
        if needed > self._vectors.shape[0]:
            # grow geometrically so that many small batches stay linear overall
            capacity = max(needed, 2 * self._vectors.shape[0], 1024)
            grown = np.zeros((capacity, self._vectors.shape[1]), dtype=np.float32)
            grown[:size] = self._vectors[:size]
            self._vectors = grown
        self._vectors[size:needed] = vectors
        self._rows.update(zip(keys, range(size, needed)))

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write the cache to ``path`` (an uncompressed ``.npz``, no pickled objects).

        The file is written beside ``path`` under a temporary name and moved into place,
        so a crash never leaves a half-written cache.
        """
        path = Path(path)
        with self._lock:
            keys = np.frombuffer(b"".join(self._rows), dtype=np.uint8).reshape(-1, _KEY_BYTES)
            vectors = self._vectors[: len(self._rows)]
            name = self.encoder_name or ""
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            # os.open with 0o666 respects the umask (tempfile would force 0o600)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(
                        fh,
                        format=np.array(_FORMAT),
                        encoder_name=np.array(name),
                        keys=keys,
                        vectors=vectors,
                    )
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingCache:
        """Read a cache written by :meth:`save`.

        Raises
        ------
        FileNotFoundError: ``path`` does not exist.
        ModelFormatError: the file is not a readable embedding cache (delete it to rebuild).
        """
        path = Path(path)
        where = f"embedding cache {path}"
        try:
            with np.load(path, allow_pickle=False) as data:
                fmt = str(data["format"])
                if fmt != _FORMAT:
                    raise ModelFormatError(f"{where}: format {fmt!r}, expected {_FORMAT!r}")
                name = str(data["encoder_name"])
                keys = data["keys"]
                vectors = data["vectors"]
        except FileNotFoundError:
            raise
        except ModelFormatError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ModelFormatError(
                f"{where}: not a readable embedding cache ({exc}); delete it to rebuild"
            ) from None
        if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != _KEY_BYTES:
            raise ModelFormatError(
                f"{where}: keys must be uint8 (n, {_KEY_BYTES}), got {keys.dtype} {keys.shape}"
            )
        if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(keys):
            raise ModelFormatError(
                f"{where}: vectors must be float32 (n_keys={len(keys)}, dim), "
                f"got {vectors.dtype} {vectors.shape}"
            )
        cache = cls()
        if name:
            cache._reset(name, vectors.shape[1])
            cache._append([key.tobytes() for key in keys], vectors)
        return cache
