"""Micro-batching: concurrent recommendation requests share one batched model call.

The pipeline is batch-first: scoring 8 users at once costs about a third of 8 single calls
(one matrix product instead of eight). Requests are queued to one worker thread that runs
everything queued so far as one batch. Nothing waits on a timer: an idle server answers a
lone request at once, and under load the batches grow by themselves while the previous one
is being scored.

Two ways in:

* :meth:`RecommendBatcher.submit` (``await``-able, used by the HTTP endpoint): the request
  is *prepared* in the worker too (reading the user's history from the store, applying the
  catalog filters), so the event loop never blocks on the database or the model and no
  thread-pool thread is held per waiting request;
* :meth:`RecommendBatcher.recommend` (blocking, for threads).

One worker, because the model call is CPU-bound under the GIL: a second concurrent batch
was measured slower (``benchmarks/RESULTS.md``, service section).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coldbrew.requests import Request

__all__ = ["RecommendBatcher"]


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


class RecommendBatcher:
    """Runs queued recommendation requests in batches on one worker thread.

    Parameters
    ----------
    state: the :class:`~coldbrew.service.state.ServiceState` (its model and lock are used).
    max_batch: most requests in one model call.
    """

    def __init__(self, state: Any, max_batch: int = 32) -> None:
        self.state = state
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._worker: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ entry points
    def recommend(self, request: Request, k: int) -> tuple[list[dict[str, Any]], str]:
        """``(ItemOut dicts, model version)`` for one request, computed in some batch (blocking)."""
        finished = threading.Event()
        job = _Job(request, k, notify=finished.set)
        self._enqueue(job)
        finished.wait()
        if job.error is not None:
            raise job.error
        return job.result, job.version

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
        if job.error is not None:
            raise job.error
        return job.result, job.version

    def close(self) -> None:
        """Stop the worker after the queued requests are answered."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10)

    # ------------------------------------------------------------------ the worker
    def _enqueue(self, job: _Job) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the recommendation batcher is closed")
            self._pending.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="coldbrew-batcher", daemon=True)
                self._worker.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
            try:
                ready = []
                for job in batch:
                    if job.prepare is not None:
                        try:
                            job.request = job.prepare()
                        except BaseException as exc:  # reported to the request's own caller
                            job.error = exc
                            continue
                        if job.request is None:
                            job.result, job.version = [], self.state.model_version
                            continue
                    ready.append(job)
                if ready:
                    self._execute(ready)
            except BaseException as exc:  # never leave a caller waiting
                for job in batch:
                    if job.result is None and job.error is None:
                        job.error = exc
            finally:
                for job in batch:
                    job.done = True
                    if job.notify is not None:
                        job.notify()

    def _execute(self, batch: list[_Job]) -> None:
        state = self.state
        if state.metrics is not None:
            state.metrics.batch_size.observe(len(batch))
        try:
            with state.lock.read():
                model, version = state.model, state.model_version
                k = max(job.k for job in batch)
                try:
                    recs = model.recommend([job.request for job in batch], k)
                except Exception:
                    # One bad request must not fail the others: answer each on its own.
                    recs = None
                for j, job in enumerate(batch):
                    try:
                        rec = recs[j] if recs is not None else model.recommend([job.request], job.k)[0]
                        if len(rec.items) > job.k:
                            rec.items[job.k:], rec.scores[job.k:], rec.reasons[job.k:] = [], [], []
                        job.result, job.version = state.item_outs(model, rec), version
                    except Exception as exc:  # reported to the request's own thread
                        job.error = exc
        except BaseException as exc:
            for job in batch:
                if job.result is None and job.error is None:
                    job.error = exc
            raise
        finally:
            for job in batch:
                job.done = True
