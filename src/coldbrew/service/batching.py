"""Micro-batching: concurrent recommendation requests share one batched model call.

The pipeline is batch-first: scoring 8 users at once costs about a third of 8 single calls
(one matrix product instead of eight). Worker threads hand their request to a
:class:`RecommendBatcher`; whoever finds a free slot runs everything queued so far as one
batch. Nothing waits on a timer: an idle server answers a lone request at once, and under
load the batches grow by themselves.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from coldbrew.requests import Request

__all__ = ["RecommendBatcher"]


@dataclass
class _Job:
    request: Request
    k: int
    done: bool = False
    result: Any = None
    version: str = ""
    error: BaseException | None = None
    model: Any = field(default=None, repr=False)


class RecommendBatcher:
    """Runs queued recommendation requests in batches, at most ``slots`` batches at a time.

    Parameters
    ----------
    state: the :class:`~coldbrew.service.state.ServiceState` (its model and lock are used).
    max_batch: most requests in one model call.
    slots: batches that may run at the same time (about the number of cores).
    """

    def __init__(self, state: Any, max_batch: int = 32, slots: int = 1) -> None:
        self.state = state
        self.max_batch = max_batch
        self.slots = slots
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._running = 0

    def recommend(self, request: Request, k: int) -> tuple[list[dict[str, Any]], str]:
        """``(ItemOut dicts, model version)`` for one request, computed in some batch."""
        job = _Job(request, k)
        with self._cond:
            self._pending.append(job)
        while True:
            with self._cond:
                while not job.done and self._running >= self.slots:
                    self._cond.wait()
                if job.done:
                    break
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch:]
                if not batch:  # another thread took our job and is running it
                    self._cond.wait()
                    continue
                self._running += 1
            try:
                self._execute(batch)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        return job.result, job.version

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
            with self._cond:
                for job in batch:
                    job.done = True
                self._cond.notify_all()
