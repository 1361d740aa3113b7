"""IdMap: raw string IDs <-> dense integer indices, in insertion order."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from coldbrew.errors import UnknownIdError

__all__ = ["IdMap"]


class IdMap:
    """A growable bijection between raw IDs (str) and indices ``0..n-1``."""

    def __init__(self, ids: Iterable[str] = (), kind: str = "id") -> None:
        self.kind = kind
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self.add(ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw_id: object) -> bool:
        return raw_id in self._index

    def add(self, ids: Iterable[str]) -> np.ndarray:
        """Add IDs not yet known; return the index of every given ID (int64)."""
        out = []
        for raw in ids:
            raw = str(raw)
            idx = self._index.get(raw)
            if idx is None:
                idx = len(self._ids)
                self._index[raw] = idx
                self._ids.append(raw)
            out.append(idx)
        return np.asarray(out, dtype=np.int64)

    def lookup(self, ids: Iterable[str], missing: int = -1) -> np.ndarray:
        """Indices of the given IDs; unknown IDs get ``missing``."""
        ids = ids if isinstance(ids, (list, tuple, np.ndarray)) else list(ids)
        get = self._index.get
        out = np.fromiter(map(get, ids, itertools.repeat(missing)), dtype=np.int64, count=len(ids))
        for j in np.flatnonzero(out == missing):  # an ID given as a non-string (e.g. int) is looked up by str
            if not isinstance(ids[j], str):
                out[j] = get(str(ids[j]), missing)
        return out

    def index(self, raw_id: str) -> int:
        """Index of one ID; raises ``UnknownIdError`` naming it when unknown."""
        try:
            return self._index[str(raw_id)]
        except KeyError:
            raise UnknownIdError(f"unknown {self.kind} '{raw_id}'") from None

    def ids(self, indices: Iterable[int] | np.ndarray | None = None) -> list[str]:
        """Raw IDs of the given indices (all IDs when ``None``)."""
        if indices is None:
            return list(self._ids)
        return [self._ids[int(i)] for i in indices]
