"""Micro-batching: concurrent requests give the same answers as one at a time."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

pytest.importorskip("fastapi")

from coldbrew.requests import HistoryEvent, Request  # noqa: E402
from coldbrew.service.batching import RecommendBatcher  # noqa: E402
from coldbrew.service.state import ModelLock  # noqa: E402


@pytest.fixture(scope="module")
def model(demo_model_dir):
    from coldbrew.storage import load_model

    return load_model(demo_model_dir)


def _state(model):
    def item_outs(m, rec):
        return list(zip(rec.items, rec.reasons))

    return SimpleNamespace(model=model, model_version="v0", lock=ModelLock(), metrics=None, item_outs=item_outs)


def _requests() -> list[Request]:
    items = ["tea-001", "yoga-001", "wine-002", "run-003", "game-001", "baby-002", "cook-001", "book-003"]
    return [
        Request(f"r{i}", f"u{i}", history=(HistoryEvent(items[i % len(items)], 1_740_000_000 + i, "purchase"),),
                exclude=("tea-002",) if i % 3 == 0 else ())
        for i in range(24)
    ]


def test_concurrent_requests_match_single_calls(model) -> None:
    state = _state(model)
    batcher = RecommendBatcher(state, max_batch=8)
    requests = _requests()
    expected = {r.request_id: list(zip((rec := model.recommend([r], 3 + i % 5)[0]).items, rec.reasons))
                for i, r in enumerate(requests)}
    results: dict[str, list] = {}
    sizes: list[int] = []
    original = batcher._execute

    def spy(batch):
        sizes.append(len(batch))
        original(batch)

    batcher._execute = spy
    gate = threading.Barrier(len(requests))

    def call(i: int, request: Request) -> None:
        gate.wait()
        items, version = batcher.recommend(request, 3 + i % 5)
        assert version == "v0"
        results[request.request_id] = items

    threads = [threading.Thread(target=call, args=(i, r)) for i, r in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected
    assert sum(sizes) == len(requests) and max(sizes) > 1 and max(sizes) <= 8
    batcher.close()


def test_submitted_requests_are_prepared_and_batched_in_the_worker(model) -> None:
    """The awaitable entry point: ``prepare`` runs in the worker; None answers [], errors reach the caller."""
    import asyncio

    state = _state(model)
    batcher = RecommendBatcher(state, max_batch=8)
    requests = _requests()[:12]
    expected = [list(zip((rec := model.recommend([r], 4)[0]).items, rec.reasons)) for r in requests]
    threads: set[str] = set()

    def preparer(request):
        def prepare():
            threads.add(threading.current_thread().name)
            return request
        return prepare

    def nothing():
        return None

    def broken():
        raise LookupError("the store is down")

    async def main():
        answers = await asyncio.gather(*(batcher.submit(preparer(r), 4) for r in requests),
                                       batcher.submit(nothing, 4), batcher.submit(broken, 4),
                                       return_exceptions=True)
        return answers

    answers = asyncio.run(main())
    assert [items for items, _ in answers[:12]] == expected
    assert answers[12] == ([], "v0")
    assert isinstance(answers[13], LookupError)
    assert threads == {"coldbrew-batcher"}
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.recommend(requests[0], 3)


def test_one_failing_request_does_not_fail_its_batch(model) -> None:
    state = _state(model)
    real = model.recommend

    class Exploding:
        def __getattr__(self, name):
            return getattr(model, name)

        def recommend(self, requests, k):
            if any(r.request_id == "bad" for r in requests):
                raise ValueError("bad request")
            return real(requests, k)

    state.model = Exploding()
    batcher = RecommendBatcher(state)
    job_bad = Request("bad", "x")
    job_ok = Request("ok", "y")
    # Run both in one batch directly.
    from coldbrew.service.batching import _Job

    jobs = [_Job(job_bad, 5), _Job(job_ok, 5)]
    batcher._execute(jobs)
    assert isinstance(jobs[0].error, ValueError) and jobs[0].done
    assert jobs[1].error is None and len(jobs[1].result.items) == 5
