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


class _FakeScorer:
    """In-thread stand-in for the scoring process: ``send_score`` returns at once, ``wait``
    answers with the model (or raises ``fail``); the first ``wait`` blocks until ``release``."""

    def __init__(self, model, fail: BaseException | None = None) -> None:
        self.model, self.fail, self.alive = model, fail, True
        self.log: list[tuple[str, list[str]]] = []
        self.release = threading.Event()
        self._first = True

    def send_score(self, requests, k):
        self.log.append(("send", [r.request_id for r in requests]))
        return (list(requests), k)

    def wait(self, slot):
        if self._first:
            self._first = False
            assert self.release.wait(10), "the test never released the first batch"
        if self.fail is not None:
            from coldbrew.service.scoring import ScorerGone

            if isinstance(self.fail, ScorerGone):
                self.alive = False
            raise self.fail
        return self.model.recommend(*slot)


def _pipelined(model, scorer):
    state = _state(model)
    state.scorer = scorer
    state.extras = {"restart_scorer": lambda: state.extras.__setitem__("restarted", True)}
    return state, RecommendBatcher(state, max_batch=8, pipelined=True)


def _call_in_thread(batcher, request, k, answers, log):
    def run():
        answers[request.request_id] = batcher.recommend(request, k)[0]
        log.append(("answered", [request.request_id]))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _wait_until(condition, what: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_pipelined_worker_sends_the_next_batch_before_waking_the_answered_callers(model) -> None:
    """With a scoring process, the batch that became ready meanwhile is sent the moment the
    previous answer is back, before that answer's callers are woken; answers are unchanged."""
    scorer = _FakeScorer(model)
    state, batcher = _pipelined(model, scorer)
    first, second = _requests()[:2]
    answers: dict[str, list] = {}
    one = _call_in_thread(batcher, first, 4, answers, scorer.log)
    _wait_until(lambda: ("send", ["r0"]) in scorer.log, "the first batch to be sent")
    two = _call_in_thread(batcher, second, 4, answers, scorer.log)
    _wait_until(lambda: batcher._ready, "the second request to be prepared")
    scorer.release.set()
    one.join(10)
    two.join(10)
    assert scorer.log.index(("send", ["r1"])) < scorer.log.index(("answered", ["r0"]))
    for request in (first, second):
        rec = model.recommend([request], 4)[0]
        assert answers[request.request_id] == list(zip(rec.items, rec.reasons))
    batcher.close()


@pytest.mark.parametrize("failure", ["gone", "error"])
def test_pipelined_worker_answers_when_the_scoring_process_fails(model, failure) -> None:
    """A scoring process that dies with a batch (ScorerGone) or raises for it: every request is
    still answered, scored in the server process (and a restart is asked for when it died)."""
    from coldbrew.service.scoring import ScorerGone

    scorer = _FakeScorer(model, ScorerGone("killed") if failure == "gone" else ValueError("boom"))
    scorer.release.set()
    state, batcher = _pipelined(model, scorer)
    requests = _requests()[:6]
    answers: dict[str, list] = {}
    threads = [_call_in_thread(batcher, r, 3, answers, []) for r in requests]
    for thread in threads:
        thread.join(10)
    for request in requests:
        rec = model.recommend([request], 3)[0]
        assert answers[request.request_id] == list(zip(rec.items, rec.reasons))
    assert state.extras.get("restarted", False) is (failure == "gone")
    batcher.close()


def test_pipelined_worker_scores_here_a_batch_that_cannot_be_sent(model) -> None:
    """A batch the scoring process cannot be sent (e.g. it does not pickle) is scored in the
    server process; the worker keeps going."""

    class Unsendable(_FakeScorer):
        def send_score(self, requests, k):
            raise TypeError("cannot pickle this request")

    scorer = Unsendable(model)
    state, batcher = _pipelined(model, scorer)
    answers: dict[str, list] = {}
    for request in _requests()[:3]:
        _call_in_thread(batcher, request, 3, answers, []).join(10)
        rec = model.recommend([request], 3)[0]
        assert answers[request.request_id] == list(zip(rec.items, rec.reasons))
    batcher.close()
