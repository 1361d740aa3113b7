"""Collaborative filtering, co-occurrence, popularity, the text->CF bridge and blend tuning."""

from coldbrew.models.als import ALSModel, confidence
from coldbrew.models.bridge import TextToCFBridge
from coldbrew.models.cooccurrence import Cooccurrence, cooccurrence_neighbors
from coldbrew.models.popularity import TrendPopularity

__all__ = ["ALSModel", "Cooccurrence", "TextToCFBridge", "TrendPopularity", "confidence", "cooccurrence_neighbors"]
