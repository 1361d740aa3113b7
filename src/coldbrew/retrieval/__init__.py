"""Vector search: the ``VectorIndex`` protocol, an exact numpy index and faiss adapters."""

from coldbrew.retrieval.index import (
    AUTO_EXACT_BELOW,
    INDEX_KINDS,
    AutoIndex,
    ExactIndex,
    FaissIndex,
    VectorIndex,
    make_index,
)

__all__ = [
    "AUTO_EXACT_BELOW",
    "INDEX_KINDS",
    "AutoIndex",
    "ExactIndex",
    "FaissIndex",
    "VectorIndex",
    "make_index",
]
