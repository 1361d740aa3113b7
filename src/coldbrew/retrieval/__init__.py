"""Vector search: the ``VectorIndex`` protocol, an exact numpy index and faiss adapters."""

from coldbrew.retrieval.index import (
    AUTO_EXACT_BELOW,
    DEFAULT_NPROBE,
    INDEX_KINDS,
    AutoIndex,
    ExactIndex,
    FaissIndex,
    NormOrderedIndex,
    VectorIndex,
    ivf_lists,
    load_index,
    make_index,
    save_index,
)

__all__ = [
    "AUTO_EXACT_BELOW",
    "DEFAULT_NPROBE",
    "INDEX_KINDS",
    "AutoIndex",
    "ExactIndex",
    "FaissIndex",
    "NormOrderedIndex",
    "VectorIndex",
    "ivf_lists",
    "load_index",
    "make_index",
    "save_index",
]
