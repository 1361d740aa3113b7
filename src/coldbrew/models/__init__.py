"""Collaborative filtering, co-occurrence, the text->CF bridge and blend tuning."""

from coldbrew.models.als import ALSModel, confidence
from coldbrew.models.bridge import TextToCFBridge
from coldbrew.models.cooccurrence import cooccurrence_neighbors

__all__ = ["ALSModel", "TextToCFBridge", "confidence", "cooccurrence_neighbors"]
