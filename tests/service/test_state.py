"""ServiceState internals: catalog changes on a serving model, the model lock."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("fastapi")

from coldbrew.service.settings import ServiceSettings  # noqa: E402
from coldbrew.service.state import ModelLock, ServiceState, prepare_model  # noqa: E402
from coldbrew.storage.event_store import ItemRecord  # noqa: E402


def test_added_and_changed_items_are_scored_without_a_fold_in_cache(demo_model_dir) -> None:
    """Products added or changed in the service are scored at once (their factors are the bridge's)."""
    from coldbrew.requests import HistoryEvent, Request
    from coldbrew.storage import load_model

    model = load_model(demo_model_dir)
    prepare_model(model)
    state = ServiceState(settings=ServiceSettings(model_dir=demo_model_dir), store=None, model=model, model_version="v0")
    state.apply_items(model, [ItemRecord(f"new-{n}", {"title": f"Oolong tea number {n}", "category": "Food > Tea"})
                              for n in range(3)])
    state.apply_items(model, [ItemRecord("new-1", {"title": "Yoga mat strap", "category": "Sports > Yoga"})])
    history = (HistoryEvent("tea-001", 1_740_000_000, "purchase"), HistoryEvent("new-0", 1_740_000_100, "view"))
    rec = model.recommend([Request("r", "u", history=history)], 5)[0]
    assert len(rec.items) == 5 and not {"tea-001", "new-0"} & set(rec.items)
    assert model.item_map_.lookup(["new-2"])[0] >= 0 and str(model.catalog_.titles[model.item_map_.lookup(["new-1"])[0]]) == "Yoga mat strap"


def test_model_lock_excludes_writers_from_readers() -> None:
    lock = ModelLock()
    log: list[str] = []

    def reader() -> None:
        with lock.read():
            log.append("r+")
            time.sleep(0.05)
            log.append("r-")

    def writer() -> None:
        with lock.write():
            log.append("w+")
            time.sleep(0.02)
            log.append("w-")

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
        time.sleep(0.005)
    for t in threads:
        t.join()
    w = log.index("w+")
    assert log[w + 1] == "w-"  # nothing interleaves with the writer
    assert log.count("r+") == 3 and log.count("r-") == 3


def test_an_answer_scored_before_a_delete_does_not_show_the_deleted_item(demo_model_dir) -> None:
    """The race of a batch prepared before a DELETE: the answer is built after it, without the item."""
    from coldbrew.requests import HistoryEvent, Request
    from coldbrew.storage import load_model

    model = load_model(demo_model_dir)
    state = ServiceState(settings=ServiceSettings(model_dir=demo_model_dir), store=None, model=model, model_version="v0")
    history = (HistoryEvent("tea-001", 1_740_000_000, "purchase"),)
    rec = model.recommend([Request("r", "u", history=history)], 6)[0]  # scored before the writes
    gone, out_of_stock = rec.items[0], rec.items[2]
    state.apply_items(model, [ItemRecord(gone, {}, deleted=True),
                              ItemRecord(out_of_stock, {"title": "x"}, in_stock=False)])
    shown = [item["item_id"] for item in state.item_outs(model, rec)]
    assert shown == [i for i in rec.items if i not in (gone, out_of_stock)]
    assert len(shown) == 4
