"""ServiceState internals: the fold-in cache kept across catalog changes, the model lock."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")

from coldbrew.service.settings import ServiceSettings  # noqa: E402
from coldbrew.service.state import ModelLock, ServiceState, prepare_model  # noqa: E402
from coldbrew.storage.event_store import ItemRecord  # noqa: E402


def _expected_cache(model) -> np.ndarray:
    y = model._fold.item_factors_.astype(np.float64)  # the ALS columns the fold-in reads
    return np.einsum("if,ig->ifg", y, y).reshape(len(y), -1)


def test_fold_in_cache_follows_added_and_changed_items(demo_model_dir) -> None:
    from coldbrew.storage import load_model

    model = load_model(demo_model_dir)
    prepare_model(model)
    assert model._fold._yy is not None and model._fold._yy.base is not None  # a view of a buffer
    state = ServiceState(settings=ServiceSettings(model_dir=demo_model_dir), store=None, model=model, model_version="v0")
    buffer = model._fold._yy.base
    for n in range(3):
        state.apply_items(model, [ItemRecord(f"new-{n}", {"title": f"Oolong tea number {n}", "category": "Food > Tea"})])
        assert model._fold._yy.base is buffer  # no copy of the whole cache
        np.testing.assert_allclose(model._fold._yy, _expected_cache(model), rtol=1e-12)
    # Changing a new (cold) item's text changes its bridged factors: its row follows.
    state.apply_items(model, [ItemRecord("new-1", {"title": "Yoga mat strap", "category": "Sports > Yoga"})])
    np.testing.assert_allclose(model._fold._yy, _expected_cache(model), rtol=1e-12)
    # Grows when the spare rows run out.
    many = [ItemRecord(f"bulk-{i}", {"title": f"Notebook {i}"}) for i in range(300)]
    state.apply_items(model, many)
    np.testing.assert_allclose(model._fold._yy, _expected_cache(model), rtol=1e-12)
    from coldbrew.requests import HistoryEvent, Request

    rec = model.recommend([Request("r", "u", history=(HistoryEvent("tea-001", 1_740_000_000, "purchase"),))], 5)[0]
    assert len(rec.items) == 5 and "tea-001" not in rec.items


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
