"""Persistence: model directories (and, later, event stores)."""

from coldbrew.storage.artifacts import (
    FORMAT_VERSION,
    load_model,
    load_training_curves,
    reuse_embedding_cache,
    save_items,
    save_model,
)

__all__ = ["FORMAT_VERSION", "load_model", "load_training_curves", "reuse_embedding_cache", "save_items", "save_model"]
