"""A small bilingual shop (candles, mugs, tea, wine, lamps) and a model fitted on it once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CATALOG = """item_id,title,category,brand,price,description
c1,Vanilla scented candle,Home > Decor,Glow,18.0,Soy wax candle with vanilla scent
c2,Large pillar candle,Home > Decor,Glow,25.0,Unscented white pillar candle
c3,Tea light candles 24 pack,Home > Decor,Glow,6.0,Small tea lights for lanterns
c4,香薰蜡烛 玫瑰,Home > Decor,Calm,12.0,玫瑰味香薰蜡烛
c5,Red taper candles set,Home > Decor,Glow,9.0,Tall red dinner candles
m1,Ceramic coffee mug,Home > Kitchen,Cup Co,8.0,Stoneware mug for coffee
m2,Blue enamel mug,Home > Kitchen,Cup Co,11.0,Camping mug in blue enamel
m3,马克杯 白色,Home > Kitchen,Cup Co,15.0,白色陶瓷马克杯
t1,Green tea sencha,Food > Tea,Leafy,12.0,Japanese green tea
t2,铁观音乌龙茶,Food > Tea,Leafy,28.0,安溪铁观音
t3,Earl Grey black tea,Food > Tea,Leafy,8.0,Black tea with bergamot
t4,Cast iron teapot,Food > Tea,Kettle,42.0,Japanese tetsubin teapot
w1,Bordeaux red wine,Food > Wine,Nord,24.0,Merlot blend
w2,法国干红葡萄酒,Food > Wine,Nord,30.0,波尔多干红
l1,Oak desk lamp,Home > Lighting,Nord,79.0,Desk lamp in oak
l2,White bedside lamp,Home > Lighting,Nord,35.0,Small white lamp
"""


def shop_events(item_ids: list[str], n_users: int = 60, seed: int = 3) -> pd.DataFrame:
    """Shoppers who each stick to one or two product families (seeded)."""
    rng = np.random.default_rng(seed)
    families = sorted({i[0] for i in item_ids})
    rows = []
    for u in range(n_users):
        liked = rng.choice(families, size=int(rng.integers(1, 3)), replace=False)
        pool = [i for i in item_ids if i[0] in liked]
        for _ in range(int(rng.integers(3, 9))):
            rows.append((f"u{u:02d}", str(rng.choice(pool)), 1_700_000_000 + int(rng.integers(0, 30 * 86_400)), "purchase"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event"])


@pytest.fixture(scope="session")
def shop_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("shop")
    catalog = root / "catalog.csv"
    catalog.write_text(CATALOG, encoding="utf-8")
    events = root / "events.csv"
    ids = [line.split(",")[0] for line in CATALOG.strip().splitlines()[1:]]
    shop_events(ids).to_csv(events, index=False)
    return catalog, events


@pytest.fixture(scope="session")
def shop_model(shop_paths: tuple[Path, Path]):
    """A Recommender fitted on the shop with the tiny hashing encoder."""
    from coldbrew.config import BlendConfig, EncoderConfig, FitConfig
    from coldbrew.data import load_catalog, load_events
    from coldbrew.pipeline import Recommender

    catalog, _ = load_catalog(shop_paths[0])
    events, _ = load_events(shop_paths[1])
    config = FitConfig(encoder=EncoderConfig(name="hashing"), blend=BlendConfig(tune=False))
    return Recommender(config).fit(catalog, events, progress=False)


@pytest.fixture(scope="session")
def shop_catalog(shop_model):
    return shop_model.catalog_


@pytest.fixture(scope="session")
def hashing_classifier():
    """The intent classifier on the bundled examples with the hashing encoder (trained once)."""
    from coldbrew.assistant import IntentClassifier, load_examples
    from coldbrew.text import HashingEncoder

    return IntentClassifier(HashingEncoder()).fit(load_examples())


@pytest.fixture
def assistant(shop_model, hashing_classifier):
    """A fresh assistant (no conversations yet) over the shop model."""
    from coldbrew.assistant import Assistant

    return Assistant(shop_model, k=5, classifier=hashing_classifier)
