"""Real data: the assistant over a model of UCI Online Retail (no categories, English titles)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "uci_online_retail"


@pytest.fixture(scope="module")
def uci_assistant():
    if not (DATA / "items.csv.gz").is_file():
        message = f"{DATA.resolve()} is absent"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: real-data tests must run in CI)")
        pytest.skip(message + " (real-data tests need ../shared/data beside the repository)")
    from coldbrew.assistant import Assistant, IntentClassifier, load_examples
    from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
    from coldbrew.data import load_catalog
    from coldbrew.data.events import events_from_frame
    from coldbrew.pipeline import Recommender
    from coldbrew.text import HashingEncoder

    catalog, _ = load_catalog(DATA / "items.csv.gz")
    frame = pd.read_csv(DATA / "interactions.csv.gz", usecols=["user_id", "item_id", "event_type", "timestamp"],
                        dtype={"user_id": str, "item_id": str})
    frame = frame[frame.timestamp >= frame.timestamp.max() - 30 * 86_400]  # the last month is enough here
    events, _ = events_from_frame(frame, "uci_online_retail (last 30 days)")
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))
    model = Recommender(config).fit(catalog, events, progress=False)
    return Assistant(model, classifier=IntentClassifier(HashingEncoder()).fit(load_examples()))


@pytest.mark.slow
def test_candles_then_cheaper_on_uci(uci_assistant):
    found = uci_assistant.reply("uci", "show me candles")
    assert len(found.items) == 5 and all("CANDLE" in i.title.upper() for i in found.items)
    cheaper = uci_assistant.reply("uci", "cheaper ones")
    assert cheaper.intent == "filter" and cheaper.items
    assert all("CANDLE" in i.title.upper() for i in cheaper.items)
    assert max(i.price for i in cheaper.items) < max(i.price for i in found.items)
    zh = uci_assistant.reply("uci-zh", "给我看看蜡烛")
    assert zh.items and all("CANDLE" in i.title.upper() for i in zh.items)
    asked = uci_assistant.reply("uci-zh", "第二个多少钱")
    assert asked.items[0].item_id == zh.items[1].item_id and "£" in asked.text
