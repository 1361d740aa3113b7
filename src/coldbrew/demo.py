"""``coldbrew demo``: the whole idea in one minute, offline.

The bundled shop (``demo_data/``) is coldbrew's own: 52 products in English and Chinese,
6 products that arrive after training, and shoppers whose events are generated here from a
few tastes (runner, yogi, tea lover, ...), reproducibly. The real-data part evaluates
coldbrew against popularity on ``uci_online_retail`` when that folder is present.
"""

from __future__ import annotations

import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["run_demo", "demo_events", "demo_paths"]

_TASTES = {
    "runner": ("run-", "book-002"),
    "yogi": ("yoga-", "home-003", "home-004"),
    "tea lover": ("tea-", "book-003"),
    "wine lover": ("wine-", "book-004"),
    "home cook": ("cook-", "book-005", "wine-004"),
    "parent": ("baby-",),
    "gamer": ("game-",),
    "minimalist": ("home-", "book-001"),
}


def demo_paths() -> tuple[Path, Path]:
    """Paths of the bundled catalog and of the products added after training."""
    root = files("coldbrew") / "demo_data"
    return Path(str(root / "catalog.csv")), Path(str(root / "new_items.csv"))


def demo_events(item_ids: list[str], n_users: int = 160, seed: int = 7) -> pd.DataFrame:
    """Synthetic but plausible events: each shopper has one or two tastes (seeded)."""
    rng = np.random.default_rng(seed)
    names = list(_TASTES)
    start = 1_735_689_600  # 2025-01-01
    rows = []
    for u in range(n_users):
        tastes = rng.choice(names, size=rng.integers(1, 3), replace=False)
        liked = [i for i in item_ids if any(i.startswith(p) for t in tastes for p in _TASTES[t])]
        weights = 1.0 / np.arange(1, len(liked) + 1) ** 0.7  # some products are hits
        weights /= weights.sum()
        for _ in range(int(rng.integers(4, 16))):
            item = rng.choice(liked, p=weights) if rng.random() > 0.08 else rng.choice(item_ids)
            ts = start + int(rng.integers(0, 90 * 86_400))
            event = rng.choice(["view", "cart", "purchase"], p=[0.6, 0.2, 0.2])
            rows.append((f"u{u:03d}", item, ts, event, "|".join(tastes)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "event", "taste"])


def _pad(text: str, width: int) -> str:
    """Cut and pad to a display width (CJK characters take two columns)."""
    import unicodedata

    out, used = "", 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if used + w > width:
            break
        out, used = out + ch, used + w
    return out + " " * (width - used)


def _show(title: str, rec, titles: dict[str, str]) -> None:
    print(f"\n  {title}")
    for rank, (item, reason) in enumerate(zip(rec.items, rec.reasons), start=1):
        print(f"    {rank}. {_pad(titles.get(item, item), 40)}  [{item:<9}] {reason}")


def run_demo(data_dir: str | None = None, quick: bool = False) -> int:
    """Print the demo; returns the process exit code."""
    from coldbrew.config import BlendConfig, FitConfig
    from coldbrew.data import load_catalog, load_events
    from coldbrew.pipeline import Recommender
    from coldbrew.requests import Request
    from coldbrew.storage import load_model, save_items, save_model

    catalog_path, new_path = demo_paths()
    work = Path(tempfile.mkdtemp(prefix="coldbrew-demo-"))
    catalog, _ = load_catalog(catalog_path)
    frame = demo_events(list(catalog.item_ids))
    events_path = work / "events.csv"
    frame.drop(columns=["taste"]).to_csv(events_path, index=False)
    events, _ = load_events(events_path)
    print("coldbrew demo — a small bilingual shop, fully offline")
    print(f"  catalog: {len(catalog)} products ({catalog_path.name}), events: {len(events):,} from"
          f" {frame.user_id.nunique()} shoppers (written to {events_path})")

    started = time.perf_counter()
    model = Recommender(FitConfig(blend=BlendConfig(tune=False))).fit(catalog, events)
    model_dir = work / "model"
    save_model(model, model_dir)
    print(f"  fitted and saved to {model_dir} in {time.perf_counter() - started:.1f} s"
          f"  (= coldbrew fit --catalog {catalog_path.name} --events events.csv --out model)")
    model = load_model(model_dir)
    titles = dict(zip(model.catalog_.item_ids, model.catalog_.titles))

    print("\n(a) Brand-new shoppers describe themselves (no history at all)")
    _show("“I run marathons and like minimalist design”",
          model.onboard("I run marathons and like minimalist design", k=5), titles)
    _show("“我喜欢喝绿茶和乌龙茶” (I like green and oolong tea)",
          model.onboard("我喜欢喝绿茶和乌龙茶", k=5), titles)

    print("\n(b) Six products arrive after training (text only, no retraining)")
    new_catalog, _ = load_catalog(new_path)
    started = time.perf_counter()
    added = model.add_items(new_catalog)
    save_items(model, model_dir, model.manifest_)
    print(f"  added {added} products in {1000 * (time.perf_counter() - started):.0f} ms"
          f" (= coldbrew add-items --model model --catalog {new_path.name})")
    titles.update(zip(new_catalog.item_ids, new_catalog.titles))
    runner = frame[frame.taste == "runner"].user_id.iloc[0]
    history = _history(frame, runner)
    rec = model.recommend([Request("new-items", runner, history, candidates=tuple(new_catalog.item_ids))], k=3)[0]
    _show(f"which new products suit shopper {runner} (a runner)? ranking only the new ones:", rec, titles)
    rec = model.recommend([Request("mixed", runner, history)], k=5)[0]
    _show(f"{runner}'s full list now:", rec, titles)

    print("\n(c) A regular shopper")
    regular = frame.groupby("user_id").size().idxmax()
    tastes = frame[frame.user_id == regular].taste.iloc[0]
    bought = frame[(frame.user_id == regular) & (frame.event == "purchase")].item_id.unique()[:4]
    print(f"  {regular} ({tastes}) bought: " + ", ".join(titles[i][:30] for i in bought))
    _show(f"recommended for {regular}:", model.recommend([Request("regular", regular, _history(frame, regular))], k=5)[0], titles)

    if quick:
        print("\n(d) skipped (--quick)")
        return 0
    return _real_data_table(data_dir)


def _history(frame: pd.DataFrame, user: str):
    from coldbrew.requests import HistoryEvent

    rows = frame[frame.user_id == user].sort_values("timestamp")
    return tuple(HistoryEvent(r.item_id, int(r.timestamp), r.event) for r in rows.itertuples())


def _find_data(data_dir: str | None) -> Path | None:
    candidates = [Path(data_dir)] if data_dir else [Path("../shared/data"), Path(__file__).resolve().parents[3] / ".." / "shared" / "data"]
    for c in candidates:
        if (c / "uci_online_retail" / "interactions.csv.gz").is_file():
            return c
    return None


def _real_data_table(data_dir: str | None) -> int:
    from coldbrew.config import FitConfig
    from coldbrew.data import load_catalog, load_events
    from coldbrew.evaluation.baselines import PopularityRecommender
    from coldbrew.evaluation.protocol import evaluate, fit_catalog, temporal_segments
    from coldbrew.evaluation.splits import temporal_split
    from coldbrew.pipeline import Recommender

    print("\n(d) Real data: UCI Online Retail, the last 12 months, temporal split at the 80% time point")
    root = _find_data(data_dir)
    if root is None:
        print("  uci_online_retail not found (pass --data-dir DIR with uci_online_retail/ inside); skipped")
        return 0
    catalog, _ = load_catalog(root / "uci_online_retail" / "items.csv.gz")
    events, _ = load_events(root / "uci_online_retail" / "interactions.csv.gz")
    events = events.take(events.timestamps >= events.timestamps.max() - 365 * 86_400)
    split = temporal_split(events, quantile=0.8)
    warm_catalog, new_catalog = fit_catalog(split, catalog)
    segments = temporal_segments(split, catalog, reveal=1, max_users=1000, seed=0)
    results = {}
    started = time.perf_counter()
    for name, model in (("popularity", PopularityRecommender()), ("coldbrew", Recommender(FitConfig()))):
        model.fit(warm_catalog, split.train)
        model.add_items(new_catalog)
        results[name] = evaluate(model, segments, k=20)
    print(f"  ({len(split.train):,} training events; evaluated in {time.perf_counter() - started:.0f} s)")
    print(f"\n  {'segment':<12} {'users':>6}   {'popularity':>22}   {'coldbrew':>22}")
    print(f"  {'':<12} {'':>6}   {'Recall@20':>10} {'NDCG@20':>11}   {'Recall@20':>10} {'NDCG@20':>11}")
    for seg in segments:
        p, c = results["popularity"][seg], results["coldbrew"][seg]
        print(f"  {seg:<12} {int(c['users']):>6}   {p['recall@20']:>10.3f} {p['ndcg@20']:>11.3f}"
              f"   {c['recall@20']:>10.3f} {c['ndcg@20']:>11.3f}")
    return 0
