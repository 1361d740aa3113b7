"""Micro-batching: concurrent recommendation requests share one batched model call.

The pipeline is batch-first: scoring 8 users at once costs about a third of 8 single calls
(one matrix product instead of eight). Requests are queued to a worker thread that runs
everything queued so far as one batch. Nothing waits on a timer: an idle server answers a
lone request at once, and under load the batches grow by themselves while the previous one
is being scored.

Two ways in:

* :meth:`RecommendBatcher.submit` (``await``-able, used by the HTTP endpoint): the request
  is *prepared* in the worker too (reading the user's history from the store, applying the
  catalog filters), so the event loop never blocks on the database or the model and no
  thread-pool thread is held per waiting request;
* :meth:`RecommendBatcher.recommend` (blocking, for threads).

One batch is scored at a time, because the model call is CPU-bound under the GIL: two
concurrent batches were measured slower, in this process and sent to the scoring process
alike (``benchmarks/RESULTS.md``, service section). With the scoring process
(``pipelined=True``) a second worker prepares the next batch (store reads) while the current
one is scored in the child, and the scoring worker sends that batch to the child as soon as
the current answer is back, before it wakes the answered callers: woken first, they took the
GIL for their HTTP responses and the child sat idle (1.9 ms between batches of about 5 ms,
measured at 8 clients; 0.5 ms since).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coldbrew.requests import Request

__all__ = ["RecommendBatcher"]

log = logging.getLogger("coldbrew.service")


@dataclass
class _Job:
    request: Request | None
    k: int
    prepare: Callable[[], Request | None] | None = None  # runs in the worker; None: answer []
    done: bool = False
    result: Any = None
    version: str = ""
    error: BaseException | None = None
    model: Any = field(default=None, repr=False)
    notify: Callable[[], None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Sent:
    """A batch in flight to the scoring process, and the model version it is scored with."""

    scorer: Any
    slot: list
    model: Any
    version: str


class RecommendBatcher:
    """Runs queued recommendation requests in batches on a worker thread.

    Parameters
    ----------
    state: the :class:`~coldbrew.service.state.ServiceState` (its model and lock are used).
    max_batch: most requests in one model call.
    pipelined: two workers, one preparing requests (store reads) while the other waits for
        the scoring process to score the previous batch; without a scoring process one
        worker does both (the model call would only compete with the preparation for the GIL).
    """

    def __init__(self, state: Any, max_batch: int = 32, pipelined: bool = False) -> None:
        self.state = state
        self.max_batch = max_batch
        self.pipelined = pipelined
        self._lock = threading.Lock()
        # One condition per queue, so that a new request wakes only the worker that takes it
        # (a woken worker that finds nothing to do still costs a GIL hand-over).
        self._has_pending = threading.Condition(self._lock)
        self._has_ready = threading.Condition(self._lock)
        self._pending: list[_Job] = []  # submitted, not prepared yet
        self._ready: list[_Job] = []  # prepared, waiting for the scoring worker (pipelined)
        self._workers: list[threading.Thread] = []
        self._preparing = 0  # taken by the preparing worker, not in _ready yet
        self._closed = False

    # ------------------------------------------------------------------ entry points
    def recommend(self, request: Request, k: int) -> tuple[list[dict[str, Any]], str]:
        """``(ItemOut dicts, model version)`` for one request, computed in some batch (blocking)."""
        finished = threading.Event()
        job = _Job(request, k, notify=finished.set)
        self._enqueue(job)
        finished.wait()
        return self._answer(job)

    async def submit(self, prepare: Callable[[], Request | None], k: int) -> tuple[list[dict[str, Any]], str]:
        """Like :meth:`recommend`, awaited; ``prepare()`` builds the request in the worker.

        ``prepare`` may return ``None`` for "nothing can match" (the answer is then empty) and
        may raise (the error is raised here, in the caller's task).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        job = _Job(None, k, prepare=prepare)

        def settle() -> None:
            if not future.done():
                future.set_result(None)

        job.notify = lambda: loop.call_soon_threadsafe(settle)
        self._enqueue(job)
        await future
        return self._answer(job)

    def _answer(self, job: _Job) -> tuple[list[dict[str, Any]], str]:
        """The job's ItemOut dicts, built in the caller's thread: the scoring worker goes
        straight on to the next batch instead."""
        if job.error is not None:
            raise job.error
        if job.model is None:  # answered without the model (nothing can match)
            return job.result, job.version
        return self.state.item_outs(job.model, job.result), job.version

    def close(self) -> None:
        """Stop the workers after the queued requests are answered."""
        with self._lock:
            self._closed = True
            self._wake_all()
        for worker in self._workers:
            worker.join(timeout=10)

    # ------------------------------------------------------------------ the workers
    def _enqueue(self, job: _Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the recommendation batcher is closed")
            self._pending.append(job)
            if not self._workers:
                roles = ("prepare", "score") if self.pipelined else ("both",)
                self._workers = [threading.Thread(target=self._run, args=(role,), daemon=True,
                                                  name="coldbrew-batcher" if role != "prepare" else "coldbrew-prepare")
                                 for role in roles]
                for worker in self._workers:
                    worker.start()
            self._has_pending.notify()

    def _take(self, queue: str, block: bool = True) -> list[_Job] | None:
        """Wait for jobs in ``self._pending`` or ``self._ready``; None once closed and drained
        (or, with ``block=False``, when there are none now)."""
        condition = self._has_pending if queue == "_pending" else self._has_ready
        with self._lock:
            while block and not getattr(self, queue) and not self._drained():
                condition.wait()
            jobs = getattr(self, queue)
            if not jobs:
                return None
            taken, rest = jobs[: self.max_batch], jobs[self.max_batch:]
            setattr(self, queue, rest)
            if queue == "_pending" and self.pipelined:
                self._preparing += len(taken)
            return taken

    def _wake_all(self) -> None:
        """Wake every worker (closing, or the queues ran dry); hold ``self._lock``."""
        self._has_pending.notify_all()
        self._has_ready.notify_all()

    def _drained(self) -> bool:
        return self._closed and not self._pending and not self._ready and not self._preparing

    def _run(self, role: str) -> None:
        if role == "score":
            return self._score_loop()
        while True:
            batch = self._take("_pending")
            if batch is None:
                with self._lock:
                    self._wake_all()  # let the other role see the end too
                return
            finished = batch
            try:
                ready = self._prepare(batch)
                if role == "prepare":
                    finished = [job for job in batch if job.done]
                    with self._lock:
                        self._ready.extend(ready)
                        self._preparing -= len(batch)
                        self._has_ready.notify()
                        if self._drained():
                            self._wake_all()
                elif ready:
                    self._execute(ready)
            except BaseException as exc:  # never leave a caller waiting
                _fail(finished, exc)
            finally:
                _finish(finished)

    def _score_loop(self) -> None:
        """The scoring worker beside a preparing one (``pipelined``).

        The scoring process is sent the next batch as soon as it answers the previous one, and
        only then are the previous batch's callers woken: they would otherwise take the GIL
        (HTTP responses) while the child waits for work.
        """
        inflight: tuple[list[_Job], _Sent] | None = None
        while True:
            if inflight is None:
                batch = self._take("_ready")
                if batch is None:
                    with self._lock:
                        self._wake_all()
                    return
                inflight = self._dispatch(batch)
                continue
            batch, sent = inflight
            try:
                answers = sent.scorer.wait(sent.slot)
            except BaseException as exc:  # handed to _execute, which falls back
                answers = exc
            following = self._take("_ready", block=False)
            inflight = self._dispatch(following) if following else None
            try:
                self._execute(batch, answers, sent)
            except BaseException as exc:
                _fail(batch, exc)
            finally:
                _finish(batch)

    def _dispatch(self, batch: list[_Job]) -> tuple[list[_Job], _Sent] | None:
        """Send ``batch`` to the scoring process; when none runs, score and answer it here
        (returns None then)."""
        state = self.state
        scorer = getattr(state, "scorer", None)
        if scorer is not None and scorer.alive:
            from coldbrew.service.scoring import ScorerGone

            with state.lock.read():  # the model version and the replica's next call agree
                model, version = state.model, state.model_version
                try:
                    slot = scorer.send_score([job.request for job in batch], max(job.k for job in batch))
                except ScorerGone:
                    slot = None
                except Exception:  # a batch the pipe cannot carry (it does not pickle): scored here
                    log.exception("could not send a batch to the scoring process; scoring it here")
                    slot = None
            if slot is not None:
                if state.metrics is not None:
                    state.metrics.batch_size.observe(len(batch))
                return batch, _Sent(scorer, slot, model, version)
        try:
            self._execute(batch)
        except BaseException as exc:
            _fail(batch, exc)
        finally:
            _finish(batch)
        return None

    def _prepare(self, batch: list[_Job]) -> list[_Job]:
        """Run each job's ``prepare``; returns the jobs to score (the others are done)."""
        ready = []
        for job in batch:
            if job.prepare is not None:
                try:
                    job.request = job.prepare()
                except BaseException as exc:  # reported to the request's own caller
                    job.error, job.done = exc, True
                    continue
                if job.request is None:
                    job.result, job.version, job.done = [], self.state.model_version, True
                    continue
            ready.append(job)
        return ready

    def _execute(self, batch: list[_Job], answers: Any = None, sent: _Sent | None = None) -> None:
        """Score ``batch`` and set each job's result (or error).

        ``answers`` / ``sent``: what the scoring process answered to the batch sent as
        ``sent`` (:meth:`_dispatch`); scored here when it is gone.
        """
        state = self.state
        if sent is None and state.metrics is not None:
            state.metrics.batch_size.observe(len(batch))
        if sent is not None and not isinstance(answers, list):
            from coldbrew.service.scoring import ScorerGone

            if isinstance(answers, ScorerGone):  # the child died with the batch: score it here
                return self._execute(batch)
        try:
            with state.lock.read():
                if sent is not None:
                    model, version = sent.model, sent.version
                    recs = answers if isinstance(answers, list) else None  # an error: one by one
                else:
                    model, version = state.model, state.model_version
                    k = max(job.k for job in batch)
                    try:
                        recs = _score(state, model, [job.request for job in batch], k)
                    except Exception:
                        # One bad request must not fail the others: answer each on its own.
                        recs = None
                for j, job in enumerate(batch):
                    try:
                        rec = recs[j] if recs is not None else model.recommend([job.request], job.k)[0]
                        if len(rec.items) > job.k:
                            rec.items[job.k:], rec.scores[job.k:], rec.reasons[job.k:] = [], [], []
                        job.result, job.version, job.model = rec, version, model
                    except Exception as exc:  # reported to the request's own thread
                        job.error = exc
        except BaseException as exc:
            _fail(batch, exc)
            raise
        finally:
            for job in batch:
                job.done = True


def _fail(jobs: list[_Job], error: BaseException) -> None:
    """Never leave a caller waiting: ``error`` for every job without an answer."""
    for job in jobs:
        if job.result is None and job.error is None:
            job.error = error


def _finish(jobs: list[_Job]) -> None:
    for job in jobs:
        job.done = True
        if job.notify is not None:
            job.notify()


def _score(state: Any, model: Any, requests: list[Request], k: int) -> list[Any]:
    """The batch scored by the scoring process when one runs, else in this process."""
    scorer = getattr(state, "scorer", None)
    if scorer is not None and scorer.alive:
        from coldbrew.service.scoring import ScorerGone

        try:
            return scorer.score(requests, k)
        except ScorerGone:
            pass  # logged by the scorer; this process scores until a new one is up
    restart = getattr(state, "extras", {}).get("restart_scorer")
    if restart is not None:
        restart()  # rate-limited and in the background
    return model.recommend(requests, k)
