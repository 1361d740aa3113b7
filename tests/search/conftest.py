"""Fixtures of the search tests: the bundled bilingual demo shop, fitted with a tiny encoder."""

from __future__ import annotations

import pytest

from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
from coldbrew.data import load_catalog
from coldbrew.data.events import events_from_frame
from coldbrew.demo import demo_events, demo_paths
from coldbrew.pipeline import Recommender


def fit_demo(encoder: str = "hashing") -> Recommender:
    """The demo shop (52 products, English and Chinese titles) fitted on its generated events."""
    catalog_path, _ = demo_paths()
    catalog, _ = load_catalog(catalog_path)
    frame = demo_events(list(catalog.item_ids)).drop(columns=["taste"])
    events, _ = events_from_frame(frame)
    config = FitConfig(encoder=EncoderConfig(name=encoder), blend=BlendConfig(tune=False))
    return Recommender(config).fit(catalog, events, progress=False)


@pytest.fixture(scope="module")
def demo_model() -> Recommender:
    """A fresh demo model per test module (some tests add items to it)."""
    return fit_demo()


@pytest.fixture(scope="module")
def new_items():
    """The six products the demo adds after training."""
    _, new_path = demo_paths()
    catalog, _ = load_catalog(new_path)
    return catalog
