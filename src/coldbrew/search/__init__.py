"""Product search: BM25 + text vectors, fused by reciprocal rank, re-ranked by the user's profile."""

from coldbrew.search._tokenize import CHINESE_MODES, Tokenizer
from coldbrew.search.hybrid import reciprocal_rank_fusion
from coldbrew.search.index import MODES, SearchConfig, SearchHit, SearchIndex
from coldbrew.search.lexical import LexicalIndex
from coldbrew.search.semantic import SemanticIndex

__all__ = [
    "CHINESE_MODES",
    "MODES",
    "LexicalIndex",
    "SearchConfig",
    "SearchHit",
    "SearchIndex",
    "SemanticIndex",
    "Tokenizer",
    "reciprocal_rank_fusion",
]
