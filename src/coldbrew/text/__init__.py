"""Text encoders (the ``TextEncoder`` protocol and the bundled encoders) and the embedding cache."""

from coldbrew.text.cache import EmbeddingCache
from coldbrew.text.encoder import (
    ENCODER_NAMES,
    HashingEncoder,
    TextEncoder,
    UniversalSentenceEncoder,
    make_encoder,
)

__all__ = [
    "ENCODER_NAMES",
    "EmbeddingCache",
    "HashingEncoder",
    "TextEncoder",
    "UniversalSentenceEncoder",
    "make_encoder",
]
