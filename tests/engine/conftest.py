"""A small shop for the engine tests: the demo catalog, its events, requests, a fast config."""

from __future__ import annotations

import json

import pytest

from coldbrew.demo import demo_events, demo_paths

# The hashing encoder keeps these tests fast and bit-for-bit deterministic.
CONFIG = '[encoder]\nname = "hashing"\n[blend]\ntune = false\n'


@pytest.fixture(scope="module")
def small_shop(tmp_path_factory):
    """Paths of the demo catalog, its events, a requests file (161 requests) and a config."""
    import pandas as pd

    root = tmp_path_factory.mktemp("small_shop")
    catalog, _ = demo_paths()
    ids = pd.read_csv(catalog, dtype=str).item_id.tolist()
    events = demo_events(ids).drop(columns=["taste"])
    events.to_csv(root / "events.csv", index=False)
    (root / "coldbrew.toml").write_text(CONFIG)
    lines = []
    for n, (user, group) in enumerate(events.groupby("user_id")):
        history = [{"item_id": r.item_id, "timestamp": int(r.timestamp), "event": r.event}
                   for r in group.itertuples()][:5]
        lines.append({"request_id": f"r{n}", "user_id": user, "history": history,
                      "text": "green tea gifts" if n % 3 == 0 else None,
                      "exclude": [ids[n % len(ids)]]})
    lines.append({"request_id": "new", "user_id": "stranger", "text": "我喜欢喝乌龙茶, and I run marathons"})
    lines.append({"request_id": "shelf", "user_id": "x", "candidates": ids[:7]})
    requests = root / "requests.jsonl"
    requests.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    return {"root": root, "catalog": catalog, "events": root / "events.csv", "requests": requests,
            "config": root / "coldbrew.toml", "n_requests": len(lines)}
