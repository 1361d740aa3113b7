"""The fitted tiny shop shared by the promotion tests."""

from __future__ import annotations

import pytest

from coldbrew.pipeline import Recommender

from .builders import CONFIG, shop


@pytest.fixture(scope="session")
def model() -> Recommender:
    catalog, events = shop()
    return Recommender(CONFIG).fit(catalog, events, progress=False)
